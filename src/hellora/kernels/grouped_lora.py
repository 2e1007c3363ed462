"""Batched backend of the expert-subset LoRA op: every expert hot (LoRA on all experts) as grouped products.

When the hot set is every expert, each row of the sorted batch is a hot row and an expert's LoRA pair is just
one more grouped linear layer of rank r. So instead of 3 x E small matmuls per projection (the per-expert loop of
`subset_lora.TorchSubsetLoRA`, whose Python and dispatch overhead dominates at r = 8..64 on a CPU), each product
is one `grouped_mm` over the same expert offsets as the base product:

    forward     xa  = grouped(x, A^T)              (S, r)      A (E, r, in)
                out[:, cols] += s * grouped(xa, B^T)            B (E, |cols|, r)
    backward    dxa = s * grouped(g[:, cols], B)   (S, r)
                dB  = s * grouped_k(g[:, cols]^T, xa)           (E, |cols|, r)   offsets split the row (K) dimension
                dA  = grouped_k(dxa^T, x)          (E, r, in)
                dx += grouped(dxa, A)              (S, in)

`grouped_k` is `grouped_mm`'s 2-D x 2-D form: the offsets split the shared dimension, one output per group,
so an expert with no rows gets an exact zero gradient. The weights are handed over contiguous in the (E, K, N)
layout the CPU kernel is fast on (a transposed view runs several times slower there).

Serves only the every-expert case, with `grouped_mm` usable for the dtype, device and alignment (float32 /
bfloat16 / float16 on CPU, bfloat16 on CUDA with sm80+; 16-byte aligned rows). Anything else returns None from
`usable`, and the caller uses the per-expert loop. A proper subset (hellora's K hot of E) keeps the loop: its
rows are not contiguous, and K is small.
"""

from __future__ import annotations

from typing import Sequence

import torch

from hellora.kernels.routing import Columns, ExpertRouting, LoRAPairs, PairGrads

_grouped_mm = getattr(torch.nn.functional, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


def usable(x: torch.Tensor, routing: ExpertRouting, hot: list[int], pairs: LoRAPairs) -> bool:
    """Whether the batched backend serves this call: every expert hot, and `grouped_mm` takes x's dtype, device
    and every operand's row widths (16-byte multiples)."""
    if _grouped_mm is None or len(hot) != routing.num_experts or x.shape[0] == 0:
        return False
    if x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return False
    if x.device.type == "cuda":
        if x.dtype != torch.bfloat16 or torch.cuda.get_device_capability(x.device) < (8, 0):
            return False
    elif x.device.type != "cpu":
        return False
    item = x.element_size()
    widths = {x.shape[1]} | {a.shape[1] for a, _ in pairs} | {b.shape[1] for _, b in pairs}
    return all((w * item) % 16 == 0 for w in widths)


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """`t` contiguous with a 16-byte aligned start (the CPU kernel's requirement; a fresh tensor always is)."""
    t = t.contiguous()
    return t if t.data_ptr() % 16 == 0 else t.clone()


class GroupedSubsetLoRA:
    """Every-expert hot-row work as grouped products; the same interface as `subset_lora.TorchSubsetLoRA`."""

    @staticmethod
    def forward_(out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int], hot_ids: torch.Tensor,
                 blocks: Sequence[Columns], pairs: LoRAPairs, scale: float) -> list[torch.Tensor]:
        assert _grouped_mm is not None  # usable() said so
        x = _aligned(x)
        offs = routing.ends
        kept = []
        for block, (a, b) in zip(blocks, pairs):
            xa = _grouped_mm(x, a.transpose(-2, -1).contiguous(), offs=offs)  # (S, r)
            delta = _grouped_mm(xa, b.transpose(-2, -1).contiguous(), offs=offs)  # (S, |cols|)
            block.of(out).add_(delta, alpha=scale)
            routing.adapter_rows += x.shape[0]
            kept.append(xa)
        return kept

    @staticmethod
    def backward_(dx: torch.Tensor | None, g: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int],
                  hot_ids: torch.Tensor, blocks: Sequence[Columns], pairs: LoRAPairs, xa: Sequence[torch.Tensor],
                  scale: float, need_a: bool, need_b: bool) -> PairGrads:
        assert _grouped_mm is not None  # usable() said so
        x = _aligned(x)
        offs = routing.ends
        grads: PairGrads = []
        for block, (a, b), xa_p in zip(blocks, pairs, xa):
            gs = _aligned(block.of(g))  # (S, |cols|)
            dxa = _grouped_mm(gs, _aligned(b), offs=offs).mul_(scale)  # (S, r)
            db = _grouped_mm(gs.t(), xa_p, offs=offs).mul_(scale) if need_b else None  # (E, |cols|, r)
            da = _grouped_mm(dxa.t(), x, offs=offs) if need_a else None  # (E, r, in); a (r, S) view: row stride r
            if dx is not None:
                dx.add_(_grouped_mm(dxa, _aligned(a), offs=offs))
            grads.append((da, db))
        return grads
