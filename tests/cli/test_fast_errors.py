"""Config mistakes are reported before torch / transformers are imported (well under a second; they took 5-6 s):
the check is the import, not a timing, so the test holds on a loaded machine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft")


def _run_without_torch(args: list[str], cwd: Path) -> tuple[int, str, list[str]]:
    code = ("import sys\nfrom hellora.cli import main\nrc = main(sys.argv[1:])\n"
            f"print('IMPORTED', [m for m in {HEAVY!r} if m in sys.modules])\nsys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    imported = eval(done.stdout.strip().splitlines()[-1].removeprefix("IMPORTED "))
    return done.returncode, done.stderr, imported


@pytest.mark.parametrize("command", [
    ["train", "recipes/cpu/sort-hellora.yaml", "train.learning_rate=abc"],
    ["profile", "recipes/cpu/sort-hellora.yaml", "profile.fraction=abc", "--out", "never.json"],
])
def test_a_config_error_comes_before_torch_is_imported(command, tmp_path):
    rc, err, imported = _run_without_torch([str(REPO / c) if c.startswith("recipes/") else c for c in command],
                                           tmp_path)
    assert rc == 2 and "expected float" in err and len(err.strip().splitlines()) == 1
    assert imported == []
    assert not (tmp_path / "never.json").exists()


def test_a_sweep_checks_every_config_before_torch_is_imported(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base: {REPO / 'recipes/cpu/sort-hellora.yaml'}\noutput_dir: {tmp_path / 'runs'}\n"
                     "runs:\n  a: [train.learning_rate=abc]\n")
    rc, err, imported = _run_without_torch(["sweep", str(sweep)], tmp_path)
    assert rc == 2 and "train.learning_rate" in err and imported == []
