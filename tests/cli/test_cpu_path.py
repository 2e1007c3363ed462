"""The README's CPU path: recipes/cpu on the demo's model, through `hellora.cli.main`, every command in turn.

profile -> select -> train (hellora, from a saved placement, lora) -> export (peft, merged) -> eval -> report.
"""

import json
import warnings

import pytest

from hellora.cli import main
from tests.cli.conftest import CPU_RECIPES, FAST
from tests.conftest import DATASETS

pytestmark = pytest.mark.slow


def test_every_command_runs_on_the_demo_model(demo_home, monkeypatch, capsys):
    monkeypatch.chdir(demo_home)
    hellora_recipe, lora_recipe = str(CPU_RECIPES / "sort-hellora.yaml"), str(CPU_RECIPES / "sort-lora.yaml")
    assert main(["profile", hellora_recipe, "--out", "runs/cpu/profile.json", "--no-progress"]) == 0
    assert main(["select", "--profile", "runs/cpu/profile.json", "--k", "1", "--out", "runs/cpu/placement.json"]) == 0
    placement = json.loads((demo_home / "runs/cpu/placement.json").read_text())

    assert main(["train", hellora_recipe, *FAST, "--no-progress"]) == 0
    assert main(["train", hellora_recipe, *FAST, "selection.path=runs/cpu/placement.json",
                 "output_dir=runs/cpu/placed", "--no-progress"]) == 0
    placed = json.loads((demo_home / "runs/cpu/placed/placement.json").read_text())
    assert placed["experts"] == placement["experts"]  # trained on the saved placement, not a new profile
    assert main(["train", lora_recipe, *FAST, "--no-progress"]) == 0

    record = json.loads((demo_home / "runs/cpu/sort-hellora/adapter/hellora_adapter.json").read_text())
    assert record["model"]["name"] == "hellora-demo/base-model"  # the run knows its model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", "--adapter", "runs/cpu/sort-hellora/adapter", "--format", "peft",
                     "--out", "runs/cpu/peft"]) == 0
    assert not [w for w in caught if "did not match" in str(w.message)]
    assert main(["export", "--adapter", "runs/cpu/sort-hellora/adapter", "--format", "merged",
                 "--out", "runs/cpu/merged"]) == 0
    assert (demo_home / "runs/cpu/merged/tokenizer.json").is_file()  # the merged folder is usable alone

    sort_test = "hellora-demo/data/sort-test.jsonl"
    assert main(["eval", "--task", "skill", "--model", "runs/cpu/merged", "--data", sort_test, "--limit", "4",
                 "--out", "runs/cpu/eval", "--json"]) == 0
    # no --model: the adapter's run recorded it (the demo's base-model folder)
    assert main(["eval", "--task", "skill", "--adapter", "runs/cpu/sort-hellora/adapter", "--data", sort_test,
                 "--limit", "4", "--out", "runs/cpu/eval-adapter", "--json"]) == 0
    merged = json.loads((demo_home / "runs/cpu/eval/eval_skill.json").read_text())
    report = json.loads((demo_home / "runs/cpu/eval-adapter/eval_skill.json").read_text())
    assert report["files"]["model"] == "hellora-demo/base-model"
    assert report["examples"] == merged["examples"] == 4
    assert report["headline"] == merged["headline"]  # the merged export answers as base + adapter
    gsm8k = str(DATASETS / "gsm8k" / "test.jsonl")  # any task runs on the toy: GSM8K as plumbing
    assert main(["eval", "--task", "gsm8k", "--model", "runs/cpu/merged", "--data", gsm8k, "--limit", "1",
                 "--max-new-tokens", "4", "--out", "runs/cpu/eval-gsm8k", "--json"]) == 0
    assert main(["report", "runs/cpu/sort-hellora", "runs/cpu/sort-lora", "--out", "runs/cpu/report", "--quiet"]) == 0
    assert (demo_home / "runs/cpu/report/report.md").is_file()


def test_peft_export_loads_in_stock_peft_and_matches_the_merged_model(demo_home, monkeypatch):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    monkeypatch.chdir(demo_home)
    recipe = str(CPU_RECIPES / "sort-hellora.yaml")
    assert main(["train", recipe, *FAST, "train.learning_rate=5e-2", "output_dir=runs/parity",
                 "--no-progress"]) == 0
    for fmt in ("peft", "merged"):
        assert main(["export", "--adapter", "runs/parity/adapter", "--format", fmt, "--out", f"runs/p-{fmt}"]) == 0
    ids = torch.tensor([[5, 20, 33, 41, 60, 7]])
    base = AutoModelForCausalLM.from_pretrained("hellora-demo/base-model")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        peft_model = PeftModel.from_pretrained(base, "runs/p-peft")
    merged = AutoModelForCausalLM.from_pretrained("runs/p-merged")
    plain = AutoModelForCausalLM.from_pretrained("hellora-demo/base-model")
    with torch.no_grad():
        a, b, c = peft_model(ids).logits, merged(ids).logits, plain(ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(b, c, atol=1e-4)  # the adapter is not zero: the check means something


def test_train_overwrite_starts_over_and_a_failed_start_puts_the_old_run_back(demo_home, monkeypatch, capsys):
    monkeypatch.chdir(demo_home)
    recipe = str(CPU_RECIPES / "sort-lora.yaml")
    run = ["train", recipe, *FAST, "output_dir=runs/again", "--no-progress"]
    assert main(run) == 0
    assert main(run) == 2  # a finished run is refused ...
    assert "--overwrite" in capsys.readouterr().err
    before = (demo_home / "runs/again/adapter/hellora_adapter.safetensors").read_bytes()
    # ... --overwrite with a start that fails (missing data) leaves the old run exactly where it was
    assert main([*run, "data.train=missing.jsonl", "--overwrite"]) == 2
    assert (demo_home / "runs/again/adapter/hellora_adapter.safetensors").read_bytes() == before
    assert main([*run, "train.learning_rate=1e-2", "--overwrite"]) == 0  # starts over
    assert json.loads((demo_home / "runs/again/run.json").read_text())["status"] == "finished"
    assert (demo_home / "runs/again/adapter/hellora_adapter.safetensors").read_bytes() != before
    assert not [p for p in (demo_home / "runs").iterdir() if ".replaced." in p.name]
