"""The common shape of every hellora adapter layer.

An adapter layer wraps the frozen module it adapts (`base_layer`), owns its LoRA weights (every trainable
parameter's name contains `lora_`), can be switched off, and knows how to fold itself into its base module
(`merged_base`; layers whose update depends on the input, such as LoRAMoE, set `mergeable = False`).
A LoRA pair may carry a bool buffer `lora_B_mask` (LoRI-S): every computation then reads B through
`effective_b`, i.e. B * mask, so masked-out entries never affect the output and get exactly zero gradient.
Attribute reads it does not know fall through to the base module, so model code that reads
`self.q_proj.weight` or `self.gate.top_k` keeps working after wrapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hellora.choices import AdapterInit


class AdapterLayer(nn.Module):
    """Base class: `base_layer` + LoRA weights + an on/off switch."""

    role: str = "adapter"  # attention | router | experts | shared | dense
    mergeable: bool = True  # False where the update depends on the input (LoRAMoE) and cannot be folded

    def __init__(self, base_layer: nn.Module, r: int, alpha: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.r = r
        self.alpha = float(alpha)
        self.scale = self.alpha / r
        self.adapter_enabled = True

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self._modules["base_layer"], name)

    def merged_base(self) -> nn.Module:
        """The base module with this adapter's update folded into its weights (in place)."""
        raise NotImplementedError


def effective_b(module: nn.Module) -> torch.Tensor:
    """`module.lora_B`, times its `lora_B_mask` buffer when it has one (LoRI-S)."""
    mask = module._buffers.get("lora_B_mask")
    b = module._parameters["lora_B"]
    assert b is not None  # every LoRA pair registers its B
    return b if mask is None else b * mask


def kaiming_uniform_(t: torch.Tensor, fan_in: int, generator: torch.Generator | None) -> torch.Tensor:
    """In place, PEFT's / nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); nothing on meta."""
    if t.device.type != "meta":
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) bound
        t.copy_(torch.rand(t.shape, generator=generator, dtype=torch.float32).mul_(2 * bound).sub_(bound))
    return t


@dataclass(frozen=True)
class NewWeights:
    """How an adapter's new weights are made: on `device`, in `dtype`, B zero (`init` "default") or small random
    ("random"), values drawn from `generator` (None: torch's global one)."""

    device: Any
    dtype: torch.dtype = torch.float32
    init: str = "default"
    generator: torch.Generator | None = None


def new_lora_pair(
    shape_a: tuple[int, ...], shape_b: tuple[int, ...], *, device: torch.device | str | None, dtype: torch.dtype,
    init: str,
    generator: torch.Generator | None,
) -> tuple[nn.Parameter, nn.Parameter]:
    """A (.., r, in) Kaiming-uniform as PEFT does; B (.., out, r) zero, or small random for `init="random"`.

    On the meta device (parameter accounting) no values are drawn.
    """
    a = torch.empty(shape_a, device=device, dtype=dtype)
    b = torch.empty(shape_b, device=device, dtype=dtype)
    if a.device.type != "meta":
        kaiming_uniform_(a, shape_a[-1], generator)
        if init == AdapterInit.RANDOM:
            b.copy_(torch.randn(shape_b, generator=generator, dtype=torch.float32).mul_(0.5 / math.sqrt(shape_b[-1])))
        else:
            b.zero_()
    return nn.Parameter(a), nn.Parameter(b)
