"""`hellora bench` compares experts kept, int8 and NF4 side by side: @int8 / @nf4 setups hold fewer bytes, and the
setup after them gets the original weights back."""

import pytest
import torch

from hellora.bench.setups import check_setup, set_up, storage_of
from hellora.bench.throughput import BenchConfig, run_bench
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.placement import HotExpertPlacement
from hellora.choices import ExpertPrecision
from tests.bench.test_bench import TOY


def test_storage_suffixes_parse_and_refuse_two_storages():
    assert storage_of("hellora@nf4") is ExpertPrecision.NF4 and storage_of("lora@torch@int8") is ExpertPrecision.INT8
    assert storage_of("hellora") is ExpertPrecision.KEEP
    check_setup("hellora@loop@nf4")
    with pytest.raises(ValueError, match="one storage of @int8, @nf4"):
        check_setup("hellora@int8@nf4")


def test_restore_gives_the_next_setup_the_original_parameters():
    model = tiny_model("mixtral").requires_grad_(False)
    spec = describe_moe_model(model)
    before = {n: p.clone() for n, p in model.named_parameters()}
    hot = HotExpertPlacement({l: [0, 1] for l in spec.moe_layer_indices}, spec.num_experts, "manual")
    net, _, _, restore = set_up(model, "hellora@nf4", 4, 8.0, spec, hot)
    assert not any(n.endswith("gate_up_proj") for n, _ in net.named_parameters())
    restore()
    from hellora.adapters import remove_adapters

    remove_adapters(model)
    after = dict(model.named_parameters())
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)


def test_bench_reports_model_bytes_and_step_ratios_of_each_storage():
    cfg = BenchConfig(layers=1, batch=1, seq=16, dtype="float32", warmup=0, steps=1, k=2, overrides=TOY,
                      setups=("hellora", "hellora@int8", "hellora@nf4", "lora", "lora@nf4"))
    rows = run_bench(cfg, progress=False)["rows"]
    assert rows["hellora@nf4"]["model_mib"] < rows["hellora@int8"]["model_mib"] < rows["hellora"]["model_mib"]
    assert rows["lora@nf4"]["model_mib"] < rows["lora"]["model_mib"]  # every expert NF4 (QLoRA-style)
    assert all(row["trainable"] == rows["hellora"]["trainable"] for name, row in rows.items()
               if name.startswith("hellora"))
