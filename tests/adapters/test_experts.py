"""The hot-expert LoRA path against an explicit per-expert loop, in float32 with non-zero adapter weights.

Both paths are covered: the one-node expert-subset op (`kernels/subset_lora.py`, taken when the expert weights
are frozen, as `attach_adapters` leaves them) and the reference in-place path (taken with a trainable base)."""

import pytest
import torch

from hellora.adapters.experts import HotExpertsLoRA
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from tests.conftest import FUSED_FAMILIES, TRITON_ON_CPU
from tests.helpers import reference_experts

HOT = (1, 4, 6)


def _setup(family, tokens=24, hot=HOT, frozen=True):
    model = tiny_model(family)
    moe = describe_moe_model(model).moe_layers[0]
    experts = model.get_submodule(moe.experts_path)
    experts.requires_grad_(not frozen)
    wrapper = HotExpertsLoRA(experts, moe.layout, list(hot), r=4, alpha=8, init="random",
                             generator=torch.Generator().manual_seed(3))
    x = torch.randn(tokens, 32)
    idx = torch.stack([torch.randperm(8)[:2] for _ in range(tokens)])
    w = torch.rand(tokens, 2)
    return experts, moe.layout, wrapper, x, idx, w


def _lora(wrapper):
    return {p: (getattr(wrapper, f"lora_{p}").lora_A, getattr(wrapper, f"lora_{p}").lora_B) for p in ("gate", "up", "down")}


@pytest.mark.parametrize("frozen", [True, False], ids=["fused-op", "reference-path"])
@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_forward_and_backward_match_per_expert_loop(family, frozen):
    experts, layout, wrapper, x, idx, w = _setup(family, frozen=frozen)
    assert wrapper._fused_op_applies() == frozen
    assert wrapper.lora_down.lora_B.abs().sum() > 0  # non-zero update
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = wrapper(x1, idx, w)
    ref = reference_experts(experts, layout, x2, idx, w, lora=_lora(wrapper), hot=HOT, scale=wrapper.scale)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    params = [getattr(wrapper, f"lora_{p}").lora_A for p in ("gate", "up", "down")] + \
             [getattr(wrapper, f"lora_{p}").lora_B for p in ("gate", "up", "down")]
    ours = torch.autograd.grad(out, params + [x1], grad)
    theirs = torch.autograd.grad(ref, params + [x2], grad)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("frozen", [True, False], ids=["fused-op", "reference-path"])
@pytest.mark.parametrize("family", ["olmoe", "gpt_oss", "deepseek_v3"])
def test_cold_only_tokens_are_bitwise_the_base_and_cost_no_adapter_rows(family, frozen):
    experts, layout, wrapper, x, idx, w = _setup(family, tokens=64, frozen=frozen)
    base = experts(x, idx, w)  # transformers' own (default grouped_mm) experts forward
    out = wrapper(x, idx, w)
    hot_mask = torch.isin(idx, torch.tensor(HOT))
    cold_tokens = ~hot_mask.any(dim=1)
    assert cold_tokens.sum() > 0 and (~cold_tokens).sum() > 0
    assert torch.equal(out[cold_tokens], base[cold_tokens])
    assert not torch.allclose(out[~cold_tokens], base[~cold_tokens])
    # the adapter touched exactly the hot rows, three projections each
    assert wrapper.last_adapter_rows == 3 * int(hot_mask.sum())


@pytest.mark.parametrize("frozen", [True, False], ids=["fused-op", "reference-path"])
def test_hot_expert_with_no_tokens_gets_zero_gradient(frozen):
    experts, layout, wrapper, x, idx, w = _setup("olmoe", tokens=16, frozen=frozen)
    idx = torch.where(idx == 4, torch.full_like(idx, 7), idx)  # nobody routes to hot expert 4
    idx[:, 1] = torch.where(idx[:, 0] == idx[:, 1], (idx[:, 1] + 1) % 8, idx[:, 1])
    wrapper(x, idx, w).sum().backward()
    slot = wrapper.hot_experts.index(4)
    for p in ("gate", "up", "down"):
        lora = getattr(wrapper, f"lora_{p}")
        assert lora.lora_A.grad[slot].abs().sum() == 0 and lora.lora_B.grad[slot].abs().sum() == 0
        assert lora.lora_B.grad.abs().sum() > 0


def test_disabled_adapter_is_the_base_bitwise():
    experts, layout, wrapper, x, idx, w = _setup("mixtral")
    wrapper.adapter_enabled = False
    assert torch.equal(wrapper(x, idx, w), experts(x, idx, w))


@pytest.mark.parametrize("family", ["olmoe", "gpt_oss"])
def test_merged_weights_equal_adapter_forward(family):
    experts, layout, wrapper, x, idx, w = _setup(family)
    out = wrapper(x, idx, w)
    merged = wrapper.merged_base()
    torch.testing.assert_close(merged(x, idx, w), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", ["torch"] + (["triton"] if TRITON_ON_CPU else []))
def test_expert_kernels_agree_with_the_reference_path_on_a_whole_model(kernel, monkeypatch):
    """The same adapted model, loss and adapter gradients under HELLORA_EXPERT_KERNEL=reference and `kernel`."""
    from hellora.adapters import AdapterConfig, attach_adapters
    from tests.helpers import first_k_placement

    model = tiny_model("qwen3_moe")
    attach_adapters(model, AdapterConfig(method="hellora", r=4, alpha=8, init="random"), first_k_placement(model))
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    results = {}
    for choice in ("reference", kernel):
        monkeypatch.setenv("HELLORA_EXPERT_KERNEL", choice)
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        results[choice] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    (loss_ref, grads_ref), (loss_k, grads_k) = results["reference"], results[kernel]
    torch.testing.assert_close(loss_k, loss_ref, rtol=1e-5, atol=1e-6)
    assert any(".experts.lora_" in n for n in grads_ref)
    for name, g in grads_ref.items():
        torch.testing.assert_close(grads_k[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_unknown_expert_kernel_is_named(monkeypatch):
    experts, layout, wrapper, x, idx, w = _setup("olmoe")
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", "turbo")
    from hellora.utils.errors import HelloraError

    with pytest.raises(HelloraError, match="HELLORA_EXPERT_KERNEL='turbo'"):
        wrapper(x, idx, w)


@pytest.mark.parametrize("family", ["olmoe", "gpt_oss"])
def test_lora_on_every_expert_batched_agrees_with_the_reference_path(family, monkeypatch):
    """LoRA on all experts takes the batched grouped_mm backend under `torch`; same loss and gradients as the
    in-place reference path (float32, non-zero adapters)."""
    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.kernels import grouped_lora

    if grouped_lora._grouped_mm is None:
        pytest.skip("this torch has no grouped_mm")
    model = tiny_model(family)
    attach_adapters(model, AdapterConfig(method="lora", r=4, alpha=8, init="random"), None)
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    calls = []
    original = grouped_lora.GroupedSubsetLoRA.forward_
    monkeypatch.setattr(grouped_lora.GroupedSubsetLoRA, "forward_",
                        staticmethod(lambda *a: calls.append(1) or original(*a)))
    results = {}
    for choice in ("reference", "torch"):
        monkeypatch.setenv("HELLORA_EXPERT_KERNEL", choice)
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        results[choice] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert calls  # the batched backend served the `torch` pass
    (loss_ref, grads_ref), (loss_k, grads_k) = results["reference"], results["torch"]
    torch.testing.assert_close(loss_k, loss_ref, rtol=1e-5, atol=1e-6)
    assert any(".experts.lora_" in n for n in grads_ref)
    for name, g in grads_ref.items():
        torch.testing.assert_close(grads_k[name], g, rtol=1e-4, atol=1e-6, msg=name)
