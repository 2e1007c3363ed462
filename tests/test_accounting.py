"""`parameter_report` reproduces the Params column of the paper's baseline rows (Tables 1, 8, 11, 13, 14), in
process on the meta device, and `count_parameters` counts what each method really trains on a tiny model."""

import pytest
import torch

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.accounting import count_parameters, count_request, parameter_report
from hellora.models.tiny import tiny_model
from tests.helpers import first_k_placement

OLMOE, MIXTRAL, DEEPSEEK = "olmoe-1b-7b", "mixtral-8x7b", "deepseek-moe-16b"
K = {OLMOE: 8, MIXTRAL: 2, DEEPSEEK: 12}

PAPER = [  # model, method, variant, rank (None = the method's default), paper's trainable %
    (OLMOE, "fft", "none", None, 100.0),
    (OLMOE, "lora", "dora", None, 4.350),
    (OLMOE, "loramoe", "none", None, 3.594),
    (OLMOE, "loramoe", "none", 32, 21.03),
    (OLMOE, "lora", "lori_d", None, 1.900),
    (OLMOE, "lora", "lori_s", None, 0.190),
    (OLMOE, "hellora", "lori_d", None, 0.301),
    (OLMOE, "hellora", "lori_s", None, 0.030),
    (MIXTRAL, "lora", "lori_d", None, 0.59),
    (MIXTRAL, "lora", "lori_s", None, 0.06),
    (MIXTRAL, "hellora", "lori_d", None, 0.17),
    (MIXTRAL, "hellora", "lori_s", None, 0.02),
    (DEEPSEEK, "lora", "lori_d", None, 1.671),
    (DEEPSEEK, "lora", "lori_s", None, 0.167),
    (DEEPSEEK, "hellora", "lori_d", None, 0.395),
    (DEEPSEEK, "hellora", "lori_s", None, 0.040),
]


@pytest.mark.slow
@pytest.mark.parametrize("model, method, variant, r, paper", PAPER,
                         ids=[f"{m}-{meth}-{v}-r{r}" for m, meth, v, r, _ in PAPER])
def test_paper_params_cells(model, method, variant, r, paper):
    report = parameter_report(model, count_request(method, r=r, variant=variant), k=K[model])
    assert abs(report["trainable_pct"] - paper) <= 0.02
    assert report["trainable_pct"] == pytest.approx(100 * report["trainable"] / report["total"])
    assert sum(report["by_role"].values()) == pytest.approx(report["trainable"], abs=len(report["by_role"]))


@pytest.mark.slow
def test_lori_counts_b_of_the_same_adapter_and_the_same_denominator():
    lora = parameter_report(DEEPSEEK, count_request("hellora"), k=12)
    d = parameter_report(DEEPSEEK, count_request("hellora", variant="lori_d"), k=12)
    s = parameter_report(DEEPSEEK, count_request("hellora", variant="lori_s", lori_density=0.25),
                         k=12)
    assert d["total"] == s["total"] == lora["total"]  # frozen A and masked-out B stay in the denominator
    assert d["adapter_total"] == lora["trainable"] > d["trainable"]
    assert s["trainable"] == round(0.25 * d["trainable"])
    assert "attention" not in parameter_report(OLMOE, count_request("loramoe"))["by_role"]


def test_dora_adds_one_magnitude_per_output_row_of_every_adapted_matrix():
    model = tiny_model("olmoe")
    lora = count_parameters(attach_adapters(tiny_model("olmoe"), AdapterConfig(r=4), first_k_placement(model)))
    dora = count_parameters(attach_adapters(model, AdapterConfig(r=4, variant="dora"), first_k_placement(model)))
    h, i, e, layers, hot = 32, 16, 8, 2, 2
    q, kv = 4 * 8, 2 * 8  # heads * head_dim, kv_heads * head_dim
    rows = layers * ((q + kv + kv + h) + e + hot * (i + i + h))
    assert dora["trainable"] - lora["trainable"] == rows


def test_full_fine_tuning_trains_everything():
    model = attach_adapters(tiny_model("mixtral"), AdapterConfig(method="fft"))
    report = count_parameters(model)
    assert report["trainable"] == report["total"] == sum(p.numel() for p in model.parameters())
    ids = torch.randint(3, 128, (2, 8))
    model.train()
    model(ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.dim() >= 2)


def test_targets_choose_what_counts_and_the_old_placement_keyword_still_works():
    pure = parameter_report(OLMOE, count_request("hellora", targets="pure"), k=8)
    assert pure["targets"] == "pure" and set(pure["by_role"]) == {"experts"} and pure["k"] == 8
    with pytest.warns(FutureWarning, match="placement=.*deprecated"):
        old = parameter_report(OLMOE, count_request("hellora"), k=8, placement="pure")
    assert old["trainable"] == pure["trainable"]
    default_k = parameter_report(OLMOE, count_request("hellora"))
    assert default_k["k"] == default_k["top_k"] == 8  # k defaults to the router's top-k
    assert parameter_report(OLMOE, count_request("hellora", targets="all"))["trainable"] > pure["trainable"]
