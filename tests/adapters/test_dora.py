"""DoRA: dense linears against stock PEFT `use_dora=True`, fused hot experts and routers against explicit
per-expert formulas, and whole-model training, save/load and merging."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from hellora.adapters import AdapterConfig, adapter_layers, attach_adapters, merge_adapters
from hellora.adapters.dora import DoRALinear, DoRARouter, ExpertDoRAWeights
from hellora.adapters.experts import HotExpertsLoRA
from hellora.adapters.export import export_merged, export_peft
from hellora.adapters.io import load_adapter, save_adapter
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from tests.helpers import base_weight, dora_weight, first_k_placement, loop_experts

IDS = torch.randint(3, 128, (2, 12), generator=torch.Generator().manual_seed(0))
HOT = (1, 4, 6)


class _Net(nn.Module):
    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(12, 10, bias=bias)

    def forward(self, x):
        return self.proj(x)


def _ours_and_peft(bias: bool, dropout: float = 0.0):
    torch.manual_seed(0)
    net = _Net(bias)
    peft_model = get_peft_model(copy.deepcopy(net), LoraConfig(r=4, lora_alpha=8, target_modules=["proj"],
                                                               use_dora=True, lora_dropout=dropout))
    theirs = peft_model.base_model.model.proj
    ours = DoRALinear(copy.deepcopy(net.proj), 4, 8, role="dense", dropout=dropout)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # PEFT initialises m from W with B = 0; ours too: check before making everything non-trivial
        torch.testing.assert_close(ours.lora_magnitude, theirs.lora_magnitude_vector["default"].weight)
        ours.lora_A.copy_(torch.randn(4, 12, generator=g))
        ours.lora_B.copy_(torch.randn(10, 4, generator=g) * 0.3)
        ours.lora_magnitude.copy_(torch.rand(10, generator=g) + 0.5)  # m != ||W + sBA||: f is not 1
        theirs.lora_A["default"].weight.copy_(ours.lora_A)
        theirs.lora_B["default"].weight.copy_(ours.lora_B)
        theirs.lora_magnitude_vector["default"].weight.copy_(ours.lora_magnitude)
    return ours, peft_model, theirs


@pytest.mark.parametrize("bias", [False, True])
def test_dora_linear_matches_stock_peft_forward_backward_and_merge(bias):
    ours, peft_model, theirs = _ours_and_peft(bias)
    x1 = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(2), requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y_ours, y_theirs = ours(x1), peft_model(x2)
    assert not torch.allclose(y_ours, ours.base_layer(x1), atol=1e-3)  # the adapter does something
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(y_ours)
    mine = torch.autograd.grad(y_ours, [ours.lora_A, ours.lora_B, ours.lora_magnitude, x1], grad)
    peft_params = [theirs.lora_A["default"].weight, theirs.lora_B["default"].weight,
                   theirs.lora_magnitude_vector["default"].weight, x2]
    for a, b in zip(mine, torch.autograd.grad(y_theirs, peft_params, grad)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    merged_theirs = peft_model.merge_and_unload().proj
    merged_ours = ours.merged_base()
    torch.testing.assert_close(merged_ours.weight, merged_theirs.weight, rtol=1e-6, atol=1e-6)
    if bias:
        assert torch.equal(merged_ours.bias, merged_theirs.bias)


def test_dora_linear_with_dropout_matches_peft_in_training():
    ours, peft_model, _ = _ours_and_peft(True, dropout=0.3)
    ours.train()
    peft_model.train()
    x = torch.randn(6, 12, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(7)
    y_ours = ours(x)
    torch.manual_seed(7)
    y_theirs = peft_model(x)
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-5, atol=1e-6)


def _experts(family, hot=HOT, tokens=24):
    model = tiny_model(family)
    moe = describe_moe_model(model).moe_layers[0]
    experts = model.get_submodule(moe.experts_path)
    wrapper = HotExpertsLoRA(experts, moe.layout, list(hot), r=4, alpha=8, init="random",
                             generator=torch.Generator().manual_seed(3), weights_cls=ExpertDoRAWeights)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for part in ("gate", "up", "down"):
            m = wrapper.part_weights(part).lora_magnitude
            m.mul_(torch.rand(m.shape, generator=g) + 0.5)
    x = torch.randn(tokens, 32, generator=g)
    idx = torch.stack([torch.randperm(8, generator=g)[:2] for _ in range(tokens)])
    w = torch.rand(tokens, 2, generator=g)
    return experts, moe.layout, wrapper, x, idx, w


def _dora_project(experts, layout, wrapper, hot):
    def project(e, part, v):
        w = base_weight(experts, layout, e, part)
        if e in hot:
            weights, slot = wrapper.part_weights(part), sorted(hot).index(e)
            w = dora_weight(w, weights.lora_A[slot], weights.lora_B[slot], weights.lora_magnitude[slot],
                            wrapper.scale)
        return w @ v
    return project


def test_expert_magnitude_starts_at_each_experts_own_row_norms():
    model = tiny_model("olmoe")
    moe = describe_moe_model(model).moe_layers[0]
    experts = model.get_submodule(moe.experts_path)
    wrapper = HotExpertsLoRA(experts, moe.layout, [2, 5], r=4, alpha=8, weights_cls=ExpertDoRAWeights)
    for part, rows in (("gate", 16), ("up", 16), ("down", 32)):
        m = wrapper.part_weights(part).lora_magnitude
        assert m.shape == (2, rows) and m.requires_grad
        for slot, e in enumerate([2, 5]):
            torch.testing.assert_close(m[slot], base_weight(experts, moe.layout, e, part).norm(dim=1))


@pytest.mark.parametrize("family", ["olmoe", "mixtral", "qwen3_moe", "gpt_oss"])
def test_fused_expert_dora_matches_per_expert_loop(family):
    experts, layout, wrapper, x, idx, w = _experts(family)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = wrapper(x1, idx, w)
    ref = loop_experts(experts, layout, x2, idx, w, _dora_project(experts, layout, wrapper, HOT))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    params = [getattr(wrapper.part_weights(p), n) for p in ("gate", "up", "down")
              for n in ("lora_A", "lora_B", "lora_magnitude")]
    grad = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, params + [x1], grad), torch.autograd.grad(ref, params + [x2], grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["olmoe", "gpt_oss"])
def test_fused_expert_dora_cold_tokens_are_bitwise_base_and_merge_matches(family):
    experts, layout, wrapper, x, idx, w = _experts(family, tokens=64)
    base = experts(x, idx, w)
    out = wrapper(x, idx, w)
    cold = ~torch.isin(idx, torch.tensor(HOT)).any(dim=1)
    assert cold.sum() > 0 and torch.equal(out[cold], base[cold])
    assert not torch.allclose(out[~cold], base[~cold])
    merged = wrapper.merged_base()
    torch.testing.assert_close(merged(x, idx, w), out, rtol=1e-5, atol=1e-5)


def test_dora_router_runs_with_the_rescaled_weight():
    model = tiny_model("olmoe")
    attach_adapters(model, AdapterConfig(variant="dora", init="random", r=4, alpha=8), first_k_placement(model))
    router = model.model.layers[0].mlp.gate
    assert isinstance(router, DoRARouter)
    with torch.no_grad():
        router.lora_magnitude.mul_(1.5)
    h = torch.randn(10, 32)
    logits, _, _ = router(h)
    w = dora_weight(router.base_layer.weight, router.lora_A, router.lora_B, router.lora_magnitude, router.scale)
    torch.testing.assert_close(logits, h @ w.t(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["olmoe", "deepseek_v3"])
def test_dora_model_trains_magnitudes_and_leaves_base_and_cold_experts_alone(family):
    model = tiny_model(family)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    attach_adapters(model, AdapterConfig(variant="dora", r=4, alpha=8), first_k_placement(model, (0, 3)))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(n.endswith("lora_magnitude") for n in names) and all("lora_" in n for n in names)
    with torch.no_grad():
        start = model(IDS, labels=IDS).loss.item()  # B = 0 and m = ||W||: exactly the base model
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    for _ in range(4):
        loss = model(IDS, labels=IDS).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        end = model(IDS, labels=IDS).loss.item()
    assert end < start
    mags = [n for n in names if n.endswith("lora_magnitude")]
    assert all(not torch.equal(dict(model.named_parameters())[n], before[n]) for n in mags)
    now = model.state_dict()
    for key, value in base_state.items():
        ours = next(k for k in now if k.replace(".base_layer", "") == key)
        assert torch.equal(now[ours], value), key


def test_dora_save_load_round_trip_merged_export_and_peft_refusal(tmp_path):
    model = tiny_model("olmoe")
    attach_adapters(model, AdapterConfig(variant="dora", init="random", r=4, alpha=8), first_k_placement(model))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("lora_magnitude"):
                p.mul_(1.2)
        ours = model(IDS).logits
    save_adapter(model, tmp_path / "adapter")
    loaded = load_adapter(tiny_model("olmoe"), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, ours)
    with pytest.raises(HelloraError, match="PEFT cannot express DoRA"):
        export_peft(loaded, tmp_path / "peft")
    assert not (tmp_path / "peft").exists()
    export_merged(loaded, tmp_path / "merged")
    from transformers import AutoModelForCausalLM
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(merged(IDS).logits, ours, rtol=1e-4, atol=1e-5)


def test_dora_on_modulelist_experts_wraps_hot_linears_only():
    from tests.helpers import tiny_deepseek_layout

    model = tiny_deepseek_layout()
    attach_adapters(model, AdapterConfig(variant="dora", init="random", r=4, alpha=8),
                    first_k_placement(model, (2, 5)))
    expert_layers = {p: l for p, l in adapter_layers(model).items() if l.role == "experts"}
    assert {p.split(".")[5] for p in expert_layers} == {"2", "5"}
    assert all(isinstance(l, DoRALinear) for l in adapter_layers(model).values())
    with torch.no_grad():
        adapted = model(IDS).logits
        merged = merge_adapters(model)(IDS).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)
