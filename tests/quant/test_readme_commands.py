"""The README's quantized-experts commands, on the demo's model (`tests/cli/conftest.py`'s stand-in): train with
NF4 cold experts, evaluate with --adapter (the experts stored as trained), export PEFT and merged, report."""

import json

from hellora.cli import main
from tests.cli.conftest import CPU_RECIPES, FAST


def test_readme_quantized_experts_commands(demo_home, monkeypatch, capsys):
    monkeypatch.chdir(demo_home)
    recipe = str(CPU_RECIPES / "sort-hellora.yaml")
    assert main(["params", "--model", "mixtral-8x7b", "--method", "hellora", "--gpus", "1",
                 "--cold-experts", "nf4"]) == 0
    assert "the rest as nf4" in capsys.readouterr().out
    assert main(["train", recipe, *FAST, "model.cold_experts=nf4", "output_dir=runs/cpu/sort-nf4",
                 "--no-progress"]) == 0
    sort_test = "hellora-demo/data/sort-test.jsonl"
    assert main(["eval", "--task", "skill", "--adapter", "runs/cpu/sort-nf4/adapter", "--data", sort_test,
                 "--limit", "4", "--out", "runs/cpu/eval-nf4", "--json"]) == 0
    assert main(["export", "--adapter", "runs/cpu/sort-nf4/adapter", "--format", "peft",
                 "--out", "runs/cpu/peft-nf4"]) == 0
    sidecar = json.loads((demo_home / "runs/cpu/peft-nf4/hellora_placement.json").read_text())
    assert sidecar["base_experts"]["cold_experts"] == "nf4"
    assert main(["export", "--adapter", "runs/cpu/sort-nf4/adapter", "--format", "merged",
                 "--out", "runs/cpu/merged-nf4"]) == 0
    assert main(["report", "runs/cpu/sort-nf4", "--out", "runs/cpu/report-nf4", "--quiet"]) == 0
    assert "cold=nf4" in (demo_home / "runs/cpu/report-nf4/report.md").read_text()
