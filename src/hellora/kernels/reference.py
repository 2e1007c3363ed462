"""The expert-subset LoRA op, reference implementation (plain PyTorch, any device).

For each hot expert e (adapter slot j), over e's rows of the sorted batch only:

    out[rows(e)] += scale * (x[rows(e)] @ A[j]^T) @ B[j]^T        A: (K, r, in), B: (K, out, r)

`out` may be a strided view (e.g. the gate columns of a fused gate_up output) and is updated in place, so
the adapter never copies the rows of cold experts, nor gathers rows at all: an expert's rows are one contiguous
segment of the sorted batch (see `routing.py`). Cold experts' rows are never read or written here, which is
what makes their outputs bitwise equal to the frozen model's and their adapter cost zero.
"""

from __future__ import annotations

import torch

from hellora.kernels.routing import ExpertRouting


def expert_subset_lora_(
    out: torch.Tensor,
    x: torch.Tensor,
    routing: ExpertRouting,
    hot_experts: list[int],
    lora_A: torch.Tensor,
    lora_B: torch.Tensor,
    scale: float,
) -> int:
    """Add the LoRA update of the hot experts into `out` (S, out) in place; returns the rows it touched."""
    bounds = routing.segment_bounds()
    rows = 0
    for slot, expert in enumerate(hot_experts):
        lo, hi = bounds[expert], bounds[expert + 1]
        if hi == lo:
            continue
        a = lora_A[slot].to(x.dtype)
        b = lora_B[slot].to(x.dtype)
        out[lo:hi] += ((x[lo:hi] @ a.t()) @ b.t()) * scale
        rows += hi - lo
    return rows
