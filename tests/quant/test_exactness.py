"""Cold experts stored as int8 / NF4 give the logits and gradients of a model whose cold experts were quantized and
dequantized by torchao directly, on every fused family, in float32 and bf16.

The reference is independent of hellora's store and op: the plain model (transformers' own experts forward under
the hot-expert wrapper's reference path) with each cold expert's weight replaced, in place, by
`to_nf4(w).get_original_weight()` or `Int8Tensor.from_hp(w, PerRow()).dequantize()`. Adapters are non-zero.
"""

import copy

import pytest
import torch
from torchao.quantization.granularity import PerRow
from torchao.quantization.quantize_.workflows.int8.int8_tensor import Int8Tensor
from torchao.quantization.quantize_.workflows.nf4.nf4_tensor import to_nf4

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.quant import QuantizedExpertWeight, adapted_experts, quantize_experts
from hellora.quant.sizes import nf4_blocks
from tests.conftest import FUSED_FAMILIES
from tests.helpers import first_k_placement

HOT = (0, 3)


def torchao_roundtrip(w: torch.Tensor, precision: str) -> torch.Tensor:
    if precision == "int8":
        return Int8Tensor.from_hp(w, PerRow()).dequantize()
    block, group = nf4_blocks(w.numel())
    return to_nf4(w.contiguous(), block_size=block, scaler_block_size=group).get_original_weight()


def adapted_model(family: str, dtype: torch.dtype):
    model = tiny_model(family, dtype=dtype)
    attach_adapters(model, AdapterConfig(method="hellora", r=4, alpha=8, targets="all"),
                    first_k_placement(model, HOT))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # non-zero adapters: the update must flow through the quantized path too
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def reference_of(model, cold: str, hot: str = "keep"):
    """A copy whose cold (and, unless keep, hot) experts are torchao's round trip, stored as plain tensors."""
    ref = copy.deepcopy(model)
    hot_sets = adapted_experts(ref)
    for moe in describe_moe_model(ref).moe_layers:
        experts = ref.get_submodule(moe.experts_path).base_layer
        for name in ("gate_up_proj", "down_proj"):
            w = getattr(experts, name)
            with torch.no_grad():
                for e in range(w.shape[0]):
                    precision = hot if e in hot_sets[moe.layer_index] else cold
                    if precision != "keep":
                        w[e] = torchao_roundtrip(w[e], precision)
    return ref


def loss_and_grads(model, embeds: torch.Tensor):
    x = embeds.clone().requires_grad_(True)
    logits = model(inputs_embeds=x).logits
    (logits.float() ** 2).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), x.grad, grads


def check_equal(a, b, dtype):
    if dtype == torch.float32:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    else:  # bf16: the same values through the same ops; allow one bf16 ulp of accumulation-order difference
        torch.testing.assert_close(a.float(), b.float(), rtol=1.6e-2, atol=1e-3)


@pytest.mark.parametrize("precision", ["int8", "nf4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_cold_experts_quantized_match_the_torchao_roundtrip_reference(family, dtype, precision, monkeypatch):
    monkeypatch.delenv("HELLORA_EXPERT_KERNEL", raising=False)
    model = adapted_model(family, dtype)
    ref = reference_of(model, precision)
    quantize_experts(model, adapted_experts(model), cold=precision)
    stores = [m for m in model.modules() if isinstance(m, QuantizedExpertWeight)]
    assert len(stores) == 2 * len(describe_moe_model(model).moe_layers)
    embeds = torch.randn(2, 12, model.config.hidden_size, generator=torch.Generator().manual_seed(3)).to(dtype)
    logits, dx, grads = loss_and_grads(model, embeds)
    ref_logits, ref_dx, ref_grads = loss_and_grads(ref, embeds)
    check_equal(logits, ref_logits, dtype)
    check_equal(dx, ref_dx, dtype)
    assert grads.keys() == ref_grads.keys() and grads
    for name in grads:
        check_equal(grads[name], ref_grads[name], dtype)
    # and the quantization did change the model: the reference is not just the original
    with torch.no_grad():
        plain = adapted_model(family, dtype)(inputs_embeds=embeds).logits
    assert not torch.allclose(plain.float(), logits.float(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("family", ["olmoe", "gpt_oss"])
def test_every_expert_nf4_qlora_style_matches_the_reference(family):
    model = adapted_model(family, torch.float32)
    ref = reference_of(model, "nf4", hot="nf4")
    quantize_experts(model, adapted_experts(model), cold="nf4", hot="nf4")
    embeds = torch.randn(2, 12, model.config.hidden_size, generator=torch.Generator().manual_seed(4))
    for a, b in zip(loss_and_grads(model, embeds)[:2], loss_and_grads(ref, embeds)[:2]):
        check_equal(a, b, torch.float32)


@pytest.mark.parametrize("kernel", ["reference", "torch", "loop"])
def test_every_expert_kernel_path_serves_quantized_experts(kernel, monkeypatch):
    """The reference path (plain autograd over the per-expert op) and the one-node op agree on quantized experts."""
    monkeypatch.setenv("HELLORA_EXPERT_KERNEL", kernel)
    model = adapted_model("mixtral", torch.float32)
    ref = reference_of(model, "int8")
    quantize_experts(model, adapted_experts(model), cold="int8")
    embeds = torch.randn(2, 12, model.config.hidden_size, generator=torch.Generator().manual_seed(5))
    for a, b in zip(loss_and_grads(model, embeds)[:2], loss_and_grads(ref, embeds)[:2]):
        check_equal(a, b, torch.float32)


@pytest.mark.parametrize("family", ["olmoe", "mixtral", "gpt_oss"])
def test_hot_expert_rows_weights_and_adapter_gradients_are_unaffected(family):
    """Tokens routed only to hot experts get the same output and the same adapter gradients with the cold experts
    quantized as without; the hot experts' stored weights are the originals bit for bit."""
    from hellora.adapters.experts import HotExpertsLoRA

    model = tiny_model(family)
    moe = describe_moe_model(model).moe_layers[0]
    experts = model.get_submodule(moe.experts_path).requires_grad_(False)
    originals = {name: getattr(experts, name).detach().clone() for name in ("gate_up_proj", "down_proj")}
    g = torch.Generator().manual_seed(1)
    plain = HotExpertsLoRA(experts, moe.layout, list(HOT), r=4, alpha=8, init="random", generator=g)
    quantized = copy.deepcopy(plain)
    for name in ("gate_up_proj", "down_proj"):
        weight = getattr(quantized.base_layer, name)
        store = QuantizedExpertWeight(weight.detach(), ["keep" if e in HOT else "nf4"
                                                        for e in range(moe.layout.num_experts)])
        delattr(quantized.base_layer, name)
        setattr(quantized.base_layer, name, store)
        for e in HOT:
            assert torch.equal(store.expert(e), originals[name][e])
    x = torch.randn(40, moe.layout.hidden_size, generator=g)
    idx = torch.stack([torch.randperm(moe.layout.num_experts, generator=g)[:2] for _ in range(40)])
    idx[:10] = torch.tensor(HOT)  # ten tokens routed to the hot experts only
    w = torch.rand(40, 2, generator=g)
    outs, grads = [], []
    for layer in (plain, quantized):
        out = layer(x, idx, w)
        out[:10].square().sum().backward()
        outs.append(out[:10].detach())
        grads.append({n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None})
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-7)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("family", ["olmoe", "mixtral", "qwen3_moe"])
@pytest.mark.parametrize("cold, hot", [("int8", "keep"), ("nf4", "keep"), ("nf4", "nf4")])
def test_parameter_counts_do_not_depend_on_how_the_frozen_experts_are_stored(family, cold, hot):
    """Quantized experts are buffers, not parameters; the count (and so a run's trainable %) still sees them at
    their full shape, so `hellora train model.cold_experts=nf4` reports the same trainable % as keep."""
    from hellora.adapters.accounting import count_parameters

    model = adapted_model(family, torch.float32)
    kept = count_parameters(model)
    quantize_experts(model, adapted_experts(model), cold=cold, hot=hot)
    stored = count_parameters(model)
    assert sum(p.numel() for p in model.parameters()) < kept["total"]  # the stores left the parameter list
    assert stored == kept and stored["trainable"] > 0
