"""Attaching adapters to whole models: what is wrapped, what trains, what stays frozen."""

import pytest
import torch
import torch.nn.functional as F

from hellora.adapters import AdapterConfig, adapter_layers, attach_adapters, disable_adapters, merge_adapters
from hellora.adapters.accounting import count_parameters
from hellora.adapters.experts import HotExpertsLoRA
from hellora.adapters.router import RouterLoRA
from hellora.models.tiny import tiny_model
from hellora.placement import HotExpertPlacement
from hellora.utils.errors import HelloraError
from tests.conftest import FUSED_FAMILIES
from tests.helpers import first_k_placement, tiny_deepseek_layout

IDS = torch.randint(3, 128, (2, 12), generator=torch.Generator().manual_seed(0))


def _roles(model):
    return sorted({layer.role for layer in adapter_layers(model).values()})


@pytest.mark.parametrize("targets, roles", [("pure", ["experts"]), ("gate", ["experts", "router"]),
                                            ("all", ["attention", "experts", "router"])])
def test_targets_choose_the_adapted_modules(targets, roles):
    model = attach_adapters(tiny_model("olmoe"), AdapterConfig(targets=targets), first_k_placement(tiny_model("olmoe")))
    assert _roles(model) == roles


def test_shared_and_dense_mlps_are_adapted_for_every_target_set():
    model = tiny_model("deepseek_v3")
    attach_adapters(model, AdapterConfig(targets="pure"), first_k_placement(model))
    assert _roles(model) == ["dense", "experts", "shared"]


def test_mla_attention_projections_are_adapted():
    model = tiny_model("deepseek_v3")
    attach_adapters(model, AdapterConfig(), first_k_placement(model))
    names = {p.rsplit(".", 1)[-1] for p, l in adapter_layers(model).items() if l.role == "attention"}
    assert names == {"q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"}


def test_remote_layout_adapts_only_hot_expert_linears_and_no_router_by_default():
    model = tiny_deepseek_layout()
    attach_adapters(model, AdapterConfig(), first_k_placement(model, (2, 5)))
    paths = [p for p, l in adapter_layers(model).items() if l.role == "experts"]
    assert {p.split(".")[5] for p in paths} == {"2", "5"} and len(paths) == 2 * 2 * 3
    assert "router" not in _roles(model)
    forced = tiny_deepseek_layout()
    attach_adapters(forced, AdapterConfig(router=True), first_k_placement(forced))
    assert "router" in _roles(forced)


@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_training_steps_touch_only_hot_adapters(family):
    model = tiny_model(family)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    attach_adapters(model, AdapterConfig(init="random", r=4, alpha=8), first_k_placement(model, (0, 3)))
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    losses = []
    for _ in range(3):
        out = model(IDS, labels=IDS)
        losses.append(out.loss.item())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
    # every base weight (cold experts included) is unchanged
    now = model.state_dict()
    for key, value in base_state.items():
        ours = next(k for k in now if k.replace(".base_layer", "") == key)
        assert torch.equal(now[ours], value), key
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed and losses[-1] < losses[0]


@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_merged_equals_unmerged_and_disabled_equals_base(family):
    model = tiny_model(family)
    with torch.no_grad():
        base = model(IDS).logits
    attach_adapters(model, AdapterConfig(init="random", r=4, alpha=8), first_k_placement(model))
    with torch.no_grad():
        adapted = model(IDS).logits
        with disable_adapters(model):
            assert torch.equal(model(IDS).logits, base)
        merged = merge_adapters(model)(IDS).logits
    assert not torch.allclose(adapted, base, atol=1e-3)
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-4)
    assert not adapter_layers(model)


def test_router_lora_equals_explicit_logits():
    model = tiny_model("olmoe")
    attach_adapters(model, AdapterConfig(init="random", r=4, alpha=8), first_k_placement(model))
    router = model.model.layers[0].mlp.gate
    assert isinstance(router, RouterLoRA)
    h = torch.randn(10, 32)
    logits, _, _ = router(h)
    expected = F.linear(h, router.base_layer.weight) + router.scale * (h @ router.lora_A.t()) @ router.lora_B.t()
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)


def test_lora_method_adapts_every_expert():
    model = attach_adapters(tiny_model("mixtral"), AdapterConfig(method="lora"))
    for layer in adapter_layers(model).values():
        if isinstance(layer, HotExpertsLoRA):
            assert layer.hot_experts == list(range(8))


def test_hellora_counts_fewer_parameters_than_lora():
    hell = attach_adapters(tiny_model("olmoe"), AdapterConfig(), first_k_placement(tiny_model("olmoe"), (0, 1)))
    lora = attach_adapters(tiny_model("olmoe"), AdapterConfig(method="lora"))
    a, b = count_parameters(hell), count_parameters(lora)
    per_expert = 3 * 32 * (32 + 16)
    assert b["by_role"]["experts"] - a["by_role"]["experts"] == 2 * 6 * per_expert


def test_placement_errors():
    model = tiny_model("olmoe")
    with pytest.raises(HelloraError, match="needs a placement"):
        attach_adapters(model, AdapterConfig())
    other = HotExpertPlacement({0: [1], 1: [2]}, 8, "manual", fingerprint="0000000000000000", model_id="other")
    with pytest.raises(HelloraError, match="another model"):
        attach_adapters(tiny_model("olmoe"), AdapterConfig(), other)
    with pytest.raises(HelloraError, match="missing"):
        attach_adapters(tiny_model("olmoe"), AdapterConfig(), HotExpertPlacement({0: [1]}, 8, "manual"))
    with pytest.raises(HelloraError, match="adapter.method"):
        AdapterConfig(method="dora-x")
    with pytest.raises(HelloraError, match="adapter.r"):
        AdapterConfig(r=0)
