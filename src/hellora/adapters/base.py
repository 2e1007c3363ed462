"""The common shape of every hellora adapter layer.

An adapter layer wraps the frozen module it adapts (`base_layer`), owns its LoRA weights (every trainable
parameter's name contains `lora_`), can be switched off, and knows how to fold itself into its base module
(`merged_base`). Attribute reads it does not know fall through to the base module, so model code that reads
`self.q_proj.weight` or `self.gate.top_k` keeps working after wrapping.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class AdapterLayer(nn.Module):
    """Base class: `base_layer` + LoRA weights + an on/off switch."""

    role: str = "adapter"  # attention | router | experts | shared | dense

    def __init__(self, base_layer: nn.Module, r: int, alpha: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.r = r
        self.alpha = float(alpha)
        self.scale = self.alpha / r
        self.adapter_enabled = True

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self._modules["base_layer"], name)

    def merged_base(self) -> nn.Module:
        """The base module with this adapter's update folded into its weights (in place)."""
        raise NotImplementedError


def new_lora_pair(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], *, device, dtype: torch.dtype, init: str,
    generator: torch.Generator | None,
) -> tuple[nn.Parameter, nn.Parameter]:
    """A (.., r, in) Kaiming-uniform as PEFT does; B (.., out, r) zero, or small random for `init="random"`.

    On the meta device (parameter accounting) no values are drawn.
    """
    a = torch.empty(shape_a, device=device, dtype=dtype)
    b = torch.empty(shape_b, device=device, dtype=dtype)
    if a.device.type != "meta":
        fan_in = shape_a[-1]
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) bound
        a.copy_(torch.rand(shape_a, generator=generator, dtype=torch.float32).mul_(2 * bound).sub_(bound))
        if init == "random":
            b.copy_(torch.randn(shape_b, generator=generator, dtype=torch.float32).mul_(0.5 / math.sqrt(shape_b[-1])))
        else:
            b.zero_()
    return nn.Parameter(a), nn.Parameter(b)
