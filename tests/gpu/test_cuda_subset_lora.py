"""The compiled Triton expert-subset kernels at real shapes (skipped without a GPU): OLMoE-like H=2048, I=1024,
r=32, 64 experts, 8 hot, thousands of rows, against a float64 per-expert computation, forward and backward."""

import pytest
import torch

from hellora.kernels.routing import sort_by_expert
from hellora.kernels.subset_lora import ColumnBlock, TorchSubsetLoRA, grouped_linear_subset_lora

pytestmark = pytest.mark.gpu


def _rel(a, b):
    return float((a.double().cpu() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def _per_expert_reference(x, weight, ends, hot, blocks, pairs, scale):
    """float64, one matmul per expert segment: x W[e]^T, plus each pair's LoRA when e is hot."""
    out, lo = [], 0
    for e, hi in enumerate(ends.tolist()):
        y = x[lo:hi] @ weight[e].t()
        if e in hot:
            j = hot.index(e)
            for block, (a, b) in zip(blocks, pairs):
                cols = torch.arange(block.offset, block.offset + block.step * block.width, block.step)
                y[:, cols] = y[:, cols] + scale * (x[lo:hi] @ a[j].t()) @ b[j].t()
        out.append(y)
        lo = hi
    return torch.cat(out)


_CASES = {}


def _case(tokens, hidden, inter):
    """Inputs and the float64 reference with its gradients, built once per shape (the reference is slow)."""
    if (tokens, hidden, inter) in _CASES:
        return _CASES[tokens, hidden, inter]
    g = torch.Generator().manual_seed(0)
    e_count, top_k, r = 64, 8, 32
    hot = sorted(torch.randperm(e_count, generator=g)[:8].tolist())
    weights = torch.full((e_count,), 0.5 / (e_count - 8))
    weights[hot] = 0.5 / 8  # about half of the assignments land on hot experts, as on real data
    idx = torch.multinomial(weights.expand(tokens, e_count), top_k, replacement=False, generator=g)
    x = torch.randn(tokens * top_k, hidden, generator=g)
    w = torch.randn(e_count, 2 * inter, hidden, generator=g) / hidden ** 0.5
    blocks = [ColumnBlock(0, 1, inter), ColumnBlock(inter, 1, inter)]
    pairs = [(torch.randn(8, r, hidden, generator=g) / hidden ** 0.5, torch.randn(8, inter, r, generator=g) / r)
             for _ in blocks]
    routing = sort_by_expert(idx, e_count)
    ref_in = [x.double().requires_grad_()] + [t.double().requires_grad_() for p in pairs for t in p]
    ref = _per_expert_reference(ref_in[0], w.double(), routing.ends, hot, blocks,
                                list(zip(ref_in[1::2], ref_in[2::2])), 2.0)
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref.backward(grad)
    _CASES[tokens, hidden, inter] = (idx, x, w, hot, blocks, pairs, ref.detach(), grad, [t.grad for t in ref_in])
    return _CASES[tokens, hidden, inter]


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 2e-2), (torch.float32, 1e-4)])
@pytest.mark.parametrize("tokens, hidden, inter", [(1024, 2048, 1024), (333, 256, 96)])
def test_subset_lora_matches_float64_at_real_shapes(tokens, hidden, inter, dtype, tol, backend):
    idx, x, w, hot, blocks, pairs, ref, grad, ref_grads = _case(tokens, hidden, inter)
    e_count = w.shape[0]
    cuda_routing = sort_by_expert(idx.cuda(), e_count)
    ours_in = [x.to("cuda", dtype).requires_grad_()] + [t.cuda().clone().requires_grad_() for p in pairs for t in p]
    out = grouped_linear_subset_lora(ours_in[0], w.to("cuda", dtype), cuda_routing, None, False, hot,
                                     torch.tensor(hot, device="cuda"), blocks, list(zip(ours_in[1::2], ours_in[2::2])),
                                     2.0, backend=TorchSubsetLoRA if backend == "torch" else None)
    assert _rel(out, ref) < tol
    out.backward(grad.to("cuda", dtype))
    for name, a, b in zip(["x", "A_gate", "B_gate", "A_up", "B_up"], ours_in, ref_grads):
        assert _rel(a.grad, b) < tol, name
