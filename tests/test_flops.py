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


TABLE_3_LORA = [("olmoe-1b-7b", 94.44, 283.31), ("mixtral-8x7b", 289.42, 868.27), ("deepseek-moe-16b", 170.77, 512.31)]


@pytest.mark.slow
@pytest.mark.parametrize("model, forward, train", TABLE_3_LORA)
def test_paper_convention_reproduces_every_table_3_lora_cell(model, forward, train):
    from hellora.flops import flops_report

    row = flops_report(model, ["lora"], convention="paper")["rows"]["lora"]
    assert round(row["forward_per_token"] / 1e6, 2) == forward
    assert round(row["train_per_token"] / 1e6, 2) == train


@pytest.mark.slow
def test_deepseek_exact_differs_from_paper_by_the_dense_layer_and_router():
    from hellora.flops import flops_report

    exact = flops_report("deepseek-moe-16b", ["lora"])["rows"]["lora"]
    paper = flops_report("deepseek-moe-16b", ["lora"], convention="paper")["rows"]["lora"]
    assert round(exact["forward_per_token"] / 1e6, 2) == 164.56
    assert "router" not in exact["by_role"] and "dense" in exact["by_role"]
    # paper: 28 layers x (q/k/v/o + router + 6 routed experts + 2 fused shared experts), rank 32, hidden 2048
    per_layer = 32 * (4 * (2048 + 2048) + (2048 + 64) + 6 * 3 * (2048 + 1408) + 3 * (2048 + 2 * 1408))
    assert paper["forward_per_token"] == pytest.approx(2 * 28 * per_layer)


def test_flops_defaults_to_the_papers_k_per_preset():
    from hellora.models.presets import paper_k

    assert (paper_k("olmoe-1b-7b"), paper_k("mixtral-8x7b"), paper_k("deepseek-moe-16b")) == (8, 2, 12)
    assert paper_k("deepseek-ai/deepseek-moe-16b-base") == 12 and paper_k("some/other-model") is None


@pytest.mark.slow
def test_flops_cli_paper_convention_prints_170_77(capsys):
    assert main(["flops", "--model", "deepseek-moe-16b", "--convention", "paper"]) == 0
    out = capsys.readouterr().out
    assert "k=12, convention paper" in out
    assert "lora     forward    170.77 MFLOP   train    512.31 MFLOP" in out


def test_paper_convention_defines_lora_and_hellora_only(capsys):
    assert main(["flops", "--model", "olmoe-1b-7b", "--convention", "paper", "--methods", "lora,loramoe"]) == 2
    assert "Table 3 defines LoRA and HELLoRA only" in capsys.readouterr().err
