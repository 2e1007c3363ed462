"""Grouped linear layers over expert segments: `out[rows of e] = x[rows of e] @ W[e]^T (+ b[e])`.

Uses `torch.nn.functional.grouped_mm` (or `torch._grouped_mm`) where the device, dtype and alignment allow,
which is what transformers 5 runs by default, and an explicit per-expert loop otherwise. The loop is also the
independent reference the tests compare against.
"""

from __future__ import annotations

import torch

from hellora.kernels.routing import ExpertRouting

_grouped_mm = getattr(torch.nn.functional, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


def _grouped_mm_usable(x: torch.Tensor, weight_t: torch.Tensor) -> bool:
    if _grouped_mm is None or x.dtype != weight_t.dtype:
        return False
    if x.dtype not in (torch.float32, torch.bfloat16, torch.float16):  # e.g. float64 checks: the loop
        return False
    if x.device.type == "cuda":
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (8, 0)
    if x.device.type != "cpu":
        return False
    # The CPU kernel wants 16-byte aligned pointers and strides.
    item = x.element_size()
    return (
        x.data_ptr() % 16 == 0
        and weight_t.data_ptr() % 16 == 0
        and (x.shape[-1] * item) % 16 == 0
        and (weight_t.shape[-1] * item) % 16 == 0
        and (weight_t.shape[-2] * item) % 16 == 0
    )


def grouped_linear_loop(
    x: torch.Tensor, weight: torch.Tensor, routing: ExpertRouting, bias: torch.Tensor | None = None,
    transposed: bool = False,
) -> torch.Tensor:
    """Reference: one matmul per non-empty expert segment.

    x: (S, in) sorted rows; weight: (E, out, in), or (E, in, out) when `transposed`; bias: (E, out).
    Returns (S, out).
    """
    bounds = routing.segment_bounds()
    pieces = []
    for e in range(routing.num_experts):
        lo, hi = bounds[e], bounds[e + 1]
        if hi == lo:
            continue
        w = weight[e] if transposed else weight[e].t()
        y = x[lo:hi] @ w
        if bias is not None:
            y = y + bias[e]
        pieces.append(y)
    if not pieces:
        out_features = weight.shape[-1] if transposed else weight.shape[-2]
        return x.new_zeros(0, out_features)
    return torch.cat(pieces, dim=0)


def grouped_linear(
    x: torch.Tensor, weight: torch.Tensor | torch.nn.Module, routing: ExpertRouting, bias: torch.Tensor | None = None,
    transposed: bool = False,
) -> torch.Tensor:
    """Grouped `x @ W[e]^T` over the expert segments of `routing`; (S, in) -> (S, out).

    A weight stored per expert (`hellora.quant.QuantizedExpertWeight`, not a tensor) takes the per-expert op of
    `quantized.py`, which dequantizes one expert at a time."""
    if not isinstance(weight, torch.Tensor):
        from hellora.kernels.quantized import ExpertStore, quantized_grouped_linear

        assert isinstance(weight, ExpertStore)  # a module that stores its experts one by one
        return quantized_grouped_linear(x, weight, routing, bias, transposed)
    weight_t = weight if transposed else weight.transpose(-2, -1)  # (E, in, out)
    if not _grouped_mm_usable(x, weight_t):
        return grouped_linear_loop(x, weight, routing, bias, transposed)
    assert _grouped_mm is not None  # _grouped_mm_usable said so
    out = _grouped_mm(x, weight_t, offs=routing.ends)
    if bias is not None:
        out = out + bias[routing.expert_ids]
    return out
