"""`hellora train` after things go wrong, end to end on the tiny OLMoE: a damaged newest checkpoint, a stop before
the first checkpoint, a full disk, divergence, SIGTERM; what run.json says and how a rerun continues."""

import errno
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

import hellora.loop.training as loop
from hellora.cli import main
from tests.conftest import GSM8K

TRAIN = "{batch_size: 8, micro_batch_size: 4, max_steps: 8, save_steps: 2, logging_steps: 1, learning_rate: 0.002}"


def _adapter(run):
    return load_file(str(run / "adapter" / "hellora_adapter.safetensors"))


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _steps(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _status(run):
    return json.loads((run / "run.json").read_text())


@pytest.fixture
def straight(write_recipe, tmp_path):
    """The uninterrupted run every recovery must reproduce bitwise."""
    assert main(["train", str(write_recipe("straight.yaml", out="straight", train=TRAIN)), "--no-progress"]) == 0
    return tmp_path / "straight"


def _stop_after_save(monkeypatch, at_step, exc=KeyboardInterrupt):
    """Interrupt the run right after checkpoint `at_step` is written (as Ctrl-C, a kill or SIGTERM would)."""
    real = loop.save_checkpoint

    def save(folder, step, *args, **kw):
        path = real(folder, step, *args, **kw)
        if step == at_step:
            exc()
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save)


def _raise_interrupt():
    raise KeyboardInterrupt


@pytest.mark.slow
def test_truncated_newest_checkpoint_falls_back_and_gives_the_bitwise_adapter(straight, write_recipe, tmp_path,
                                                                               monkeypatch, capsys, caplog):
    recipe = write_recipe("b.yaml", out="broken", train=TRAIN)
    run = tmp_path / "broken"
    _stop_after_save(monkeypatch, 6, _raise_interrupt)
    assert main(["train", str(recipe), "--no-progress"]) == 130
    status = _status(run)
    assert status["status"] == "interrupted" and status["step"] == 6 and status["resume_from"] == "step-000006"
    assert "rerun the same command to resume from step-000006" in caplog.text
    monkeypatch.undo()
    newest = run / "checkpoints" / "step-000006" / "trainable.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    caplog.clear()
    assert main(["train", str(recipe), "--no-progress"]) == 0
    assert _same(_adapter(straight), _adapter(run))
    status = _status(run)
    assert status["status"] == "finished" and status["steps"]["train"]["resumed_from"] == 4
    assert status["attempts"][0]["status"] == "interrupted"
    damaged = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("damaged-step-000006-")]
    assert len(damaged) == 1 and "damaged checkpoint set aside: step-000006" in caplog.text
    assert _steps(run) == list(range(1, 9))
    # the train statistics cover both segments, as the uninterrupted run's do
    assert status["steps"]["train"]["examples"] == _status(straight)["steps"]["train"]["examples"]


@pytest.mark.slow
def test_a_stop_before_the_first_checkpoint_leaves_no_duplicate_steps(straight, write_recipe, tmp_path, monkeypatch):
    recipe = write_recipe("b.yaml", out="early", train=TRAIN)
    run = tmp_path / "early"
    real_write = loop.open if hasattr(loop, "open") else open
    written = []

    def full_disk(path, mode="r", *a, **kw):  # the third metrics line meets a full disk half-way
        f = real_write(path, mode, *a, **kw)
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            written.append(1)
            if len(written) == 2:
                f.write('{"phase": "train", "st')
                f.close()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return f

    monkeypatch.setattr(loop, "open", full_disk, raising=False)
    code = main(["train", str(recipe), "--no-progress"])
    monkeypatch.undo()
    assert code == 2 and not (run / "checkpoints").exists()
    assert _steps_raw(run) == 2  # a whole line and a torn one
    status = _status(run)
    assert status["status"] == "failed" and "No space left" in status["reason"]
    assert main(["train", str(recipe), "--no-progress"]) == 0
    assert _steps(run) == list(range(1, 9)) and _same(_adapter(straight), _adapter(run))


def _last_line(err):
    return err.strip().splitlines()[-1]


def _steps_raw(run):
    return len((run / "metrics.jsonl").read_text().splitlines())


def test_disk_full_read_only_and_a_file_as_output_dir_give_one_line(write_recipe, tmp_path, capsys, monkeypatch):
    import hellora.utils.io as hio

    (tmp_path / "afile").write_text("x")
    assert main(["train", str(write_recipe(out="afile")), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "afile is a file, not a folder" in _last_line(err) and "Traceback" not in err and (tmp_path / "afile").read_text() == "x"
    assert main(["train", str(write_recipe(out="afile/run")), "--no-progress"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    for code, words in ((errno.EROFS, "writable file system"), (errno.ENOSPC, "free some space")):
        def refuse(*a, code=code, **kw):
            raise OSError(code, os.strerror(code), str(tmp_path / f"ro{code}" / "config.yaml"))

        monkeypatch.setattr(hio.tempfile, "mkstemp", refuse)
        assert main(["train", str(write_recipe(out=f"ro{code}")), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert words in _last_line(err) and "Traceback" not in err, err
        monkeypatch.undo()


def test_sigterm_marks_the_run_interrupted_and_the_rerun_finishes(write_recipe, tmp_path, monkeypatch, caplog):
    recipe = write_recipe(out="term", train=TRAIN)
    run = tmp_path / "term"
    _stop_after_save(monkeypatch, 4, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert main(["train", str(recipe), "--no-progress"]) == 130
    status = _status(run)
    assert status["status"] == "interrupted" and status["reason"] == "SIGTERM" and status["step"] >= 4
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
    monkeypatch.undo()
    assert main(["train", str(recipe), "--no-progress"]) == 0
    assert _status(run)["status"] == "finished" and _steps(run) == list(range(1, 9))


DIVERGE = ("{batch_size: 8, micro_batch_size: 4, max_steps: 6, save_steps: 1, warmup_ratio: 0.0, "
           "learning_rate: %s}")


@pytest.mark.slow
def test_a_diverged_run_continues_with_a_lower_rate_through_restart_from_checkpoint(write_recipe, tmp_path, capsys,
                                                                                     monkeypatch):
    run = tmp_path / "nan"
    lora = "{method: lora, r: 4, alpha: 8}"
    real_rate = loop.learning_rate  # step 4's rate blows the parameters up to NaN: nothing after step 3 is good
    monkeypatch.setattr(loop, "learning_rate", lambda step, *a: float("nan") if step == 3 else real_rate(step, *a))
    assert main(["train", str(write_recipe(out="nan", adapter=lora, train=DIVERGE % "0.002")), "--no-progress"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "diverged at step 4: parameter" in err and "(step-000003)" in err and "--restart-from-checkpoint" in err
    status = _status(run)
    assert status["status"] == "diverged" and status["step"] == 4 and "diverged at step 4" in status["reason"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    for checkpoint in (run / "checkpoints").iterdir():  # the "last good" checkpoint is finite
        assert all(torch.isfinite(t).all() for t in load_file(str(checkpoint / "trainable.safetensors")).values())
    lower = write_recipe(out="nan", adapter=lora, train=DIVERGE % "0.001")
    assert main(["train", str(lower), "--no-progress"]) == 2
    assert "first difference: train.learning_rate); to continue" in capsys.readouterr().err
    wider = write_recipe("w.yaml", out="nan", adapter="{method: lora, r: 8, alpha: 8}", train=DIVERGE % "0.001")
    assert main(["train", str(wider), "--no-progress", "--restart-from-checkpoint"]) == 2
    assert "first difference: adapter.r); only train.learning_rate" in capsys.readouterr().err
    assert main(["train", str(lower), "--no-progress", "--restart-from-checkpoint"]) == 0
    status = _status(run)
    assert status["status"] == "finished" and status["steps"]["train"]["resumed_from"] == 3
    change = status["config_changes"][-1]
    assert change["changes"] == {"train.learning_rate": {"old": 0.002, "new": 0.001}}
    assert change["from_checkpoint"] == "step-000003" and status["attempts"][0]["status"] == "diverged"
    assert "learning_rate: 0.001" in (run / "config.yaml").read_text()


def test_an_unmoving_loss_is_warned_about_in_the_log_and_run_json(write_recipe, tmp_path, caplog):
    train = ("{batch_size: 8, micro_batch_size: 4, max_steps: 21, save_steps: 0, logging_steps: 5, "
             "learning_rate: 1.0e-30, warmup_ratio: 0.0}")  # positive, too small to move any weight
    recipe = write_recipe(out="flat", train=train, adapter="{method: lora, r: 4, alpha: 8}",
                          data="{task: gsm8k, train: %s, limit: 8, max_length: 48, max_prompt_length: 32}"
                          % GSM8K)
    assert main(["train", str(recipe), "--no-progress"]) == 3  # completed, but degenerate (tests/train/test_run_summary.py)
    assert _status(tmp_path / "flat")["status"] == "degenerate"
    warnings = _status(tmp_path / "flat")["steps"]["train"]["warnings"]
    assert len(warnings) == 1 and "the loss has not moved for 20 steps" in warnings[0]
    assert "the loss has not moved" in caplog.text


def test_a_zero_gradient_norm_is_warned_about_once():
    watch = loop.StallWatch()
    for step in range(1, 31):
        watch.update(step, loss=1.0 + step, grad_norm=0.0)
    assert len(watch.warnings) == 1 and "gradient norm has been 0 for 20 steps" in watch.warnings[0]
    resumed = loop.StallWatch(watch.state())  # the count survives a resume through the checkpoint
    assert resumed.zero == 30 and resumed.warnings == watch.warnings


@pytest.mark.slow
def test_kill_9_before_the_first_checkpoint_then_rerun_gives_each_step_once(straight, write_recipe, tmp_path):
    import subprocess
    import sys
    import time

    recipe = write_recipe("k.yaml", out="killed", train=TRAIN.replace("save_steps: 2", "save_steps: 6"))
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "hellora.cli", "train", str(recipe), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600  # generous: a loaded 2-core machine starts and steps slowly
    while time.time() < deadline and proc.poll() is None:
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "checkpoints").exists(), "the first checkpoint was written before the kill"
    assert 3 <= len(_steps(run)) < 6
    done = subprocess.run([sys.executable, "-m", "hellora.cli", "train", str(recipe), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _steps(run) == list(range(1, 9)) and _same(_adapter(straight), _adapter(run))
