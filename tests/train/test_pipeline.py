"""`hellora train` end to end on a tiny OLMoE and real GSM8K lines: files, resume after SIGKILL, two processes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from hellora.adapters.io import load_adapter
from hellora.cli import main
from hellora.placement import HotExpertPlacement
from hellora.profiling import ExpertProfile
from hellora.models.tiny import tiny_model


def _adapter(run):
    return load_file(str(run / "adapter" / "hellora_adapter.safetensors"))


def test_hellora_run_writes_every_step(write_recipe, tmp_path):
    assert main(["train", str(write_recipe()), "--no-progress"]) == 0
    run = tmp_path / "run"
    for name in ("config.yaml", "run.json", "profile.json", "placement.json", "metrics.jsonl", "adapter"):
        assert (run / name).exists(), name
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished" and status["meta"]["torch"] and status["steps"]["profile"]["mode"] == "warmup"
    profile = ExpertProfile.load(run / "profile.json")
    assert profile.mode == "warmup" and sum(profile.counts[0]) > 0 and profile.source["examples"] == 16
    placement = HotExpertPlacement.load(run / "placement.json")
    assert placement.k == 2 and all(len(v) == 2 for v in placement.experts.values())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    model = load_adapter(tiny_model("olmoe", vocab_size=104), run / "adapter")
    assert model.hellora_adapter.experts == placement.experts


def test_forward_profiling_and_lora_method(write_recipe, tmp_path):
    assert main(["train", str(write_recipe(out="fwd")), "profile.mode=forward", "--no-progress"]) == 0
    assert ExpertProfile.load(tmp_path / "fwd" / "profile.json").mode == "forward"
    assert main(["train", str(write_recipe(out="lora")), "adapter.method=lora", "--no-progress"]) == 0
    assert not (tmp_path / "lora" / "profile.json").exists()
    status = json.loads((tmp_path / "lora" / "run.json").read_text())
    assert status["steps"]["attach"]["by_role"]["experts"] == 2 * 8 * 3 * 4 * (32 + 16)


def test_loss_drops_over_training(write_recipe, tmp_path):
    recipe = write_recipe(out="long", train="{batch_size: 8, micro_batch_size: 4, max_steps: 30, save_steps: 0, "
                                            "logging_steps: 1, learning_rate: 0.01, warmup_ratio: 0.0}")
    assert main(["train", str(recipe), "--no-progress"]) == 0
    losses = [json.loads(l)["loss"] for l in (tmp_path / "long" / "metrics.jsonl").read_text().splitlines()]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.2


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "hellora.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_then_resume_gives_the_bitwise_same_adapter(write_recipe, tmp_path):
    train = "{batch_size: 8, micro_batch_size: 4, max_steps: 40, save_steps: 4, logging_steps: 1, learning_rate: 0.002}"
    straight = write_recipe("a.yaml", out="straight", train=train)
    assert main(["train", str(straight), "--no-progress"]) == 0
    killed = write_recipe("b.yaml", out="killed", train=train)
    proc = _cli("train", str(killed), "--no-progress")
    target = tmp_path / "killed" / "checkpoints" / "step-000008"
    deadline = time.time() + 600  # generous: a loaded 2-core machine runs these steps slowly
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.exists(), proc.stderr.read()
    assert not (tmp_path / "killed" / "adapter").exists(), "the run finished before it could be killed"
    metrics = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    resumed = _cli("train", str(killed), "--no-progress")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    status = json.loads((tmp_path / "killed" / "run.json").read_text())
    assert status["steps"]["train"]["resumed_from"] >= 8
    a, b = _adapter(tmp_path / "straight"), _adapter(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(l)["step"] for l in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41)) and len(metrics) >= 8


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_gloo_processes_give_the_same_adapter_as_one(write_recipe, tmp_path):
    assert main(["train", str(write_recipe("one.yaml", out="one")), "--no-progress"]) == 0
    two = write_recipe("two.yaml", out="two")
    done = subprocess.run(["torchrun", "--nproc-per-node", "2", "--master-port", "29571", "-m", "hellora.cli", "train",
                           str(two), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["processes"] == 2
    a, b = _adapter(tmp_path / "one"), _adapter(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    assert (tmp_path / "one" / "placement.json").read_text() == (tmp_path / "two" / "placement.json").read_text()


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(write_recipe, tmp_path, capsys):
    recipe = write_recipe(out="nan", adapter="{method: lora, r: 4, alpha: 8}", train="{batch_size: 8, micro_batch_size: 4, max_steps: 6, save_steps: 1, "
                                           "learning_rate: 1.0e+30, warmup_ratio: 0.0, max_grad_norm: 1.0e+30}")
    assert main(["train", str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "diverged at step" in err and "Traceback" not in err
    checkpoints = sorted(p.name for p in (tmp_path / "nan" / "checkpoints").iterdir())
    assert checkpoints == ["step-000001"] and "step-000001" in err and not (tmp_path / "nan" / "adapter").exists()


@pytest.mark.parametrize("method, variant", [("lora", "dora"), ("hellora", "lori_d"), ("loramoe", "none"),
                                             ("fft", "none")])
def test_every_method_trains_through_the_pipeline(write_recipe, tmp_path, method, variant):
    out = f"{method}-{variant}"
    extra = ["adapter.loramoe_balance=0.01"] if method == "loramoe" else []
    assert main(["train", str(write_recipe(out=out)), f"adapter.method={method}", f"adapter.variant={variant}",
                 "train.max_steps=3", *extra, "--no-progress"]) == 0
    status = json.loads((tmp_path / out / "run.json").read_text())
    assert status["status"] == "finished" and status["steps"]["train"]["steps"] == 3
    assert (tmp_path / out / ("model" if method == "fft" else "adapter")).is_dir()


def test_hellori_s_starts_from_the_hellori_d_adapter(write_recipe, tmp_path):
    assert main(["train", str(write_recipe(out="d")), "adapter.variant=lori_d", "--no-progress"]) == 0
    assert main(["train", str(write_recipe(out="s")), "adapter.variant=lori_s",
                 f"adapter.lori_from={tmp_path / 'd' / 'adapter'}", "--no-progress"]) == 0
    d = load_file(str(tmp_path / "d" / "adapter" / "hellora_adapter.safetensors"))
    s = load_file(str(tmp_path / "s" / "adapter" / "hellora_adapter.safetensors"))
    a_keys = [k for k in d if k.endswith("lora_A")]
    assert a_keys and all(torch.equal(d[k], s[k]) for k in a_keys)  # A is frozen and shared
    assert not (tmp_path / "s" / "profile.json").exists()


def test_profile_select_compare_commands(write_recipe, tmp_path):
    recipe = write_recipe()
    assert main(["profile", str(recipe), "profile.fraction=0.5", "--out", str(tmp_path / "half.json"),
                 "--no-progress"]) == 0
    assert main(["profile", str(recipe), "profile.fraction=1.0", "--out", str(tmp_path / "all.json"),
                 "--no-progress"]) == 0
    half = ExpertProfile.load(tmp_path / "half.json")
    assert half.mode == "forward" and half.source["examples"] == 24
    assert main(["select", "--profile", str(tmp_path / "half.json"), "--strategy", "coverage", "--p", "0.6",
                 "--out", str(tmp_path / "p.json")]) == 0
    assert HotExpertPlacement.load(tmp_path / "p.json").strategy == "coverage"
    assert main(["compare", str(tmp_path / "half.json"), str(tmp_path / "all.json")]) == 0
    assert main(["profile", str(recipe), "--out", str(tmp_path / "half.json")]) == 2  # never overwritten


def test_rerun_after_training_finished_does_not_train_again(write_recipe, tmp_path):
    recipe = write_recipe(out="again", train="{batch_size: 8, micro_batch_size: 4, max_steps: 3, save_steps: 0, "
                                             "logging_steps: 1, learning_rate: 0.002}")
    assert main(["train", str(recipe), "--no-progress"]) == 0
    status_path = tmp_path / "again" / "run.json"
    status = json.loads(status_path.read_text())
    status["status"] = "running"  # as if killed during the evaluation step
    status_path.write_text(json.dumps(status))
    weights = (tmp_path / "again" / "adapter" / "hellora_adapter.safetensors").read_bytes()
    metrics = (tmp_path / "again" / "metrics.jsonl").read_text()
    with open(tmp_path / "again" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a line half-written by a kill
    assert main(["train", str(recipe), "--no-progress"]) == 0
    assert json.loads(status_path.read_text())["status"] == "finished"
    assert (tmp_path / "again" / "adapter" / "hellora_adapter.safetensors").read_bytes() == weights
    assert (tmp_path / "again" / "metrics.jsonl").read_text().startswith(metrics)


def test_metrics_truncation_drops_half_written_lines(tmp_path):
    from hellora.loop.training import _truncate_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    _truncate_metrics(path, 2)
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_profile_sample_is_the_seeded_fraction_with_its_source():
    from hellora.config import load_run_config
    from hellora.data import sample_fraction
    from hellora.profiling.stage import profile_sample

    config = load_run_config(None, ["profile.fraction=0.25", "profile.seed=3"])
    features = [{"input_ids": [i]} for i in range(40)]
    sample, source = profile_sample(config, features, {"task": "gsm8k", "examples": 40})
    assert sample == sample_fraction(features, 0.25, 3) and len(sample) == 10
    assert source == {"task": "gsm8k", "examples": 10, "fraction": 0.25, "seed": 3}


def test_profile_command_and_training_profile_the_same_sample(write_recipe, tmp_path):
    recipe = write_recipe(out="fwd")
    assert main(["train", str(recipe), "profile.mode=forward", "train.max_steps=1", "--no-progress"]) == 0
    assert main(["profile", str(recipe), "profile.mode=forward", "--out", str(tmp_path / "alone.json"),
                 "--no-progress"]) == 0
    trained, alone = ExpertProfile.load(tmp_path / "fwd" / "profile.json"), ExpertProfile.load(tmp_path / "alone.json")
    assert trained.source == alone.source and trained.counts == alone.counts


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_process_resume_with_dropout_gives_the_bitwise_same_adapter(tmp_path):
    """Each process's dropout stream must continue from its own saved RNG state, not rank 0's."""
    from hellora.data import build_tiny_tokenizer
    from tests.conftest import recipe_text

    model = tiny_model("olmoe", vocab_size=104)
    model.config.attention_dropout = 0.3
    model.save_pretrained(tmp_path / "model")
    build_tiny_tokenizer().save_pretrained(tmp_path / "model")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_text(tmp_path / "model", tmp_path / "run", profile="{mode: none}",
                                  adapter="{method: lora, r: 4, alpha: 8}",
                                  train="{batch_size: 8, micro_batch_size: 2, max_steps: 4, save_steps: 2, "
                                        "save_total_limit: 4, learning_rate: 0.01}"))
    command = ["torchrun", "--nproc-per-node", "2", "--master-port", "29572", "-m", "hellora.cli", "train",
               str(recipe), "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    straight = _adapter(run)
    checkpoint = run / "checkpoints" / "step-000002"
    assert sorted(p.name for p in checkpoint.glob("rng_rank*.json")) == ["rng_rank0.json", "rng_rank1.json"]
    shutil.rmtree(run / "adapter")  # as if killed right after the step-2 checkpoint
    status = json.loads((run / "run.json").read_text())
    status["status"] = "running"
    del status["steps"]["train"]
    (run / "run.json").write_text(json.dumps(status))
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["steps"]["train"]["resumed_from"] == 2
    resumed = _adapter(run)
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_an_unfinished_run_from_an_older_version_resumes(write_recipe, tmp_path):
    """config.yaml written before a field existed: the field takes its default, the run resumes; a real
    difference is still refused, and named."""
    import pytest

    from hellora.config import dump_config, load_run_config
    from hellora.train.run_folder import check_run_folder
    from hellora.utils.errors import HelloraError

    config = load_run_config(write_recipe()).resolved()
    text = dump_config(config)
    run = tmp_path / "old-run"
    run.mkdir()
    assert "fuse_shared_inputs" in text
    (run / "config.yaml").write_text("".join(l for l in text.splitlines(True) if "fuse_shared_inputs" not in l))
    assert check_run_folder(run, text) is True
    (run / "config.yaml").write_text(text.replace(f"r: {config.adapter.r}", f"r: {config.adapter.r + 1}"))
    with pytest.raises(HelloraError, match="first difference: adapter.r"):
        check_run_folder(run, text)
