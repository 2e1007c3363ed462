"""Adapter FLOPs per token: the paper's Table 3 LoRA cells offline, hot-expert savings from measured routing."""

import json

import pytest

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.cli import main
from hellora.flops import adapter_flops
from hellora.models.loading import meta_model
from hellora.profiling import ExpertProfile
from tests.helpers import first_k_placement, tiny_deepseek_layout


@pytest.mark.parametrize("model, forward, train", [("olmoe-1b-7b", 94.44, 283.31), ("mixtral-8x7b", 289.42, 868.27)])
def test_lora_matches_the_papers_table_3(model, forward, train):
    net = attach_adapters(meta_model(model), AdapterConfig(method="lora"))
    flops = adapter_flops(net)
    assert round(flops["forward_per_token"] / 1e6, 2) == forward
    assert round(flops["train_per_token"] / 1e6, 2) == pytest.approx(train, abs=0.01)


def test_hot_experts_cost_their_routing_share():
    net = meta_model("olmoe-1b-7b")
    layers = list(range(16))
    # every layer: experts 0-7 take 52% of the 8 assignments per token, the other 56 share the rest
    counts = [[round(0.52 * 8000 / 8)] * 8 + [round(0.48 * 8000 / 56)] * 56 for _ in layers]
    tokens = [sum(row) // 8 for row in counts]
    profile = ExpertProfile(layers=layers, counts=counts, mass=[], tokens=tokens, num_experts=64, top_k=8)
    attach_adapters(net, AdapterConfig(), profile.select("layer", 8))
    flops = adapter_flops(net, profile)
    per_expert = 2 * 32 * 3 * (2048 + 1024)
    share = sum(counts[0][:8]) / tokens[0]
    expected = flops["by_role"]["attention"] + flops["by_role"]["router"] + 16 * share * per_expert
    assert flops["forward_per_token"] == pytest.approx(expected)
    assert flops["forward_per_token"] / 1e6 == pytest.approx(57.9, abs=0.5)  # the paper's HELLoRA cell: 57.89


def test_modulelist_experts_are_weighted_by_routing():
    model = tiny_deepseek_layout()
    attach_adapters(model, AdapterConfig(r=4), first_k_placement(model, (0, 1)))
    profile = ExpertProfile(layers=[1, 2], counts=[[10, 30] + [0] * 6] * 2, mass=[], tokens=[20, 20], num_experts=8,
                            top_k=2)
    flops = adapter_flops(model, profile)
    per_expert = 2 * 4 * 3 * (32 + 16)
    assert flops["by_role"]["experts"] == pytest.approx(2 * (10 + 30) / 20 * per_expert)


def test_flops_cli(capsys):
    assert main(["flops", "--model", "olmoe-1b-7b", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["hellora"]["vs_lora_pct"] < 0 and rows["lora"]["vs_lora_pct"] == 0.0
