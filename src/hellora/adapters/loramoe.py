"""LoRAMoE (Dou et al. 2024) as the paper ran it on MoE backbones (Appendix F): a mixture of N LoRA experts with a
learned dense softmax router on every Linear of every expert FFN (routed experts, shared experts, dense MLPs), no
attention adapters and no adapter on the backbone's own router.

For one adapted Linear W (out, in), N LoRA pairs A_i (r, in), B_i (out, r), router R (N, in), s = alpha / r:

    g = softmax(x R^T)                                      (.., N)   dense, float32 softmax as LoRAMoE
    y = x W^T (+ b) + s * sum_i g_i * B_i A_i x_d           x_d = dropout(x)

computed as one (N*r, in) product, a per-expert rescaling of the (.., N, r) result, and one (out, N*r) product.

    LoRAMoELinear          nn.Linear: lora_A (N, r, in), lora_B (N, out, r), lora_router (N, in)
    ExpertLoRAMoEWeights   one projection of K fused experts: lora_A (K, N, r, in), lora_B (K, N, out, r),
                           lora_router (K, N, in); expert e's rows of the sorted batch get expert e's mixture

The update depends on the input through g, so it cannot be folded into W: merging is refused.

Localized balancing (LoRAMoE's L_lbc, off by default): each adapted Linear records, in training forwards, the
importance Q_i = sum over its input rows of g_i. The first N/2 LoRA experts are the "task" group, the rest the
"world knowledge" group; fine-tuning data is task data, so Z = Q * (1 + delta) on the task group and
Q * (1 - delta) on the other, and the loss is Z's squared coefficient of variation var(Z) / mean(Z)^2, averaged
over the adapted Linears (and hot experts) of the last forward: `loramoe_balance_loss(model)`. Unlike LoRAMoE on
a dense model, Q is pooled over the batch rather than per sample: a routed expert's rows are a subset of the
batch's tokens whose sample identity the experts module does not see.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hellora.adapters.base import AdapterLayer, NewWeights, kaiming_uniform_, new_lora_pair
from hellora.kernels.routing import ExpertRouting
from hellora.utils.errors import HelloraError

NOT_MERGEABLE = ("LoRAMoE mixes its LoRA experts with input-dependent router weights, so its update cannot be "
                 "folded into the base weights; keep the adapter (hellora's own format) instead")


def mixture_lora(x: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor, router: torch.Tensor,
                 scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(.., in) -> (update (.., out), importance (N,) float32 = router probabilities summed over rows).

    lora_A (N, r, in), lora_B (N, out, r), router (N, in).
    """
    n, r, in_features = lora_A.shape
    gates = F.linear(x, router.to(x.dtype)).softmax(dim=-1, dtype=torch.float32)  # (.., N)
    ax = F.linear(x, lora_A.to(x.dtype).reshape(n * r, in_features)).unflatten(-1, (n, r))  # (.., N, r)
    ax = (ax * gates.to(x.dtype).unsqueeze(-1)).flatten(-2)  # (.., N*r)
    b = lora_B.to(x.dtype).permute(1, 0, 2).reshape(lora_B.shape[1], n * r)  # (out, N*r)
    return F.linear(ax, b) * scale, gates.reshape(-1, n).sum(dim=0)


def _new_mixture(experts: tuple[int, ...], in_features: int, out_features: int, r: int,
                 new: NewWeights) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
    """A (*experts, r, in), B (*experts, out, r) and the router (*experts, in) of a mixture; `experts` ends with the
    mixture's N, after the fused slots' K when there are several."""
    a, b = new_lora_pair((*experts, r, in_features), (*experts, out_features, r), device=new.device,
                         dtype=new.dtype, init=new.init, generator=new.generator)
    router = torch.empty((*experts, in_features), device=new.device, dtype=new.dtype)
    kaiming_uniform_(router, in_features, new.generator)  # nn.Linear(in, N, bias=False) default, as LoRAMoE
    return a, b, nn.Parameter(router)


class LoRAMoELinear(AdapterLayer):
    """A mixture of N LoRA experts on an nn.Linear (see the module docstring)."""

    mergeable = False

    def __init__(self, base_layer: nn.Linear, r: int, alpha: float, *, role: str, num_experts: int = 6,
                 dropout: float = 0.0, dtype: torch.dtype = torch.float32, init: str = "default",
                 generator: torch.Generator | None = None) -> None:
        super().__init__(base_layer, r, alpha)
        self.role = role
        self.lora_A, self.lora_B, self.lora_router = _new_mixture(
            (num_experts,), base_layer.in_features, base_layer.out_features, r,
            NewWeights(base_layer.weight.device, dtype, init, generator))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.loramoe_importance: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        if not self.adapter_enabled:
            return y
        update, importance = mixture_lora(self.dropout(x), self.lora_A, self.lora_B, self.lora_router, self.scale)
        self.loramoe_importance = [importance] if (self.training and torch.is_grad_enabled()) else []
        return y + update

    def merged_base(self) -> nn.Module:
        raise HelloraError(NOT_MERGEABLE)


class ExpertLoRAMoEWeights(nn.Module):
    """LoRAMoE for one projection of K fused experts (the `weights_cls` of `HotExpertsLoRA`)."""

    mergeable = False

    def __init__(self, num_slots: int, in_features: int, out_features: int, r: int, new: NewWeights, *,
                 num_experts: int = 6) -> None:
        super().__init__()
        self.lora_A, self.lora_B, self.lora_router = _new_mixture((num_slots, num_experts), in_features, out_features,
                                                                  r, new)
        self.loramoe_importance: list[torch.Tensor] = []

    def init_from_base(self, weight_of: Callable, hot: list[int], scale: float) -> None:
        pass

    def add_update_(self, out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int], scale: float,
                    *, weight_of: Callable, bias_of: Callable, x_base: torch.Tensor | None = None) -> int:
        bounds = routing.segment_bounds()
        rows, importance = 0, []
        for slot, expert in enumerate(hot):
            lo, hi = bounds[expert], bounds[expert + 1]
            if hi == lo:
                continue
            update, q = mixture_lora(x[lo:hi], self.lora_A[slot], self.lora_B[slot], self.lora_router[slot], scale)
            out[lo:hi] += update
            importance.append(q)
            rows += hi - lo
        self.loramoe_importance = importance if (self.training and torch.is_grad_enabled()) else []
        return rows

    def merged_weight(self, slot: int, weight: torch.Tensor, scale: float) -> torch.Tensor:
        raise HelloraError(NOT_MERGEABLE)


def balance_loss_of(importance: torch.Tensor, delta: float) -> torch.Tensor:
    """LoRAMoE's localized balancing loss of one Linear: importance (N,) of task data -> scalar."""
    n = importance.shape[-1]
    if n < 2:
        return importance.new_zeros(())
    weight = torch.full((n,), 1.0 - delta, device=importance.device)
    weight[: n // 2] = 1.0 + delta  # task-group experts
    z = importance * weight
    return z.var() / (z.mean() ** 2 + 1e-10)


def loramoe_balance_loss(model: nn.Module, delta: float | None = None) -> torch.Tensor:
    """Mean localized balancing loss over every LoRAMoE Linear (and fused hot expert) of the last training forward.

    `delta` defaults to the attached config's `loramoe_delta`. Returns a 0-dim tensor (zero when nothing was
    recorded: eval forwards, no LoRAMoE adapters); the trainer adds `config.loramoe_balance * loss` to its loss.
    """
    if delta is None:
        state = getattr(model, "hellora_adapter", None)
        delta = state.config.loramoe_delta if state is not None else 0.1
    terms = [balance_loss_of(q, delta) for m in model.modules() for q in getattr(m, "loramoe_importance", [])]
    if not terms:
        p = next(model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)
    return torch.stack(terms).mean()
