"""LoRA on an `nn.Linear`: attention projections, shared experts, dense MLPs, and ModuleList experts.

    y = x W^T (+ b)  +  (alpha / r) * dropout(x) A^T B^T        A: (r, in), B: (out, r)

B is read through `effective_b` (B * lora_B_mask under LoRI-S). The DoRA variant is `dora.DoRALinear`.
Projections called on one input (q/k/v) may take x A^T from their `shared_input` group (shared_input.py).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from hellora.adapters.base import AdapterLayer, effective_b, new_lora_pair


class InputSharing(Protocol):
    """What a LoRALinear asks of its `shared_input` group (`shared_input.SharedInputGroup`, which imports this)."""

    def lora_input(self, member: LoRALinear, x: torch.Tensor) -> torch.Tensor: ...


class LoRALinear(AdapterLayer):
    base_layer: nn.Linear
    shared_input: InputSharing | None  # its group (plain LoRALinear without dropout only)

    def __init__(
        self, base_layer: nn.Linear, r: int, alpha: float, *, role: str, dropout: float = 0.0,
        dtype: torch.dtype = torch.float32, init: str = "default", generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(base_layer, r, alpha)
        self.role = role
        self.lora_A, self.lora_B = new_lora_pair(
            (r, base_layer.in_features), (base_layer.out_features, r),
            device=base_layer.weight.device, dtype=dtype, init=init, generator=generator,
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shared_input = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        if not self.adapter_enabled:
            return y
        if self.shared_input is not None:
            xa = self.shared_input.lora_input(self, x)  # (.., r)
        else:
            xa = F.linear(self.dropout(x), self.lora_A.to(x.dtype))
        return y + F.linear(xa, effective_b(self).to(x.dtype)) * self.scale

    def delta_weight(self) -> torch.Tensor:
        """(out, in) = scale * B @ A, in float32."""
        return (effective_b(self).float() @ self.lora_A.float()) * self.scale

    @torch.no_grad()
    def merged_base(self) -> nn.Linear:
        w = self.base_layer.weight
        w.copy_((w.float() + self.delta_weight().to(w.device)).to(w.dtype))
        return self.base_layer
