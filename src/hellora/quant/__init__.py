"""Frozen experts stored as int8 or NF4 (torchao), per expert, after hot-expert selection.

`quantize_experts(model, placement, cold="nf4", hot="keep")` stores the cold experts quantized and keeps the hot
ones (those that carry adapters) in the compute dtype; `dequantize_experts` undoes it; `quant.sizes` counts the
stored bytes from shapes alone (the memory plan). Names are imported on first use, so the torch-free byte counts
do not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hellora.quant.apply import adapted_experts as adapted_experts
    from hellora.quant.apply import dequantize_experts as dequantize_experts
    from hellora.quant.apply import is_quantized as is_quantized
    from hellora.quant.apply import quantization_record as quantization_record
    from hellora.quant.apply import quantize_experts as quantize_experts
    from hellora.quant.store import QuantizedExpertWeight as QuantizedExpertWeight

_HOMES = {"quantize_experts": "apply", "dequantize_experts": "apply", "adapted_experts": "apply",
          "is_quantized": "apply", "quantization_record": "apply", "QuantizedExpertWeight": "store"}

__all__ = ["QuantizedExpertWeight", "adapted_experts", "dequantize_experts", "is_quantized",
           "quantization_record", "quantize_experts"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
