"""The proxy study end to end at toy size: every method and seed trains, the report and study summary are written."""

import json

import pytest

from hellora.cli import main
from hellora.study.proxy import METHODS, ProxyConfig, ordering
from hellora.utils.errors import HelloraError

TOY = ["skills=[copy, upper]", "target=reverse", "target_pretrain=8", "pretrain_per_skill=64",
       "finetune_examples=32", "eval_examples=4", "hidden_size=32", "intermediate_size=32", "layers=2", "experts=4",
       "top_k=2", "pretrain_steps=4", "finetune_steps=2", "rank=4", "batch_size=16", "seeds=[0, 1]"]


def test_ordering_against_table_4():
    pairs = ordering({"hellora": 0.5, "model-hot": 0.4, "random": 0.45, "lora": 0.3, "cold": 0.1})
    assert [p["holds"] for p in pairs] == [True, False, True, True]


def test_unknown_keys_and_methods_are_refused():
    with pytest.raises(HelloraError, match="unknown key"):
        ProxyConfig.from_yaml(None, {"layerz": 2})
    with pytest.raises(HelloraError, match="unknown method"):
        ProxyConfig.from_yaml(None, {"methods": ["magic"]})


def test_toy_proxy_study(tmp_path, capsys):
    assert main(["proxy", *TOY, "--out", str(tmp_path), "--no-progress"]) == 0
    study = json.loads((tmp_path / "study.json").read_text())
    assert set(study["summary"]) == set(METHODS) and all(r["seeds"] == 2 for r in study["summary"].values())
    assert study["summary"]["hellora"]["trainable_pct"] < study["summary"]["lora"]["trainable_pct"]
    assert study["summary"]["hellori-d"]["trainable_pct"] < study["summary"]["hellora"]["trainable_pct"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Target acc" in report and "| HELLoRA (cold) |" in report
    assert (tmp_path / "heatmaps.png").is_file() and (tmp_path / "pretrained" / "config.json").is_file()
    assert "paper order hellora > model-hot" in capsys.readouterr().out


def test_shipped_study_configs_load():
    from pathlib import Path

    for path in Path(__file__).resolve().parents[1].joinpath("recipes", "proxy").glob("*.yaml"):
        assert ProxyConfig.from_yaml(path).methods == list(METHODS)


def test_toy_proxy_study_with_real_text(tmp_path):
    from tests.conftest import GSM8K

    assert main(["proxy", *TOY, f"text_files=[{GSM8K}]", "text_examples=16", "seeds=[0]", "methods=[hellora]",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    record = json.loads((tmp_path / "pretrained" / "study_pretrain.json").read_text())
    assert record["text_examples"] == 16 and record["text_files"] == [str(GSM8K)]
