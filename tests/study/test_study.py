"""The proxy study end to end at toy size: runs, statistics, resume after kill -9, and the scoring shortcut."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hellora.cli import main
from hellora.study.arms import ARMS, ordered
from hellora.study.config import StudyConfig
from hellora.utils.errors import HelloraError

ROOT = Path(__file__).resolve().parents[2]
TINY = ["skills=[copy, upper]", "targets=[shift]", "target_pretrain=8", "pretrain_per_skill=64", "hidden_size=32",
        "intermediate_size=32", "layers=2", "experts=4", "top_k=2", "pretrain_steps=4", "pretrain_batch=16",
        "base_seeds=[0]", "ft_seeds=[0, 1]", "finetune_examples=40", "val_examples=8", "test_examples=8",
        "other_examples=4", "finetune_steps=2", "batch_size=8", "rank=2", "lr_grid=[0.001, 0.003]",
        "fft_lr_grid=[0.0001]", "workers=1", "arms=[lora, hellora]"]


def _finished(out: Path) -> dict[str, float]:
    """Run folder -> mtime of its study_run.json; a run still being written sits in a hidden `.NAME.*.tmp`
    folder (renamed into place when complete), which is not a finished run."""
    return {str(p.parent.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/runs/*/*/study_run.json")
            if not p.parent.name.startswith(".")}


@pytest.mark.slow
def test_two_arm_two_seed_study_end_to_end_and_resume(tmp_path, capsys):
    assert main(["proxy", *TINY, "--out", str(tmp_path), "--no-progress"]) == 0
    study = json.loads((tmp_path / "study.json").read_text())
    arms = study["targets"]["shift"]["arms"]
    assert set(arms) == {"lora", "hellora"}
    for row in arms.values():
        assert row["n"] == 2 and set(row) >= {"mean", "std", "ci95", "lr", "trainable_pct", "entropy_before"}
        assert row["lr"] in (0.001, 0.003)
    assert arms["hellora"]["trainable"] < arms["lora"]["trainable"]
    claim = study["orderings"]["shift"][0]
    assert claim["claim"] == "hellora >= lora" and claim["n"] == 2
    assert set(claim) >= {"diff", "ci95", "p", "verdict"}
    chosen = json.loads((tmp_path / "shift" / "tune" / "hellora" / "chosen.json").read_text())
    assert [t["lr"] for t in chosen["trials"]] == [0.001, 0.003]  # chosen on validation, both recorded
    run = tmp_path / "shift" / "runs" / "hellora" / "b0-s1"
    record = json.loads((run / "study_run.json").read_text())
    assert record["test"]["n"] == 8 and record["diagnostics"]["entropy_after"]
    assert record["warmup_fraction"] == 0.1 and len(record["hot_experts"]["0"]) == 2
    assert (tmp_path / "figures" / "accuracy_vs_params.png").is_file()
    assert "hellora >= lora" in capsys.readouterr().out

    from hellora.study.results_doc import MARKER, write_results

    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# Results\n\nhand-written conclusion\n\n" + MARKER + "\nold tables\n")
    text = write_results(tmp_path, page, tmp_path / "docs" / "img").read_text()
    assert "hand-written conclusion" in text and "old tables" not in text
    assert "| hellora >= lora |" in text and "](img/accuracy_vs_params.png)" in text
    assert (tmp_path / "docs" / "img" / "routing_entropy.png").is_file()

    before = _finished(tmp_path)
    assert len(before) == 4
    # a rerun redoes nothing; removing one run folder redoes exactly that run
    import shutil

    shutil.rmtree(run)
    assert main(["proxy", *TINY, "--out", str(tmp_path), "--no-progress"]) == 0
    after = _finished(tmp_path)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"shift/runs/hellora/b0-s1"}
    # the report reads the run folders and writes the paired statistics
    from hellora.report.tables import write_report

    report = write_report(sorted(tmp_path.glob("shift/runs/*/*")), tmp_path / "report").read_text()
    assert "| HELLoRA |" in report and "HELLoRA >= LoRA" in report


@pytest.mark.slow
def test_kill_9_loses_at_most_the_run_in_flight(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-m", "hellora.cli", "proxy", *TINY, "ft_seeds=[0, 1, 2, 3]", "--out", str(tmp_path),
            "--no-progress"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not _finished(tmp_path) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _finished(tmp_path)
    assert first, "no run finished before the kill"
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = _finished(tmp_path)
    assert len(second) == 8
    assert all(second[k] == v for k, v in first.items())  # finished runs were not redone
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_config_errors_name_the_field():
    with pytest.raises(HelloraError, match="unknown key 'layerz'"):
        StudyConfig.from_yaml(None, {"layerz": 2})
    with pytest.raises(HelloraError, match="unknown arm 'magic'"):
        StudyConfig(arms=["magic"])
    with pytest.raises(HelloraError, match="also in skills"):
        StudyConfig(skills=["copy", "word"], targets=["word"])
    with pytest.raises(HelloraError, match="needs arm 'hellori-d'"):
        StudyConfig(arms=["hellori-s"])
    with pytest.raises(HelloraError, match="unknown skill"):
        StudyConfig(targets=["nope"])
    with pytest.raises(HelloraError, match="ft_seeds"):
        StudyConfig(ft_seeds=[1, 1])


def test_out_folder_of_another_config_is_refused(tmp_path):
    from hellora.study.runner import _check_config

    _check_config(StudyConfig(), tmp_path)
    _check_config(StudyConfig(arms=["lora"], ft_seeds=[0]), tmp_path)  # additive fields may change
    with pytest.raises(HelloraError, match="'rank' differs"):
        _check_config(StudyConfig(rank=4), tmp_path)


def test_shipped_configs_load_and_lori_s_runs_after_lori_d():
    for path in (ROOT / "recipes" / "proxy").glob("*.yaml"):
        cfg = StudyConfig.from_yaml(path)
        assert len(cfg.targets) >= 1 and set(cfg.arms) <= set(ARMS)
    names = ordered(list(ARMS))
    assert names.index("hellori-d") < names.index("hellori-s")


def test_teacher_forced_exact_match_is_greedy_decoding():
    """On a random model: teacher-forcing the model's own greedy continuation scores 100%; one changed token
    in an example's answer makes exactly that example wrong."""
    from hellora.data import build_tiny_tokenizer, encode_prompt
    from hellora.data.skills import generate_skill_examples
    from hellora.data.tokenize import IGNORE_INDEX
    from hellora.study.scoring import score_features
    from hellora.study.toy import build_skill_moe

    tok = build_tiny_tokenizer()
    model = build_skill_moe(len(tok), hidden_size=32, layers=2, experts=4, top_k=2, seed=3)
    model.config.output_router_logits = False
    model.eval()
    features = []
    for ex in generate_skill_examples("copy", 6, seed=0):
        prompt = encode_prompt(tok, ex["prompt"])
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=tok.eos_token_id)
        answer = out[0, len(prompt):].tolist()
        features.append({"input_ids": prompt + answer, "attention_mask": [1] * (len(prompt) + len(answer)),
                         "labels": [IGNORE_INDEX] * len(prompt) + answer})
    assert score_features(model, features, batch_size=4)["exact_match"] == 1.0
    wrong = dict(features[2])
    wrong["labels"] = list(wrong["labels"])
    wrong["labels"][-1] = (wrong["labels"][-1] + 1) % len(tok)
    scores = score_features(model, features[:2] + [wrong] + features[3:], batch_size=4)
    assert scores["exact_match"] == pytest.approx(5 / 6) and scores["token_accuracy"] < 1.0


@pytest.mark.slow
def test_teacher_forced_scoring_agrees_with_generation_per_example():
    """A briefly trained model (a few copy prompts right, most wrong): hellora.study.toy.accuracy (greedy
    generate, decode, compare) and score_features (one teacher-forced pass) agree on every single example."""
    from accelerate import Accelerator

    from hellora.data import build_tiny_tokenizer
    from hellora.data.skills import generate_skill_examples
    from hellora.study.scoring import score_features
    from hellora.study.toy import accuracy, build_skill_moe, skill_features, train_steps

    torch.manual_seed(0)
    tok = build_tiny_tokenizer()
    model = build_skill_moe(len(tok), hidden_size=48, layers=2, experts=4, top_k=2, seed=0)
    train_steps(model, skill_features(tok, generate_skill_examples("copy", 512, 0)), 250, 3e-3, 32,
                Accelerator(cpu=True), "copy", progress=False)
    model.config.output_router_logits = False
    test = generate_skill_examples("copy", 64, 1, split="test")
    by_generation = [accuracy(model, tok, [e]) for e in test]
    by_forcing = [score_features(model, skill_features(tok, [e]))["exact_match"] for e in test]
    assert by_generation == by_forcing
    assert accuracy(model, tok, test) == score_features(model, skill_features(tok, test))["exact_match"]
