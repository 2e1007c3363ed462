"""The batched every-expert backend (`grouped_lora.py`) against the explicit per-row loop, forward and every
gradient, and the rules that decide when it serves a call.

`grouped_mm` takes no float64, so the backend runs in float32 and is compared with the float64 loop at float32's
tolerance; the loop reference itself is the one `test_subset_lora.py` uses.
"""

import pytest
import torch

from hellora.kernels import grouped_lora
from hellora.kernels.grouped_lora import GroupedSubsetLoRA
from hellora.kernels.subset_lora import ColumnBlock, TorchSubsetLoRA, _torch_backend, grouped_linear_subset_lora
from tests.kernels.test_subset_lora import E, IN, _case, _loop_reference

pytestmark = pytest.mark.skipif(grouped_lora._grouped_mm is None, reason="this torch has no grouped_mm")

ALL = list(range(E))
CASES = {
    "gate-up": dict(tokens=37, out=48, blocks=[ColumnBlock(0, 1, 24), ColumnBlock(24, 1, 24)], r=8, hot=ALL,
                    transposed=False, bias=False),
    "interleaved-transposed-bias": dict(tokens=30, out=48, blocks=[ColumnBlock(0, 2, 24), ColumnBlock(1, 2, 24)],
                                        r=16, hot=ALL, transposed=True, bias=True),
    "expert-without-tokens": dict(tokens=20, out=24, blocks=[ColumnBlock(0, 1, 24)], r=4, hot=ALL,
                                  transposed=False, bias=False, empty_hot=3),
}


@pytest.mark.parametrize("case", CASES)
def test_every_expert_hot_matches_the_loop(case):
    spec = dict(CASES[case])
    routing, x, weight, bias, pairs = _case(**spec)
    hot, blocks, scale, transposed = spec["hot"], spec["blocks"], 1.7, spec["transposed"]
    assert grouped_lora.usable(x, routing, hot, pairs)
    leaves = [x] + [t for p in pairs for t in p]
    ours_in = [t.clone().requires_grad_() for t in leaves]
    ref_in = [t.double().requires_grad_() for t in leaves]
    ps = list(zip(ours_in[1::2], ours_in[2::2]))
    routing.adapter_rows = 0
    out = grouped_linear_subset_lora(ours_in[0], weight, routing, bias, transposed, hot, torch.tensor(hot), blocks,
                                     ps, scale, backend=GroupedSubsetLoRA)
    assert routing.adapter_rows == x.shape[0] * len(blocks)  # every row, once per pair
    ref = _loop_reference(ref_in[0], weight.double(), None if bias is None else bias.double(), routing.expert_ids,
                          hot, blocks, list(zip(ref_in[1::2], ref_in[2::2])), scale, transposed)
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    ours = torch.autograd.grad(out, ours_in, grad)
    theirs = torch.autograd.grad(ref, ref_in, grad.double())
    for name, a, b in zip(["x"] + [f"{k}{i}" for i in range(len(pairs)) for k in "AB"], ours, theirs):
        assert b.abs().sum() > 0, name
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4, msg=name)
    if "empty_hot" in spec:  # an expert without rows: exactly zero gradients, not garbage
        slot = spec["empty_hot"]
        assert all(g[slot].abs().sum() == 0 for g in ours[1:])


def test_batched_and_loop_backends_agree_closely():
    spec = dict(CASES["gate-up"])
    routing, x, weight, bias, pairs = _case(**spec)
    outs = []
    for backend in (GroupedSubsetLoRA, TorchSubsetLoRA):
        ps = [(a.clone().requires_grad_(), b.clone().requires_grad_()) for a, b in pairs]
        xs = x.clone().requires_grad_()
        out = grouped_linear_subset_lora(xs, weight, routing, None, False, ALL, torch.tensor(ALL), spec["blocks"],
                                         ps, 0.5, backend=backend)
        out.square().sum().backward()
        outs.append([out.detach(), xs.grad] + [t.grad for p in ps for t in p])
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_when_the_batched_backend_serves(monkeypatch):
    spec = dict(CASES["gate-up"])
    routing, x, weight, bias, pairs = _case(**spec)
    monkeypatch.delenv("HELLORA_EXPERT_KERNEL", raising=False)
    assert _torch_backend(x, routing, ALL, pairs) is GroupedSubsetLoRA
    assert _torch_backend(x, routing, [0, 2, 5], pairs) is TorchSubsetLoRA  # a proper subset: the loop
    assert _torch_backend(x.double(), routing, ALL, pairs) is TorchSubsetLoRA  # no float64 grouped_mm
    odd = [(torch.randn(E, 3, IN), b[:, :, :3]) for a, b in pairs]  # rank 3: rows of 12 bytes, unaligned
    assert _torch_backend(x, routing, ALL, odd) is TorchSubsetLoRA
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", "loop")
    assert _torch_backend(x, routing, ALL, pairs) is TorchSubsetLoRA


def test_unaligned_input_start_is_realigned():
    """A view starting off a 16-byte boundary is copied, not handed to the kernel misaligned."""
    spec = dict(CASES["gate-up"])
    routing, x, weight, bias, pairs = _case(**spec)
    flat = torch.zeros(x.numel() + 1)
    view = flat[1:].view_as(x)  # starts 4 bytes past an aligned allocation
    view.copy_(x)
    assert view.data_ptr() % 16 != 0
    a = grouped_linear_subset_lora(view, weight, routing, None, False, ALL, torch.tensor(ALL), spec["blocks"],
                                   pairs, 1.0, backend=GroupedSubsetLoRA)
    b = grouped_linear_subset_lora(view, weight, routing, None, False, ALL, torch.tensor(ALL), spec["blocks"],
                                   pairs, 1.0, backend=TorchSubsetLoRA)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
