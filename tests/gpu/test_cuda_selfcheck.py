"""On a GPU (skipped without one): `auto`'s first-call self-check passes for the compiled Triton kernels at an
OLMoE-like shape in bf16 and float32, and Triton then serves the calls; the batched every-expert backend (bf16
`grouped_mm`) matches the per-expert loop."""

import warnings

import pytest
import torch

from hellora.kernels import selfcheck
from hellora.kernels.grouped_lora import GroupedSubsetLoRA
from hellora.kernels.routing import sort_by_expert
from hellora.kernels.subset_lora import ColumnBlock, TorchSubsetLoRA, grouped_linear_subset_lora

pytestmark = pytest.mark.gpu


def _layer(dtype, hot, experts=64, tokens=1024, h=2048, i=1024, r=32):
    g = torch.Generator().manual_seed(0)
    idx = torch.stack([torch.randperm(experts, generator=g)[:8] for _ in range(tokens)]).cuda()
    routing = sort_by_expert(idx, experts)
    x = torch.randn(tokens * 8, h, generator=g).to("cuda", dtype)
    weight = (torch.randn(experts, 2 * i, h, generator=g) / h ** 0.5).to("cuda", dtype)
    blocks = [ColumnBlock(0, 1, i), ColumnBlock(i, 1, i)]
    pairs = [((torch.randn(len(hot), r, h, generator=g) / h ** 0.5).to("cuda", dtype).requires_grad_(),
              (torch.randn(len(hot), i, r, generator=g) / r ** 0.5).to("cuda", dtype).requires_grad_())
             for _ in blocks]
    return routing, x.requires_grad_(), weight, blocks, pairs


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_auto_selfcheck_passes_on_cuda(dtype, monkeypatch):
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", "auto")
    monkeypatch.delenv("HELLORA_KERNEL_SELFCHECK", raising=False)
    selfcheck.reset()
    hot = [1, 5, 9, 17, 23, 40, 51, 63]
    routing, x, weight, blocks, pairs = _layer(dtype, hot)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = grouped_linear_subset_lora(x, weight, routing, None, False, hot, torch.tensor(hot, device="cuda"),
                                         blocks, pairs, 2.0)
    assert list(selfcheck.results().values()) == ["passed"], selfcheck.results()
    assert routing.adapter_rows == 0  # Triton served it (the torch backend counts rows)
    out.float().sum().backward()
    selfcheck.reset()


def test_batched_every_expert_backend_in_bf16_matches_the_loop():
    hot = list(range(64))
    routing, x, weight, blocks, pairs = _layer(torch.bfloat16, hot, tokens=512)
    outs = []
    for backend in (GroupedSubsetLoRA, TorchSubsetLoRA):
        out = grouped_linear_subset_lora(x, weight, routing, None, False, hot, torch.tensor(hot, device="cuda"),
                                         blocks, pairs, 2.0, backend=backend)
        grads = torch.autograd.grad(out.float().square().mean(), [x] + [t for p in pairs for t in p])
        outs.append([out, *grads])
    for a, b in zip(*outs):
        err = float((a.float() - b.float()).norm() / b.float().norm())
        assert err < 2e-2, err
