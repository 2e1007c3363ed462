"""The expert-subset LoRA op: a grouped expert linear layer whose hot experts carry LoRA pairs, as one autograd node.

For S rows sorted by expert (`routing.py`), a frozen fused weight W (E experts) and K hot experts (slot j is
expert hot[j]), each LoRA pair p writing a block of output columns `cols_p`:

    out = grouped(x, W) (+ bias)                                        (S, out)   every expert
    out[rows(hot[j]), cols_p] += s * (x[rows] @ A_p[j]^T) @ B_p[j]^T    A_p (K, r, in), B_p (K, |cols_p|, r)

Why one custom node instead of autograd over the reference loop (`reference.py`): an in-place add into a view
(an expert's rows, the gate columns of gate_up) makes autograd record a CopySlices node per add, whose backward
clones the whole (S, out) gradient: 3 x K full-size copies per layer per step, more than the LoRA itself costs.
Here the backward is written out, still touching only hot rows:

    dx      = grouped(g, W^T)  ;  dx[rows] += (s * g[rows, cols_p] @ B_p[j]) @ A_p[j]
    dB_p[j] = s * g[rows, cols_p]^T @ xa_p[rows]          xa_p = x @ A_p^T, kept from the forward (S, r)
    dA_p[j] = (s * g[rows, cols_p] @ B_p[j])^T @ x[rows]

so cold experts' rows are never read or written by adapter code, forward or backward, and their adapters cost
zero FLOPs. W and its bias are frozen (no gradient); callers with a trainable W use the reference path.

Three backends compute the hot-row work: `torch` (a loop over hot experts with per-segment matmuls; the segment
bounds are read to the host once per call, free on CPU), its batched form when every expert is hot
(`grouped_lora.py`: one grouped product per LoRA factor instead of E small ones) and `triton`
(`triton_subset_lora.py`, CUDA: no host sync, one launch per step and pair). All are checked against the
explicit per-expert loop in the tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch

from hellora.kernels import grouped_lora, selfcheck
from hellora.kernels.grouped import grouped_linear
from hellora.kernels.routing import Columns, ExpertRouting, LoRAPairs, PairGrads
from hellora.utils.errors import HelloraError

BACKEND_ENV = "HELLORA_EXPERT_KERNEL"
KERNEL_CHOICES = ("auto", "reference", "torch", "loop", "triton")
# auto: triton on CUDA when importable (and its first-call check passes, `selfcheck.py`), else torch.
# torch: grouped products when every expert is hot and `grouped_mm` serves the dtype (`grouped_lora.py`), else
# the per-expert loop.  loop: always the per-expert loop (to measure the batching against).  reference: the
# in-place per-expert path of `reference.py` under plain autograd (what this op replaces; kept to measure against).


def expert_kernel_choice() -> str:
    """The expert kernel asked for in the environment (`HELLORA_EXPERT_KERNEL`), checked."""
    choice = os.environ.get(BACKEND_ENV, "auto")
    if choice not in KERNEL_CHOICES:
        raise HelloraError(f"{BACKEND_ENV}={choice!r}: choose one of {', '.join(KERNEL_CHOICES)}")
    return choice


@dataclass(frozen=True)
class ColumnBlock:
    """Output columns offset, offset + step, ..., written by one LoRA pair (gate/up of a fused gate_up)."""

    offset: int
    step: int
    width: int

    def of(self, t: torch.Tensor) -> torch.Tensor:
        """The block's columns of `t` (S, out) as a strided view."""
        return t[:, self.offset: self.offset + self.step * self.width: self.step]


def triton_usable(x: torch.Tensor) -> bool:
    """Whether the Triton backend serves `x`: CUDA (or Triton's CPU interpreter when asked for by name), Triton
    importable, and not turned off by the environment."""
    choice = expert_kernel_choice()
    if choice in ("torch", "loop", "reference"):
        return False
    from hellora.kernels import triton_subset_lora

    if choice == "triton":
        if not triton_subset_lora.available():
            raise HelloraError(f"{BACKEND_ENV}=triton but triton cannot be imported (pip install triton)")
        if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise HelloraError(f"{BACKEND_ENV}=triton on {x.device.type} tensors needs TRITON_INTERPRET=1 "
                               "(Triton's interpreter) set before triton is imported")
        return True
    on_device = x.device.type == "cuda" or selfcheck.cpu_interpreter_allowed()
    return on_device and triton_subset_lora.available()


def _hot_segments(routing: ExpertRouting, hot: list[int]):
    """(slot, first row, end row) of each hot expert that received rows (host-side bounds)."""
    bounds = routing.segment_bounds()
    for slot, e in enumerate(hot):
        if bounds[e + 1] > bounds[e]:
            yield slot, bounds[e], bounds[e + 1]


class TorchSubsetLoRA:
    """Hot-row work as plain PyTorch matmuls per hot expert segment (any device)."""

    @staticmethod
    def forward_(out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int], hot_ids: torch.Tensor,
                 blocks: Sequence[Columns], pairs: LoRAPairs, scale: float) -> list[torch.Tensor]:
        """Add each pair's update into its block of `out` (S, out) on hot rows, in place; returns xa (S, r) per pair."""
        xa = [x.new_empty(x.shape[0], a.shape[1]) for a, _ in pairs]  # (S, r) per pair, hot rows filled
        for slot, lo, hi in _hot_segments(routing, hot):
            xs = x[lo:hi]
            for p, (block, (a, b)) in enumerate(zip(blocks, pairs)):
                xa[p][lo:hi] = xs @ a[slot].t()
                block.of(out)[lo:hi] += (xa[p][lo:hi] @ b[slot].t()) * scale
                routing.adapter_rows += hi - lo
        return xa

    @staticmethod
    def backward_(dx: torch.Tensor | None, g: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int],
                  hot_ids: torch.Tensor, blocks: Sequence[Columns], pairs: LoRAPairs, xa: Sequence[torch.Tensor],
                  scale: float, need_a: bool, need_b: bool) -> PairGrads:
        """Add the adapters' input gradient into `dx` (S, in) on hot rows; returns (dA, dB) per pair (None if unneeded)."""
        grads: PairGrads = [(torch.zeros_like(a) if need_a else None, torch.zeros_like(b) if need_b else None)
                            for a, b in pairs]
        for slot, lo, hi in _hot_segments(routing, hot):
            xs = x[lo:hi]
            for p, (block, (a, b)) in enumerate(zip(blocks, pairs)):
                gs = block.of(g)[lo:hi]  # (n, cols)
                dxa = (gs @ b[slot]) * scale  # (n, r)
                da, db = grads[p]  # each None exactly when not needed
                if db is not None:
                    db[slot] = (gs.t() @ xa[p][lo:hi]) * scale
                if da is not None:
                    da[slot] = dxa.t() @ xs
                if dx is not None:
                    dx[lo:hi] += dxa @ a[slot]
        return grads


def _backend(x: torch.Tensor, routing: ExpertRouting, hot: list[int], pairs):
    if triton_usable(x):
        from hellora.kernels.triton_subset_lora import TritonSubsetLoRA

        return TritonSubsetLoRA
    return _torch_backend(x, routing, hot, pairs)


def _torch_backend(x: torch.Tensor, routing: ExpertRouting, hot: list[int], pairs):
    """The batched every-expert backend where it serves the call (and the loop is not asked for), else the loop."""
    if expert_kernel_choice() != "loop" and grouped_lora.usable(x, routing, hot, pairs):
        return grouped_lora.GroupedSubsetLoRA
    return TorchSubsetLoRA


class _GroupedSubsetLoRA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, routing, transposed, hot, hot_ids, blocks, scale, backend, *lora):
        pairs = list(zip(lora[0::2], lora[1::2]))
        out = grouped_linear(x, weight, routing, bias, transposed)
        xa = backend.forward_(out, x, routing, hot, hot_ids, blocks, pairs, scale)
        stored = weight if isinstance(weight, torch.Tensor) else None  # a per-expert store is no tensor to save
        ctx.save_for_backward(x, stored, *lora, *xa)
        ctx.store = None if stored is not None else weight
        ctx.meta = (routing, transposed, hot, hot_ids, blocks, scale, backend, len(pairs))
        return out

    @staticmethod
    def backward(ctx, g):
        routing, transposed, hot, hot_ids, blocks, scale, backend, n = ctx.meta
        x, weight, *rest = ctx.saved_tensors
        weight = ctx.store if weight is None else weight
        lora, xa = rest[: 2 * n], rest[2 * n:]
        pairs = list(zip(lora[0::2], lora[1::2]))
        need_x = ctx.needs_input_grad[0]
        need_a = any(ctx.needs_input_grad[10 + 2 * p] for p in range(n))
        need_b = any(ctx.needs_input_grad[11 + 2 * p] for p in range(n))
        g = g.contiguous()
        # dx of the frozen base: x @ W[e]^T backwards is g @ W[e], i.e. the grouped product with W flipped
        dx = grouped_linear(g, weight, routing, None, not transposed) if need_x else None
        grads = backend.backward_(dx, g, x, routing, hot, hot_ids, blocks, pairs, xa, scale, need_a, need_b)
        flat = [t for pair in grads for t in pair]
        return (dx, None, None, None, None, None, None, None, None, None, *flat)


def grouped_linear_subset_lora(
    x: torch.Tensor, weight: torch.Tensor | torch.nn.Module, routing: ExpertRouting, bias: torch.Tensor | None,
    transposed: bool,
    hot: list[int], hot_ids: torch.Tensor, blocks: list[ColumnBlock], pairs: list[tuple[torch.Tensor, torch.Tensor]],
    scale: float, backend: type | None = None,
) -> torch.Tensor:
    """`grouped(x, W) + bias`, plus each pair's LoRA on the hot experts' rows of its column block; (S, in) -> (S, out).

    weight (E, out, in), or (E, in, out) when `transposed`, frozen (or stored per expert, quantized: the base product
    then dequantizes one expert at a time, `quantized.py`); hot: sorted expert ids (K), hot_ids the same
    as a device tensor; pairs: (A (K, r, in), B (K, |block|, r)) per block, cast to x's dtype by the caller's
    autograd (so their gradients flow back in the adapter's own dtype). `backend`: `TorchSubsetLoRA`,
    `TritonSubsetLoRA` (on CPU tensors it runs in Triton's interpreter: tests), `grouped_lora.GroupedSubsetLoRA`
    (every expert hot), or None to choose by device and hot set.
    """
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("grouped_linear_subset_lora needs a frozen expert weight (use the reference path)")
    lora = [t.to(x.dtype) for pair in pairs for t in pair]
    cast = list(zip(lora[0::2], lora[1::2]))

    def apply(xs, ls, chosen):
        return _GroupedSubsetLoRA.apply(xs, weight, bias, routing, transposed, hot, hot_ids, blocks, scale, chosen,
                                        *ls)

    if backend is None:
        backend = _backend(x, routing, hot, cast)
        if _needs_selfcheck(backend):  # `auto` picked Triton: it must first match torch on this shape class
            fallback = _torch_backend(x, routing, hot, cast)
            if not selfcheck.triton_passes(selfcheck.shape_key(x, blocks, cast), apply, backend, fallback, x, lora,
                                           routing):
                backend = fallback
    return apply(x, lora, backend)


def _needs_selfcheck(backend) -> bool:
    if expert_kernel_choice() != "auto" or selfcheck.mode() == "off":
        return False
    from hellora.kernels.triton_subset_lora import TritonSubsetLoRA

    return backend is TritonSubsetLoRA
