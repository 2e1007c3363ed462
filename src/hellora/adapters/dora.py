"""DoRA (Liu et al. 2024): LoRA plus a trainable magnitude per output row, for linears, routers and fused experts.

For a base weight W (out, in), LoRA pair A (r, in), B (out, r), scale s = alpha / r and magnitude m (out,):

    W' = m * (W + s B A) / ||W + s B A||_row          ||.||_row: L2 norm over `in`, one value per output row

m starts at ||W + s B A||_row (so W' = W + s B A at init; = W for B = 0) and trains with A and B. As in DoRA's
Section 4.3 and PEFT, the norm is treated as a constant (computed without gradient), so with f = m / ||.||_row
the layer computes, never materialising W' in the forward:

    y = x W^T (+ b)  +  (f - 1) * x_d W^T  +  f * s * x_d A^T B^T        x_d = dropout(x)  (x_d = x when off)

which equals x W'^T + b without dropout. Merging writes W' (the bias is unchanged).

    DoRALinear          nn.Linear (attention, shared experts, dense MLPs, ModuleList experts): m (out,)
    DoRARouter          router weight (E, H): m (E,), folded into the weight the router's own forward uses
    ExpertDoRAWeights   one projection of K hot fused experts: m (K, out), each expert's norm from its own slice
                        of the fused weight; cold experts have no adapter and stay exactly the base

The norm costs one (out, in) temporary per adapted matrix and step (computed per hot expert with rows, in
float32, without autograd), as in PEFT.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from hellora.adapters.base import NewWeights, effective_b
from hellora.adapters.experts import ExpertLoRAWeights
from hellora.adapters.linear import LoRALinear
from hellora.adapters.router import RouterLoRA
from hellora.kernels.routing import ExpertRouting


@torch.no_grad()
def dora_row_norm(weight: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor, scale: float) -> torch.Tensor:
    """(out,) float32 ||W + scale * B @ A|| over the input dimension of W (out, in); no gradient."""
    return torch.linalg.vector_norm(weight.float() + (lora_B.float() @ lora_A.float()) * scale, dim=1)


def _new_magnitude(shape: tuple[int, ...], device: torch.device | str | None, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(torch.empty(shape, device=device, dtype=dtype))


class DoRALinear(LoRALinear):
    """LoRALinear with `lora_magnitude (out,)`; see the module docstring for the math."""

    def __init__(self, base_layer: nn.Linear, r: int, alpha: float, **kwargs: Any) -> None:
        super().__init__(base_layer, r, alpha, **kwargs)
        self.lora_magnitude = _new_magnitude((base_layer.out_features,), base_layer.weight.device, self.lora_A.dtype)
        if self.lora_magnitude.device.type != "meta":
            self.lora_magnitude.data.copy_(self.weight_norm())

    def weight_norm(self) -> torch.Tensor:
        return dora_row_norm(self.base_layer.weight, self.lora_A, effective_b(self), self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        if not self.adapter_enabled:
            return y
        w = self.base_layer.weight
        f = (self.lora_magnitude.float() / self.weight_norm()).to(x.dtype)  # (out,), norm detached
        xd = self.dropout(x)
        if isinstance(self.dropout, nn.Identity) or not self.training:
            base = y if self.base_layer.bias is None else y - self.base_layer.bias
        else:
            base = F.linear(xd, w.to(x.dtype))
        lora = F.linear(F.linear(xd, self.lora_A.to(x.dtype)), effective_b(self).to(x.dtype))
        return y + (f - 1) * base + f * lora * self.scale

    def merged_weight(self) -> torch.Tensor:
        """(out, in) float32 m * (W + sBA) / ||W + sBA||_row."""
        merged = self.base_layer.weight.float() + self.delta_weight()
        return merged * (self.lora_magnitude.float() / self.weight_norm()).unsqueeze(1)

    @torch.no_grad()
    def merged_base(self) -> nn.Linear:
        w = self.base_layer.weight
        w.copy_(self.merged_weight().to(w.dtype))
        return self.base_layer


class DoRARouter(RouterLoRA):
    """RouterLoRA with `lora_magnitude (E,)`: the router runs with weight m * (W + sBA) / ||W + sBA||_row."""

    def __init__(self, base_layer: nn.Module, r: int, alpha: float, **kwargs: Any) -> None:
        super().__init__(base_layer, r, alpha, **kwargs)
        w = self._base_weight()
        self.lora_magnitude = _new_magnitude((w.shape[0],), w.device, self.lora_A.dtype)
        if w.device.type != "meta":
            self.lora_magnitude.data.copy_(self.weight_norm())

    def weight_norm(self) -> torch.Tensor:
        return dora_row_norm(self._base_weight(), self.lora_A, effective_b(self), self.scale)

    def adapted_weight(self) -> torch.Tensor:
        w = self._base_weight()
        f = (self.lora_magnitude.float() / self.weight_norm()).to(w.dtype)
        return super().adapted_weight() * f.unsqueeze(1)

    @torch.no_grad()
    def merged_base(self) -> nn.Module:
        w = self._base_weight()
        merged = (w.float() + self.delta_weight()) * (self.lora_magnitude.float() / self.weight_norm()).unsqueeze(1)
        w.copy_(merged.to(w.dtype))
        return self.base_layer


class ExpertDoRAWeights(ExpertLoRAWeights):
    """DoRA for one projection of K hot fused experts: lora_A (K, r, in), lora_B (K, out, r), lora_magnitude
    (K, out). Expert e's rows of the sorted batch (one contiguous segment) become

        rows = base_rows + (f_e - 1) * (base_rows - bias_e) + f_e * s * x A_e^T B_e^T,   f_e = m_e / ||W_e + s B_e A_e||

    with base_rows recomputed from the dropped-out input when dropout is active."""

    def __init__(self, num_slots: int, in_features: int, out_features: int, r: int, new: NewWeights) -> None:
        super().__init__(num_slots, in_features, out_features, r, new)
        self.lora_magnitude = _new_magnitude((num_slots, out_features), new.device, new.dtype)

    def weight_norm(self, slot: int, weight: torch.Tensor, scale: float) -> torch.Tensor:
        return dora_row_norm(weight, self.lora_A[slot], effective_b(self)[slot], scale)

    def init_from_base(self, weight_of: Callable[[int], torch.Tensor], hot: list[int], scale: float) -> None:
        if self.lora_magnitude.device.type == "meta":
            return
        for slot, expert in enumerate(hot):
            self.lora_magnitude.data[slot].copy_(self.weight_norm(slot, weight_of(expert), scale))

    def add_update_(self, out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int], scale: float,
                    *, weight_of: Callable, bias_of: Callable, x_base: torch.Tensor | None = None) -> int:
        bounds = routing.segment_bounds()
        b_all = effective_b(self)
        rows = 0
        for slot, expert in enumerate(hot):
            lo, hi = bounds[expert], bounds[expert + 1]
            if hi == lo:
                continue
            w = weight_of(expert)
            f = (self.lora_magnitude[slot].float() / self.weight_norm(slot, w, scale)).to(x.dtype)
            a, b = self.lora_A[slot].to(x.dtype), b_all[slot].to(x.dtype)
            lora = (x[lo:hi] @ a.t()) @ b.t()
            if x_base is not None:
                base = x_base[lo:hi] @ w.to(x.dtype).t()
            else:
                bias = bias_of(expert)
                # a fresh tensor, not a view of `out`: autograd saves it for the product with f
                base = out[lo:hi] - bias if bias is not None else out[lo:hi].clone()
            out[lo:hi] += (f - 1) * base + f * lora * scale
            rows += hi - lo
        return rows

    def merged_weight(self, slot: int, weight: torch.Tensor, scale: float) -> torch.Tensor:
        f = self.lora_magnitude[slot].float() / self.weight_norm(slot, weight, scale)
        return (weight + self.delta(slot, scale).to(weight.device)) * f.unsqueeze(1)
