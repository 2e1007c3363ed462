"""The method registry: every (Method, Variant) key maps to one object that knows its own key, the config refuses
unregistered combinations naming the field, and each object's rules agree with what attaching it does."""

from __future__ import annotations

import pytest
import torch

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.accounting import count_parameters
from hellora.adapters.shape_count import adapter_entries
from hellora.flops import adapter_flops
from hellora.methods.base import AdapterMethod
from hellora.methods.registry import BENCH_SETUPS, METHODS, get_method
from hellora.models.families import describe_moe_model
from hellora.models.shapes import Matrix
from hellora.models.tiny import tiny_model
from hellora.placement import first_k_placement
from hellora.utils.errors import HelloraError
from hellora.choices import Method, Variant


def test_each_key_holds_one_object_that_knows_its_key():
    assert len({id(rules) for rules in METHODS.values()}) == len(METHODS)
    assert len({type(rules) for rules in METHODS.values()}) == len(METHODS)  # one class per method + variant
    for (method, variant), rules in METHODS.items():
        assert isinstance(rules, AdapterMethod) and (rules.method, rules.variant) == (method, variant)
        assert get_method(method, variant) is rules and AdapterConfig(method=method, variant=variant).rules is rules
    assert {m for m, _ in METHODS} == set(Method)  # every method has at least its plain form


def test_an_unregistered_combination_is_refused_naming_the_field():
    with pytest.raises(HelloraError, match=r"^adapter\.variant: 'dora' applies to .*not 'loramoe'$"):
        AdapterConfig(method="loramoe", variant="dora")
    with pytest.raises(HelloraError, match=r"^adapter\.variant: 'lori_d' applies to methods 'lora' and 'hellora', "
                                           r"not 'fft'$"):
        get_method(Method.FFT, Variant.LORI_D)


def test_bench_setups_are_the_registered_ones():
    assert list(BENCH_SETUPS) == ["hellora", "lora"]
    assert BENCH_SETUPS["hellora"].adapts_hot_experts and not BENCH_SETUPS["lora"].adapts_hot_experts


@pytest.mark.parametrize("key", [k for k, rules in METHODS.items() if not rules.trains_whole_model
                                 and not rules.continues_from_lori_d], ids=lambda k: f"{k[0]}-{k[1]}")
def test_rules_agree_with_the_attached_model(key):
    """Hot experts, targets, frozen A and the per-row entries the object states are what attaching builds."""
    method, variant = key
    model = tiny_model("olmoe")
    spec = describe_moe_model(model)
    config = AdapterConfig(method=method, variant=variant, r=2, alpha=4, init="random")
    rules = config.rules
    placement = first_k_placement(spec.moe_layer_indices, spec.num_experts, 2) if rules.adapts_hot_experts else None
    attach_adapters(model, config, placement, spec)
    state = model.hellora_adapter
    expected = 2 if rules.adapts_hot_experts else spec.num_experts
    assert all(len(ids) == expected for ids in state.experts.values())
    names = [n for n, _ in model.named_parameters()]
    assert any(".self_attn." in n and "lora_" in n for n in names) == rules.uses_targets
    frozen_a = [p.requires_grad for n, p in model.named_parameters() if n.endswith("lora_A")]
    assert frozen_a and all(not g for g in frozen_a) == rules.freezes_a
    # one attention projection: its adapter's entries are what the object counts for an (out, in) weight
    if rules.uses_targets:
        q = model.get_submodule(f"{spec.layers[0].attention_path}.q_proj")
        total = sum(p.numel() for n, p in q.named_parameters() if "lora_" in n)
        assert total == adapter_entries(Matrix(q.base_layer.out_features, q.base_layer.in_features), config)[0]
    assert count_parameters(model)["adapter_total"] > 0 and adapter_flops(model)["forward_per_token"] > 0
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()
