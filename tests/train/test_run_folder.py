"""The run folder's guard: one trainer per real folder, a file as output_dir refused, a killed attempt recorded."""

import json
import os
import subprocess
import sys

import pytest

from hellora.cli import main
from hellora.train.run_folder import check_run_folder
from hellora.utils.errors import HelloraError


def test_a_second_trainer_through_a_symlinked_output_dir_is_refused(write_recipe, tmp_path, capsys):
    real = tmp_path / "runs" / "real"
    real.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    holder = subprocess.Popen([sys.executable, "-c", "import time; from hellora.utils.io import folder_lock\n"
                               f"with folder_lock({str(real)!r}):\n print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", str(write_recipe(out="link")), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert "in use by another hellora process" in err and f"pid {holder.pid}" in err and str(real) in err
        assert list(real.iterdir()) == []  # nothing written
    finally:
        holder.kill()
        holder.wait()


def test_output_dir_that_is_a_file_is_refused_by_the_check(tmp_path):
    (tmp_path / "f").write_text("keep")
    with pytest.raises(HelloraError, match="is a file, not a folder"):
        check_run_folder(tmp_path / "f", "x: 1\n")
    assert (tmp_path / "f").read_text() == "keep"


def test_a_config_change_outside_the_whitelist_is_refused_even_with_restart(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = "train:\n  learning_rate: 0.1\n  seed: 1\noutput_dir: x\n"
    (run / "config.yaml").write_text(saved)
    assert check_run_folder(run, saved.replace("0.1", "0.01"), restart=True) is True
    with pytest.raises(HelloraError, match=r"first difference: train.learning_rate\); to continue"):
        check_run_folder(run, saved.replace("0.1", "0.01"))
    with pytest.raises(HelloraError, match=r"first difference: train.seed\); only train.learning_rate"):
        check_run_folder(run, saved.replace("seed: 1", "seed: 2").replace("0.1", "0.01"), restart=True)


def test_an_attempt_killed_without_a_word_is_recorded_as_killed(tmp_path):
    from types import SimpleNamespace

    from hellora.config import RunConfig
    from hellora.train.run_folder import RunRecorder

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "running", "pid": 999999, "steps": {"attach": {}}}))
    (run / "metrics.jsonl").write_text('{"phase": "train", "step": 3}\n')
    recorder = RunRecorder(run, RunConfig(), SimpleNamespace(is_main_process=True, num_processes=1))
    assert recorder.data["status"] == "running" and recorder.data["pid"] == os.getpid()
    assert recorder.data["steps"] == {"attach": {}}
    killed = recorder.data["attempts"][0]
    assert killed["status"] == "killed" and "999999" in killed["reason"] and killed["step"] == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits; the EROFS case is covered by "
                                              "test_recovery's monkeypatched file system")
def test_a_read_only_parent_folder_gives_one_line(write_recipe, tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert main(["train", str(write_recipe(out="ro/run")), "--no-progress"]) == 2
    finally:
        parent.chmod(0o755)
    err = capsys.readouterr().err
    assert "Permission denied; choose an output_dir you can write" in err.strip().splitlines()[-1]
    assert "Traceback" not in err and list(parent.iterdir()) == []
