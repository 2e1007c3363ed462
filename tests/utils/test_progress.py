"""Progress on a terminal is a bar; redirected, it is a few log lines; off, nothing, and no library bars either."""

import logging
import os
import subprocess
import sys
from pathlib import Path

from hellora.utils import progress
from hellora.utils.progress import LineProgress, progress_bar

REPO = Path(__file__).resolve().parents[2]


def test_line_progress_writes_periodic_lines_and_one_at_the_end(caplog, monkeypatch):
    clock = iter(range(0, 1000, 10))  # each call to time.monotonic advances 10 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    caplog.set_level(logging.INFO, logger="hellora.progress")
    bar = LineProgress(total=10, desc="train", unit="step", interval=25)
    for _ in range(10):
        bar.update(1)
        bar.set_postfix(loss="1.2345")
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert 3 <= len(lines) <= 5  # every ~25 s over ~100 s, plus the last, never one per step
    assert lines[-1].startswith("train: 10/10 steps (100%)") and lines[-1].endswith("loss=1.2345")


def test_redirected_stderr_gets_lines_not_bars_and_disabled_gets_nothing(caplog):
    assert not sys.stderr.isatty()  # pytest captures stderr: the redirected case
    caplog.set_level(logging.INFO, logger="hellora.progress")
    assert list(progress_bar(range(3), desc="x", unit="item")) == [0, 1, 2]
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["x: 3/3 items (100%)"]
    caplog.clear()
    assert list(progress_bar(range(3), desc="x", disable=True)) == [0, 1, 2]
    assert caplog.records == []


def test_a_redirected_cli_log_has_no_loading_bars(tiny_model_dir, tmp_path):
    """`hellora eval` loads a model (transformers' "Loading weights" bar) with stderr going to a file."""
    data = tmp_path / "skill.jsonl"
    data.write_text('{"prompt": "ab", "answer": "ba"}\n')
    with open(tmp_path / "log.txt", "w") as log:
        done = subprocess.run([sys.executable, "-m", "hellora.cli", "eval", "--task", "skill", "--model",
                               str(tiny_model_dir), "--data", str(data), "--max-new-tokens", "4", "--out",
                               str(tmp_path / "ev")],
                              stderr=log, stdout=subprocess.DEVNULL, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"})
    text = (tmp_path / "log.txt").read_text()
    assert done.returncode == 0, text
    assert "Loading weights" not in text and "\r" not in text
