"""The expert-subset LoRA op against an explicit per-expert loop, forward and backward, for both backends.

The Triton backend runs here in Triton's CPU interpreter (the same kernels a GPU compiles), so its indexing,
masking and reductions are checked on every machine; `tests/gpu/` checks it compiled on CUDA.
"""

import pytest
import torch

from hellora.kernels.routing import sort_by_expert
from hellora.kernels.subset_lora import ColumnBlock, TorchSubsetLoRA, grouped_linear_subset_lora

from hellora.kernels.triton_subset_lora import TritonSubsetLoRA
from tests.conftest import TRITON_ON_CPU

BACKENDS = [TorchSubsetLoRA] + ([TritonSubsetLoRA] if TRITON_ON_CPU else [])

E, IN = 6, 40


def _loop_reference(x, weight, bias, idx_sorted, hot, blocks, pairs, scale, transposed):
    """Row by row: x W[e]^T + b[e], plus each pair's LoRA when e is hot."""
    rows = []
    for i in range(x.shape[0]):
        e = int(idx_sorted[i])
        w = weight[e].t() if transposed else weight[e]  # (out, in)
        y = w @ x[i] + (bias[e] if bias is not None else 0)
        if e in hot:
            j = hot.index(e)
            parts = list(y.unbind())
            for block, (a, b) in zip(blocks, pairs):
                d = scale * b[j] @ (a[j] @ x[i])
                for c in range(block.width):
                    parts[block.offset + c * block.step] = parts[block.offset + c * block.step] + d[c]
            y = torch.stack(parts)
        rows.append(y)
    return torch.stack(rows)


def _case(tokens, out, blocks, r, hot, transposed, bias, empty_hot=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    top_k = 2
    idx = torch.stack([torch.randperm(E, generator=g)[:top_k] for _ in range(tokens)])
    if empty_hot is not None:  # nobody routes to this hot expert
        idx[idx == empty_hot] = (empty_hot + 1) % E
        idx[:, 1] = torch.where(idx[:, 0] == idx[:, 1], (idx[:, 1] + 2) % E, idx[:, 1])
    routing = sort_by_expert(idx, E)
    x = torch.randn(tokens * top_k, IN, generator=g)
    shape = (E, IN, out) if transposed else (E, out, IN)
    weight = torch.randn(shape, generator=g) / IN ** 0.5
    b = torch.randn(E, out, generator=g) if bias else None
    pairs = [(torch.randn(len(hot), r, IN, generator=g) / IN ** 0.5, torch.randn(len(hot), blk.width, r, generator=g))
             for blk in blocks]
    return routing, x, weight, b, pairs


CASES = {
    "plain": dict(tokens=23, out=24, blocks=[ColumnBlock(0, 1, 24)], r=4, hot=[1, 4], transposed=False, bias=False),
    "gate-up": dict(tokens=37, out=48, blocks=[ColumnBlock(0, 1, 24), ColumnBlock(24, 1, 24)], r=8, hot=[0, 2, 5],
                    transposed=False, bias=False),
    "interleaved-transposed-bias": dict(tokens=30, out=48, blocks=[ColumnBlock(0, 2, 24), ColumnBlock(1, 2, 24)],
                                        r=16, hot=[3, 5], transposed=True, bias=True),
    "hot-expert-without-tokens": dict(tokens=20, out=24, blocks=[ColumnBlock(0, 1, 24)], r=4, hot=[1, 3, 4],
                                      transposed=False, bias=False, empty_hot=3),
    "more-rows-than-a-tile": dict(tokens=150, out=70, blocks=[ColumnBlock(0, 1, 70)], r=4, hot=[2],
                                  transposed=False, bias=False),
}


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.__name__)
@pytest.mark.parametrize("case", CASES)
def test_forward_and_backward_match_loop(case, backend):
    spec = dict(CASES[case])
    routing, x, weight, bias, pairs = _case(**spec)
    hot, blocks, scale, transposed = spec["hot"], spec["blocks"], 1.7, spec["transposed"]
    if "empty_hot" in spec:
        assert int((routing.expert_ids == spec["empty_hot"]).sum()) == 0
    leaves = [x] + [t for p in pairs for t in p]
    ours_in = [t.clone().requires_grad_() for t in leaves]
    ref_in = [t.double().requires_grad_() for t in leaves]

    def run(inputs, fn):
        xs, flat = inputs[0], inputs[1:]
        return fn(xs, list(zip(flat[0::2], flat[1::2])))

    hot_ids = torch.tensor(hot)
    out = run(ours_in, lambda xs, ps: grouped_linear_subset_lora(
        xs, weight, routing, bias, transposed, hot, hot_ids, blocks, ps, scale, backend=backend))
    ref = run(ref_in, lambda xs, ps: _loop_reference(
        xs, weight.double(), None if bias is None else bias.double(), routing.expert_ids, hot, blocks, ps, scale,
        transposed))
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    ours = torch.autograd.grad(out, ours_in, grad)
    theirs = torch.autograd.grad(ref, ref_in, grad.double())
    for name, a, b in zip(["x"] + [f"{k}{i}" for i in range(len(pairs)) for k in "AB"], ours, theirs):
        assert b.abs().sum() > 0 or "empty_hot" in spec, name
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4, msg=name)
    if "empty_hot" in spec:
        slot = hot.index(spec["empty_hot"])
        assert all(g[slot].abs().sum() == 0 for g in ours[1:])


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.__name__)
def test_frozen_a_gets_no_gradient_and_b_still_does(backend):
    """LoRI-D: A frozen at its init, B trained."""
    spec = dict(CASES["gate-up"])
    routing, x, weight, bias, pairs = _case(**spec)
    pairs = [(a, b.requires_grad_()) for a, b in pairs]
    out = grouped_linear_subset_lora(x, weight, routing, None, False, spec["hot"], torch.tensor(spec["hot"]),
                                     spec["blocks"], pairs, 2.0, backend=backend)
    out.sum().backward()
    assert all(a.grad is None for a, _ in pairs) and all(b.grad.abs().sum() > 0 for _, b in pairs)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.__name__)
def test_cold_rows_are_bitwise_the_base_product(backend):
    spec = dict(CASES["gate-up"])
    routing, x, weight, bias, pairs = _case(**spec)
    from hellora.kernels.grouped import grouped_linear

    base = grouped_linear(x, weight, routing, None, False)
    out = grouped_linear_subset_lora(x, weight, routing, None, False, spec["hot"], torch.tensor(spec["hot"]),
                                     spec["blocks"], pairs, 2.0, backend=backend)
    cold = ~torch.isin(routing.expert_ids, torch.tensor(spec["hot"]))
    assert cold.any() and (~cold).any()
    assert torch.equal(out[cold], base[cold])
    assert not torch.allclose(out[~cold], base[~cold])


def test_trainable_weight_is_refused():
    spec = dict(CASES["plain"])
    routing, x, weight, bias, pairs = _case(**spec)
    with pytest.raises(ValueError, match="frozen"):
        grouped_linear_subset_lora(x, weight.requires_grad_(), routing, None, False, [1, 4], torch.tensor([1, 4]),
                                   spec["blocks"], pairs, 1.0)


def test_op_records_one_autograd_node_and_no_copy_slices():
    """The point of the op: no CopySlices (whole-gradient clones) for the in-place adapter adds."""
    spec = dict(CASES["gate-up"])
    routing, x, weight, bias, pairs = _case(**spec)
    pairs = [(a.requires_grad_(), b.requires_grad_()) for a, b in pairs]
    out = grouped_linear_subset_lora(x.requires_grad_(), weight, routing, None, False, spec["hot"],
                                     torch.tensor(spec["hot"]), spec["blocks"], pairs, 1.0)
    names, stack, seen = [], [out.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.append(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    assert "CopySlices" not in names and names[0] == "_GroupedSubsetLoRABackward"
