"""A fused expert weight (E, rows, cols) whose experts are each stored in the compute dtype, int8 or NF4.

It replaces a transformers experts module's `gate_up_proj` / `down_proj` parameter in place and answers what the
code around it asks of that parameter (`shape`, `dtype`, `device`, `requires_grad`, `weight[e]`), so the hot-expert
wrapper and the expert-subset op keep one code path. What it never does is build the whole (E, rows, cols) tensor:
`expert(e)` dequantizes one expert, and the op (`kernels/quantized.py`) asks for one expert at a time, in the
forward and again in the backward.

Buffers (Q experts of a precision, in the order of `experts_of(precision)`):

    kept                      (K, rows, cols)  compute dtype
    int8_qdata                (Q, rows, cols)  int8        int8_scale (Q, rows, 1) float32, int8_zero_point (Q, rows, 1)
    nf4_quantized_data        (Q, rows*cols/2) uint8       nf4_quantized_scalers (Q, n_blocks) int8,
    nf4_quantization_factor   (Q, n_groups)    compute     nf4_scaler_mean (Q,) compute, nf4_table (16,) compute

so `model.to(device)`, parameter + buffer byte counts and `state_dict` see the stored bytes as they are.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from hellora.quant import formats
from hellora.choices import ExpertPrecision

INT8_BUFFERS = {f"int8_{name}": name for name in formats.INT8_FIELDS}
NF4_BUFFERS = {f"nf4_{name}": name for name in formats.NF4_FIELDS}


class QuantizedExpertWeight(nn.Module):
    """Experts of one fused weight, each in the precision `precisions[e]` asks for."""

    is_expert_store = True  # what `models.families` recognises a fused weight by, beside a tensor

    def __init__(self, weight: torch.Tensor, precisions: list[ExpertPrecision]) -> None:
        super().__init__()
        if weight.dim() != 3 or len(precisions) != weight.shape[0]:
            raise ValueError(f"expected (E, rows, cols) and E precisions, got {tuple(weight.shape)}, {len(precisions)}")
        self.full_shape = torch.Size(weight.shape)
        self.compute_dtype = weight.dtype
        self.precisions = [ExpertPrecision.parse(p, "precision") for p in precisions]
        self.slot = [0] * len(precisions)  # expert -> index among the experts of its precision
        counts = {p: 0 for p in ExpertPrecision}
        for e, p in enumerate(self.precisions):
            self.slot[e], counts[p] = counts[p], counts[p] + 1
        with torch.no_grad():
            kept = [weight[e] for e, p in enumerate(self.precisions) if p is ExpertPrecision.KEEP]
            if kept:
                self.register_buffer("kept", torch.stack(kept).clone())
            self._register_quantized(weight, ExpertPrecision.INT8, formats.quantize_int8, INT8_BUFFERS)
            self._register_quantized(weight, ExpertPrecision.NF4, formats.quantize_nf4, NF4_BUFFERS)

    def _register_quantized(self, weight: torch.Tensor, precision: ExpertPrecision,
                            quantize: Callable[[torch.Tensor], dict[str, torch.Tensor]], names: dict[str, str]) -> None:
        experts = self.experts_of(precision)
        if not experts:
            return
        parts = [quantize(weight[e]) for e in experts]  # one expert at a time: no full-size temporary
        for buffer, field in names.items():
            self.register_buffer(buffer, torch.stack([p[field] for p in parts]))
        if precision is ExpertPrecision.NF4:
            self.register_buffer("nf4_table", parts[0]["nf4"].clone())

    def experts_of(self, precision: ExpertPrecision | str) -> list[int]:
        precision = ExpertPrecision.parse(precision, "precision")
        return [e for e, p in enumerate(self.precisions) if p is precision]

    @property
    def shape(self) -> torch.Size:
        return self.full_shape

    @property
    def dtype(self) -> torch.dtype:
        return self.compute_dtype

    @property
    def device(self) -> torch.device:
        return next(self.buffers()).device

    @property
    def requires_grad(self) -> bool:
        return False  # the frozen base: adapters train, the stored experts never do

    def dim(self) -> int:
        return 3

    def size(self, dim: int | None = None) -> torch.Size | int:
        return self.full_shape if dim is None else self.full_shape[dim]

    def expert(self, e: int) -> torch.Tensor:
        """Expert `e`'s (rows, cols) weight in the compute dtype: a view for a kept expert, else dequantized."""
        precision, i = self.precisions[e], self.slot[e]
        if precision is ExpertPrecision.KEEP:
            return self._buffers["kept"][i]  # type: ignore[index]
        if precision is ExpertPrecision.INT8:
            return formats.dequantize_int8({f: getattr(self, b)[i] for b, f in INT8_BUFFERS.items()},
                                           self.compute_dtype)
        parts = {f: getattr(self, b)[i] for b, f in NF4_BUFFERS.items()}
        rows, cols = self.full_shape[1:]
        return formats.dequantize_nf4({**parts, "nf4": self._buffers["nf4_table"]}, (rows, cols),  # type: ignore[dict-item]
                                      self.compute_dtype)

    def __getitem__(self, e: int) -> torch.Tensor:
        return self.expert(int(e))

    def dequantized(self) -> torch.Tensor:
        """The whole (E, rows, cols) weight in the compute dtype: for a merged export only, never in training."""
        return torch.stack([self.expert(e) for e in range(self.full_shape[0])])

    def stored_bytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def extra_repr(self) -> str:
        counts = {p.value: len(self.experts_of(p)) for p in ExpertPrecision if self.experts_of(p)}
        return f"shape={tuple(self.full_shape)}, dtype={self.compute_dtype}, experts={counts}"
