"""`hellora bench` on CPU at toy sizes: every setup runs, ratios and routing skew are computed and reported."""

import json

from hellora.bench.throughput import BenchConfig, run_bench, skewed_routing
from hellora.cli import main
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from tests.conftest import HAS_TRITON

TOY = {"hidden_size": 64, "intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2, "vocab_size": 256,
       "num_attention_heads": 4, "num_key_value_heads": 4}


def test_skewed_routing_gives_hot_experts_the_requested_share():
    spec = describe_moe_model(tiny_model("olmoe"))
    routing = skewed_routing(spec, k=2, hot_share=0.6, tokens=4000, seed=0)
    for hot, index in routing.values():
        assert index.shape == (4000, 2) and (index[:, 0] != index[:, 1]).all()
        share = float(torch_isin(index, hot).float().mean())
        assert 0.45 < share < 0.65


def torch_isin(index, hot):
    import torch

    return torch.isin(index, torch.tensor(hot))


def test_bench_runs_every_setup_on_cpu():
    result = run_bench(BenchConfig(layers=2, batch=2, seq=32, dtype="float32", warmup=1, steps=2, overrides=TOY),
                       progress=False)
    rows = result["rows"]
    assert list(rows) == ["frozen", "hellora", "lora", "peft-lora", "peft-attn"]
    assert rows["frozen"]["x_frozen"] == 1.0 and rows["frozen"]["trainable"] == 0
    assert rows["hellora"]["trainable"] < rows["lora"]["trainable"]
    assert rows["peft-attn"]["trainable"] < rows["peft-lora"]["trainable"]
    assert 0.3 < result["routing"]["hot_share_mean"] < 0.7
    assert result["profiling"]["fraction_of_epoch_at_10pct"] > 0


def test_bench_cli_json(tmp_path, capsys):
    args = ["bench", "--layers", "1", "--batch", "1", "--seq", "16", "--dtype", "float32", "--steps", "1",
            "--warmup", "0", "--setups", "frozen,hellora", "--out", str(tmp_path / "b.json")]
    args += [x for key, value in TOY.items() for x in ("--override", f"{key}={value}")]
    assert main(args) == 0
    assert set(json.loads((tmp_path / "b.json").read_text())["rows"]) == {"frozen", "hellora"}
    assert main(args[:-4] + ["--setups", "frozen,turbo"]) == 2
    assert "unknown setup" in capsys.readouterr().err


def test_bench_compares_expert_kernels_side_by_side(tmp_path, capsys):
    triton = "hellora@triton" if HAS_TRITON else "hellora@auto"  # without triton, auto is the torch op
    args = ["bench", "--layers", "1", "--batch", "1", "--seq", "16", "--dtype", "float32", "--steps", "1",
            "--warmup", "0", "--setups",
            f"frozen,hellora@reference,hellora@torch,{triton},lora@torch,hellora@reference@unfused",
            "--out", str(tmp_path / "b.json")]
    args += [x for key, value in TOY.items() for x in ("--override", f"{key}={value}")]
    assert main(args) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert list(rows) == ["frozen", "hellora@reference", "hellora@torch", triton, "lora@torch",
                          "hellora@reference@unfused"]
    assert rows["hellora@reference"]["trainable"] == rows[triton]["trainable"] > 0
    assert rows["hellora@reference@unfused"]["trainable"] == rows["hellora@torch"]["trainable"]
    for bad in ("hellora@turbo", "peft-lora@torch", "hellora@torch@triton", "hellora@unfused@unfused"):
        assert main(args[:9] + ["--setups", bad]) == 2
        assert "take suffixes" in capsys.readouterr().err
