"""Triton backend of the expert-subset LoRA op (`subset_lora.py`): hot rows only, no host synchronisation.

The rows of a batch are sorted by expert, so hot expert hot[j] owns the contiguous rows [start_j, end_j), read
on the device from `routing.ends`. Every kernel's grid is sized from host-known bounds (K hot experts; at most T
rows per expert, since a token picks an expert at most once), and a program whose tile lies past its expert's
last row returns at once. So no row count ever travels to the host, and a cold expert's rows are never loaded.

    lora_fwd     (K, ceil(T/BM))       xa = x[rows] @ A[j]^T (kept, (S, r) float32); out[rows, cols] += s xa @ B[j]^T
    lora_bwd_dx  (K, ceil(T/BM))       dxa = s g[rows, cols] @ B[j] (kept); dx[rows] += dxa @ A[j]
    segment_tn   (K, ceil(N/BN))       W[j] = mult * L[rows_j, :N]^T @ R[rows_j, :r]  (dB: L=g, R=xa; dA: L=x, R=dxa)

Rank r is padded to RP = max(16, next power of two) for `tl.dot` and masked. Products accumulate in float32;
float32 inputs use IEEE products (not TF32). With `TRITON_INTERPRET=1` set before triton is first imported, the
same kernels run on CPU tensors in Triton's interpreter: that is how the CPU tests check them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from hellora.kernels.routing import Columns, ExpertRouting, LoRAPairs, PairGrads

try:  # module globals: the interpreter patches `tl` where the kernels look it up
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs without triton keep the torch backend
    triton = tl = None

BM, BN, BK = 64, 64, 64


def available() -> bool:
    return triton is not None


def _jit(fn):
    """`triton.jit` where triton is installed; the plain function otherwise (never launched then)."""
    return triton.jit(fn) if triton is not None else fn


@_jit
def _segment(HOT, ENDS, j):
    """Rows [start, end) of hot slot j's expert in the sorted batch, read on the device."""
    e = tl.load(HOT + j)
    end = tl.load(ENDS + e).to(tl.int64)
    start = tl.load(ENDS + e - 1, mask=e > 0, other=0).to(tl.int64)
    return start, end


@_jit
def lora_fwd(X, A, B, OUT, XA, ENDS, HOT, scale, n_in, n_cols, r, sx, sa, sb, so, out_off, out_step, sxa,
             BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, RP: tl.constexpr, PREC: tl.constexpr):
    j = tl.program_id(0)
    start, end = _segment(HOT, ENDS, j)
    lo = start + tl.program_id(1) * BM
    if lo >= end:
        return
    rows = lo + tl.arange(0, BM)
    rm = rows < end
    rr = tl.arange(0, RP)
    rk = rr < r
    acc = tl.zeros((BM, RP), dtype=tl.float32)
    for k0 in range(0, n_in, BK):
        kk = k0 + tl.arange(0, BK)
        km = kk < n_in
        xt = tl.load(X + rows[:, None] * sx + kk[None, :], mask=rm[:, None] & km[None, :], other=0.0)
        at = tl.load(A + j * sa + rr[None, :] * n_in + kk[:, None], mask=rk[None, :] & km[:, None],
                     other=0.0)  # (BK, RP) = A[j]^T
        acc += tl.dot(xt, at, input_precision=PREC)
    tl.store(XA + rows[:, None] * sxa + rr[None, :], acc, mask=rm[:, None] & rk[None, :])
    xa = acc.to(X.dtype.element_ty)
    for n0 in range(0, n_cols, BN):
        nn = n0 + tl.arange(0, BN)
        nm = nn < n_cols
        bt = tl.load(B + j * sb + nn[None, :] * r + rr[:, None], mask=nm[None, :] & rk[:, None],
                     other=0.0)  # (RP, BN) = B[j]^T
        d = tl.dot(xa, bt, input_precision=PREC) * scale
        ptr = OUT + rows[:, None] * so + out_off + nn[None, :] * out_step
        mask = rm[:, None] & nm[None, :]
        o = tl.load(ptr, mask=mask, other=0.0)
        tl.store(ptr, (o.to(tl.float32) + d).to(o.dtype), mask=mask)

@_jit
def lora_bwd_dx(G, A, B, DX, DXA, ENDS, HOT, scale, n_in, n_cols, r, sg, sa, sb, sdx, g_off, g_step, sdxa,
                HAS_DX: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                RP: tl.constexpr, PREC: tl.constexpr):
    j = tl.program_id(0)
    start, end = _segment(HOT, ENDS, j)
    lo = start + tl.program_id(1) * BM
    if lo >= end:
        return
    rows = lo + tl.arange(0, BM)
    rm = rows < end
    rr = tl.arange(0, RP)
    rk = rr < r
    dxa = tl.zeros((BM, RP), dtype=tl.float32)
    for n0 in range(0, n_cols, BN):
        nn = n0 + tl.arange(0, BN)
        nm = nn < n_cols
        gt = tl.load(G + rows[:, None] * sg + g_off + nn[None, :] * g_step, mask=rm[:, None] & nm[None, :],
                     other=0.0)
        bt = tl.load(B + j * sb + nn[:, None] * r + rr[None, :], mask=nm[:, None] & rk[None, :],
                     other=0.0)  # (BN, RP) = B[j]
        dxa += tl.dot(gt, bt, input_precision=PREC)
    dxa = dxa * scale
    tl.store(DXA + rows[:, None] * sdxa + rr[None, :], dxa, mask=rm[:, None] & rk[None, :])
    if HAS_DX:
        dxa_c = dxa.to(G.dtype.element_ty)
        for k0 in range(0, n_in, BK):
            kk = k0 + tl.arange(0, BK)
            km = kk < n_in
            at = tl.load(A + j * sa + rr[:, None] * n_in + kk[None, :], mask=rk[:, None] & km[None, :],
                         other=0.0)  # (RP, BK) = A[j]
            ptr = DX + rows[:, None] * sdx + kk[None, :]
            mask = rm[:, None] & km[None, :]
            d = tl.load(ptr, mask=mask, other=0.0)
            upd = tl.dot(dxa_c, at, input_precision=PREC)
            tl.store(ptr, (d.to(tl.float32) + upd).to(d.dtype), mask=mask)

@_jit
def segment_tn(L, R, W, ENDS, HOT, mult, n_feat, r, sl, l_off, l_step, sr, sw, sw_n, sw_c,
               BM: tl.constexpr, BN: tl.constexpr, RP: tl.constexpr, PREC: tl.constexpr):
    j = tl.program_id(0)
    start, end = _segment(HOT, ENDS, j)
    nn = tl.program_id(1) * BN + tl.arange(0, BN)
    nm = nn < n_feat
    rr = tl.arange(0, RP)
    rk = rr < r
    acc = tl.zeros((BN, RP), dtype=tl.float32)
    for lo in range(start, end, BM):
        rows = lo + tl.arange(0, BM)
        rm = rows < end
        lt = tl.load(L + rows[:, None] * sl + l_off + nn[None, :] * l_step, mask=rm[:, None] & nm[None, :],
                     other=0.0)  # (BM, BN)
        rt = tl.load(R + rows[:, None] * sr + rr[None, :], mask=rm[:, None] & rk[None, :], other=0.0)
        acc += tl.dot(tl.trans(lt), rt.to(lt.dtype), input_precision=PREC)
    ptr = W + j * sw + nn[:, None] * sw_n + rr[None, :] * sw_c
    tl.store(ptr, (acc * mult).to(W.dtype.element_ty), mask=nm[:, None] & rk[None, :])


def _rank_pad(r: int) -> int:
    return max(16, 1 << (r - 1).bit_length())


def _precision(t: torch.Tensor) -> str:
    return "ieee" if t.dtype == torch.float32 else "tf32"


class TritonSubsetLoRA:
    """Hot-row work of `subset_lora._GroupedSubsetLoRA` in Triton; the same interface as `TorchSubsetLoRA`."""

    @staticmethod
    def forward_(out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int], hot_ids: torch.Tensor,
                 blocks: Sequence[Columns], pairs: LoRAPairs, scale: float) -> list[torch.Tensor]:
        x = x.contiguous()
        k = hot_ids.numel()
        grid = (k, -(-routing.num_tokens // BM))
        kept = []
        for block, (a, b) in zip(blocks, pairs):
            a, b = a.contiguous(), b.contiguous()
            r = a.shape[1]
            xa = torch.empty(x.shape[0], r, device=x.device, dtype=torch.float32)  # hot rows written
            if k and x.shape[0]:
                lora_fwd[grid](x, a, b, out, xa, routing.ends, hot_ids, float(scale), x.shape[1], block.width, r,
                               x.stride(0), a.stride(0), b.stride(0), out.stride(0), block.offset, block.step,
                               xa.stride(0), BM=BM, BN=BN, BK=BK, RP=_rank_pad(r), PREC=_precision(x))
            kept.append(xa)
        return kept

    @staticmethod
    def backward_(dx: torch.Tensor | None, g: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int],
                  hot_ids: torch.Tensor, blocks: Sequence[Columns], pairs: LoRAPairs, xa: Sequence[torch.Tensor],
                  scale: float, need_a: bool, need_b: bool) -> PairGrads:
        x, g = x.contiguous(), g.contiguous()
        k = hot_ids.numel()
        rows_grid = (k, -(-routing.num_tokens // BM))
        grads: PairGrads = []
        for block, (a, b), xa_p in zip(blocks, pairs, xa):
            a, b = a.contiguous(), b.contiguous()
            r, n_in = a.shape[1], a.shape[2]
            rp, prec = _rank_pad(r), _precision(g)
            da = torch.empty_like(a) if need_a else None
            db = torch.empty_like(b) if need_b else None
            if not (k and x.shape[0]):
                grads.append((None if da is None else da.zero_(), None if db is None else db.zero_()))
                continue
            dxa = torch.empty(x.shape[0], r, device=x.device, dtype=torch.float32)
            target = dx if dx is not None else dxa  # an unused pointer when there is no dx
            lora_bwd_dx[rows_grid](g, a, b, target, dxa, routing.ends, hot_ids, float(scale), n_in, block.width, r,
                                   g.stride(0), a.stride(0), b.stride(0), target.stride(0), block.offset, block.step,
                                   dxa.stride(0), HAS_DX=dx is not None, BM=BM, BN=BN, BK=BK, RP=rp, PREC=prec)
            if db is not None:  # dB[j] (cols, r) = s g[rows, cols]^T @ xa[rows]
                segment_tn[(k, -(-block.width // BN))](
                    g, xa_p, db, routing.ends, hot_ids, float(scale), block.width, r, g.stride(0), block.offset,
                    block.step, xa_p.stride(0), db.stride(0), db.stride(1), db.stride(2), BM=BM, BN=BN, RP=rp,
                    PREC=prec)
            if da is not None:  # dA[j] (r, in) = dxa[rows]^T @ x[rows], written through transposed strides
                segment_tn[(k, -(-n_in // BN))](
                    x, dxa, da, routing.ends, hot_ids, 1.0, n_in, r, x.stride(0), 0, 1, dxa.stride(0), da.stride(0),
                    da.stride(2), da.stride(1), BM=BM, BN=BN, RP=rp, PREC=prec)
            grads.append((da, db))
        return grads
