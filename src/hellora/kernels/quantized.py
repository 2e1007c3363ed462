"""Grouped expert linear layer over a weight stored per expert (`hellora.quant.QuantizedExpertWeight`).

The fused grouped product needs all E experts as one tensor; with cold experts stored as int8 or NF4 that tensor
would be the very thing quantization saves. This op walks the experts instead and dequantizes one at a time:

    forward    out[rows(e)] = x[rows(e)] @ W[e]^T (+ b[e])      W[e] = store.expert(e)   (S, in) -> (S, out)
    backward   dx[rows(e)]  = g[rows(e)] @ W[e]                  W[e] dequantized again, not kept

so at most one expert's dequantized weight is alive at a time, forward or backward (autograd over the loop would
keep every W[e] for the backward). The weight and its bias are frozen: there is no weight or bias gradient.
Experts with no rows are not dequantized at all.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from hellora.kernels.routing import ExpertRouting


@runtime_checkable
class ExpertStore(Protocol):
    """What the per-expert op reads of a weight stored per expert (`hellora.quant.QuantizedExpertWeight`)."""

    @property
    def shape(self) -> torch.Size: ...

    def expert(self, e: int) -> torch.Tensor: ...


def per_expert_linear(x: torch.Tensor, store: ExpertStore, routing: ExpertRouting, bias: torch.Tensor | None,
                      transposed: bool) -> torch.Tensor:
    """`x @ W[e]^T (+ b[e])` per expert segment, W[e] from `store.expert(e)` ((out, in), or (in, out) when
    `transposed`); (S, in) -> (S, out). No autograd: the caller's op owns the backward."""
    bounds = routing.segment_bounds()
    out_features = store.shape[-1] if transposed else store.shape[-2]
    out = x.new_empty(x.shape[0], out_features)
    for e in range(routing.num_experts):
        lo, hi = bounds[e], bounds[e + 1]
        if hi == lo:
            continue
        w = store.expert(e)
        y = x[lo:hi] @ (w if transposed else w.t())
        if bias is not None:
            y = y + bias[e]
        out[lo:hi] = y
    return out


class _PerExpertLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, store, routing, transposed):
        ctx.meta = (store, routing, transposed)
        return per_expert_linear(x, store, routing, bias, transposed)

    @staticmethod
    def backward(ctx, g):
        store, routing, transposed = ctx.meta
        dx = per_expert_linear(g.contiguous(), store, routing, None, not transposed) if ctx.needs_input_grad[0] \
            else None
        return dx, None, None, None, None


def quantized_grouped_linear(x: torch.Tensor, store: ExpertStore, routing: ExpertRouting, bias: torch.Tensor | None = None,
                             transposed: bool = False) -> torch.Tensor:
    """The grouped linear layer of `grouped.grouped_linear` over a per-expert store, as one autograd node."""
    if bias is not None and bias.requires_grad:
        raise ValueError("quantized experts are frozen: their bias cannot train")
    return _PerExpertLinear.apply(x, bias, store, routing, transposed)
