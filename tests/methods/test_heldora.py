"""HELDoRA (hot-expert DoRA), added through the documented path (its module, its registry line, these tests), end to
end: `hellora train` on a tiny OLMoE, the saved adapter, export (merged; PEFT refused, as for DoRA), the parameter
count on three paths, FLOPs on two, and its report label."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from hellora.adapters import AdapterConfig, attach_adapters, load_adapter
from hellora.adapters.accounting import count_parameters, count_request, meta_parameter_report
from hellora.adapters.shape_count import count_from_shapes
from hellora.cli import main
from hellora.flops import adapter_flops, shape_flops
from hellora.methods.heldora import HELDoRA
from hellora.models.families import describe_moe_model
from hellora.models.shapes import model_shapes
from hellora.models.tiny import tiny_model
from hellora.placement import HotExpertPlacement, first_k_placement

IDS = torch.tensor([[3, 14, 15, 92, 65, 35, 89, 79]])


def test_hellora_with_variant_dora_is_heldora():
    rules = AdapterConfig(method="hellora", variant="dora").rules
    assert isinstance(rules, HELDoRA) and rules.label == "HELDoRA"
    assert rules.adapts_hot_experts and rules.chooses_hot_experts and rules.fsdp_refusal and rules.peft_refusal


def test_heldora_counts_agree_on_model_meta_device_and_shapes_and_add_one_magnitude_per_row(tiny_model_dir):
    model = tiny_model("olmoe", vocab_size=104)
    spec = describe_moe_model(model)
    k = 2
    placement = first_k_placement(spec.moe_layer_indices, spec.num_experts, k)
    config = AdapterConfig(method="hellora", variant="dora", r=4, alpha=8)
    attach_adapters(model, config, placement, spec)
    counted = count_parameters(model)
    magnitudes = sum(p.numel() for n, p in model.named_parameters() if n.endswith("lora_magnitude"))
    plain = tiny_model("olmoe", vocab_size=104)
    attach_adapters(plain, AdapterConfig(method="hellora", r=4, alpha=8), placement)
    assert magnitudes > 0 and counted["trainable"] == count_parameters(plain)["trainable"] + magnitudes
    meta = meta_parameter_report(str(tiny_model_dir), count_request("hellora", variant="dora", r=4, alpha=8), k=k)
    shapes = count_from_shapes(model_shapes(model.config.to_dict()), config, k)
    for key in ("trainable", "total", "by_role"):
        assert meta[key] == counted[key] == shapes[key], key
    assert meta["variant"] == "dora" and meta["k"] == k
    # FLOPs: the attached adapters and the shapes, one answer (DoRA: r*(in+out) + out per row)
    assert adapter_flops(model) == shape_flops(model_shapes(model.config.to_dict()), config, placement.experts)


def test_heldora_trains_exports_and_reports_end_to_end(write_recipe, tmp_path, capsys):
    recipe = write_recipe(out="heldora")
    assert main(["train", str(recipe), "adapter.variant=dora", "train.max_steps=3", "--no-progress"]) == 0
    run = tmp_path / "heldora"
    placement = HotExpertPlacement.load(run / "placement.json")
    record = json.loads((run / "adapter" / "hellora_adapter.json").read_text())
    assert record["adapter"]["method"] == "hellora" and record["adapter"]["variant"] == "dora"
    assert {int(layer): ids for layer, ids in record["experts"].items()} == placement.experts
    tensors = load_file(str(run / "adapter" / "hellora_adapter.safetensors"))
    expert_magnitudes = [t for n, t in tensors.items() if ".experts." in n and n.endswith("lora_magnitude")]
    hot_k = len(next(iter(placement.experts.values())))
    assert expert_magnitudes and all(t.shape[0] == hot_k for t in expert_magnitudes)  # hot experts only
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished" and status["steps"]["train"]["steps"] == 3

    capsys.readouterr()
    assert main(["export", "--adapter", str(run / "adapter"), "--format", "peft", "--out",
                 str(tmp_path / "peft")]) == 2
    err = capsys.readouterr().err.strip()
    assert "PEFT cannot express DoRA" in err and len(err.splitlines()) == 1 and not (tmp_path / "peft").exists()
    assert main(["export", "--adapter", str(run / "adapter"), "--format", "merged", "--out",
                 str(tmp_path / "merged")]) == 0
    adapted = load_adapter(AutoModelForCausalLM.from_pretrained(record["base_model"]), run / "adapter")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        ours = adapted(IDS).logits
        assert not torch.equal(ours, AutoModelForCausalLM.from_pretrained(record["base_model"])(IDS).logits)
        torch.testing.assert_close(merged(IDS).logits, ours, rtol=1e-4, atol=1e-5)

    assert main(["report", str(run), "--out", str(tmp_path / "report"), "--quiet"]) == 0
    assert "| HELDoRA" in (tmp_path / "report" / "report.md").read_text()
