"""CUDA checks of the hot-expert path (skipped without a GPU): bf16 and fp32 against a float64 CPU reference,
forward and backward (input and adapter gradients), several sizes, with hot experts that receive no tokens, for
each expert kernel: the reference in-place path, the one-node op with torch matmuls, and its compiled Triton
kernels."""

import pytest
import torch

from hellora.adapters.experts import HotExpertsLoRA
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from tests.helpers import reference_experts

pytestmark = pytest.mark.gpu


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


@pytest.mark.parametrize("kernel", ["reference", "torch", "triton"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-3), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("tokens", [1, 37, 512, 3000])
@pytest.mark.parametrize("family", ["olmoe", "gpt_oss"])
def test_hot_experts_on_cuda_match_float64_reference(family, tokens, dtype, tol, kernel, monkeypatch):
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", kernel)
    model = tiny_model(family, hidden_size=64, intermediate_size=32)
    moe = describe_moe_model(model).moe_layers[0]
    experts = model.get_submodule(moe.experts_path)
    experts.requires_grad_(False)  # as attach_adapters leaves it: the fused op serves frozen experts
    wrapper = HotExpertsLoRA(experts, moe.layout, [1, 4, 6], r=8, alpha=16, init="random",
                             generator=torch.Generator().manual_seed(0))
    x = torch.randn(tokens, 64)
    idx = torch.stack([torch.randperm(8)[:2] for _ in range(tokens)])
    idx[idx == 4] = 5 if tokens > 1 else idx[idx == 4]  # hot expert 4 gets no tokens
    idx[:, 1] = torch.where(idx[:, 0] == idx[:, 1], (idx[:, 1] + 1) % 8, idx[:, 1])
    w = torch.rand(tokens, 2)
    ref_x = x.double().requires_grad_()
    lora = {p: (getattr(wrapper, f"lora_{p}").lora_A.detach().double().requires_grad_(),
                getattr(wrapper, f"lora_{p}").lora_B.detach().double().requires_grad_())
            for p in ("gate", "up", "down")}
    ref = reference_experts(experts.double(), moe.layout, ref_x, idx, w.double(), lora=lora, hot=[1, 4, 6],
                            scale=wrapper.scale)
    gpu = wrapper.to("cuda", dtype)
    assert gpu._fused_op_applies() == (kernel != "reference")
    gx = x.to("cuda", dtype).requires_grad_()
    out = gpu(gx, idx.cuda(), w.to("cuda", dtype))
    assert _rel(out.float().cpu(), ref) < tol
    grad = torch.randn(tokens, 64, dtype=torch.float64)
    ref.backward(grad)
    out.backward(grad.to("cuda", dtype))
    assert _rel(gx.grad.float().cpu(), ref_x.grad) < tol
    for p, (a, b) in lora.items():
        ours = getattr(gpu, f"lora_{p}")
        for mine, ref_param in ((ours.lora_A, a), (ours.lora_B, b)):
            # no hot expert routed to (one token): no gradient at all, or an all-zero one
            ref_grad = ref_param.grad if ref_param.grad is not None else torch.zeros_like(ref_param)
            got = mine.grad.float().cpu() if mine.grad is not None else torch.zeros(mine.shape)
            if ref_grad.abs().sum() == 0:
                assert got.abs().sum() == 0, p
            else:
                assert _rel(got, ref_grad) < tol, p
        if tokens > 1:
            assert ours.lora_B.grad[1].abs().sum() == 0  # slot of hot expert 4: no tokens, no gradient
