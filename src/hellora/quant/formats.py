"""int8 and NF4 for one expert's 2-D weight, through torchao (the library choice: docs/methods.md).

torchao's `Int8Tensor.from_hp(w, PerRow())` (the format of its `Int8WeightOnlyConfig`: symmetric, one float32 scale
per row) and `to_nf4(w, block, group)` (QLoRA's NF4 with double-quantized absmax scales) are plain PyTorch ops, so
they run on CPU and CUDA alike. hellora keeps only their inner tensors (stacked over experts as buffers, see
`store.py`) and rebuilds one expert's torchao tensor to dequantize it: the values a forward sees are torchao's own
`dequantize()` / `get_original_weight()`, bit for bit.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TYPE_CHECKING

import torch

from hellora.quant.sizes import nf4_blocks
from hellora.utils.errors import HelloraError

if TYPE_CHECKING:
    from torchao.quantization.quantize_.workflows.int8.int8_tensor import Int8Tensor

INT8_FIELDS = ("qdata", "scale", "zero_point")
NF4_FIELDS = ("quantized_data", "quantized_scalers", "quantization_factor", "scaler_mean")


def require_torchao(field: str = "model.cold_experts") -> None:
    """Import torchao (quietly: it logs about CUDA extensions a CPU build lacks), or one error naming the fix."""
    quiet = logging.getLogger("torchao")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        import torchao  # noqa: F401
    except ImportError:
        raise HelloraError(f"{field}: int8 / nf4 experts need torchao; pip install 'hellora[quant]'") from None
    finally:
        quiet.setLevel(level)


def _int8_tensor() -> type[Int8Tensor]:
    require_torchao()
    from torchao.quantization.quantize_.workflows.int8.int8_tensor import Int8Tensor

    return Int8Tensor


def _nf4() -> ModuleType:
    require_torchao()
    from torchao.quantization.quantize_.workflows.nf4 import nf4_tensor

    return nf4_tensor


def quantize_int8(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """(rows, cols) -> qdata int8 (rows, cols), scale float32 (rows, 1), zero_point int8 (rows, 1)."""
    from torchao.quantization.granularity import PerRow

    q = _int8_tensor().from_hp(weight.detach().contiguous(), PerRow())
    return {"qdata": q.qdata, "scale": q.scale, "zero_point": q.zero_point}


def dequantize_int8(parts: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """torchao's dequantization of one expert (rows, cols), in `dtype`."""
    qdata = parts["qdata"]
    q = _int8_tensor()(qdata, parts["scale"], [1, qdata.shape[-1]], dtype, zero_point=parts["zero_point"])
    return q.dequantize()


def quantize_nf4(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """(rows, cols) -> quantized_data uint8 (n/2,), quantized_scalers int8 (n/block,), quantization_factor
    (n/block/group,) and scaler_mean () in the weight's dtype; plus the code table `nf4` (16,)."""
    block, group = nf4_blocks(weight.numel())
    t = _nf4().to_nf4(weight.detach().contiguous(), block_size=block, scaler_block_size=group)
    return {**{name: getattr(t, name) for name in NF4_FIELDS}, "nf4": t.nf4}


def dequantize_nf4(parts: dict[str, torch.Tensor], shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """torchao's dequantization (`NF4Tensor.get_original_weight`) of one expert, (rows, cols) in `dtype`."""
    module = _nf4()
    numel = shape[0] * shape[1]
    block, group = nf4_blocks(numel)
    data = parts["quantized_data"]
    meta = module.SubclassTensorArgs(torch.Size(shape), (shape[1], 1), 0, dtype, data.device, False)
    t = module.NF4Tensor(meta, block, numel // block, group, parts["quantized_scalers"], parts["quantization_factor"],
                         parts["scaler_mean"], data, parts["nf4"])
    return t.get_original_weight()
