"""LoRA on a transformers 5 router: a module with a raw `weight (E, H)`, not an `nn.Linear`.

Routers differ per family after the logits (softmax or sigmoid, correction bias, grouped top-k), so rather
than re-implementing each, the wrapper runs the router's own forward with its weight replaced by
W + (alpha / r) * B @ A through `torch.func.functional_call`. Folding costs E*r*H multiply-adds per call,
far less than the T*H*r + T*r*E of applying A and B to T tokens, and hooks registered on the router (such as
transformers' router-logit recorder) still fire because its real module runs. Subclasses (DoRA) change only
`adapted_weight`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from hellora.adapters.base import AdapterLayer, effective_b, new_lora_pair


class RouterLoRA(AdapterLayer):
    role = "router"

    def __init__(
        self, base_layer: nn.Module, r: int, alpha: float, *, dtype: torch.dtype = torch.float32,
        init: str = "default", generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(base_layer, r, alpha)
        num_experts, hidden = self._base_weight().shape
        self.lora_A, self.lora_B = new_lora_pair(
            (r, hidden), (num_experts, r), device=self._base_weight().device, dtype=dtype, init=init,
            generator=generator,
        )

    def delta_weight(self) -> torch.Tensor:
        """(E, H) = scale * B @ A in float32."""
        return (effective_b(self).float() @ self.lora_A.float()) * self.scale

    def _base_weight(self) -> torch.Tensor:
        """The router's raw (E, H) weight."""
        w = self.base_layer.weight
        assert isinstance(w, torch.Tensor)  # a router module with a raw `weight` parameter (see the module doc)
        return w

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.adapter_enabled:
            return self.base_layer(*args, **kwargs)
        return functional_call(self.base_layer, {"weight": self.adapted_weight()}, args, kwargs)

    def adapted_weight(self) -> torch.Tensor:
        """(E, H) W + scale * B @ A in the base weight's dtype, differentiable in A and B."""
        w = self._base_weight()
        return w + (effective_b(self).to(w.dtype) @ self.lora_A.to(w.dtype)) * self.scale

    @torch.no_grad()
    def merged_base(self) -> nn.Module:
        w = self._base_weight()
        w.copy_((w.float() + self.delta_weight().to(w.device)).to(w.dtype))
        return self.base_layer
