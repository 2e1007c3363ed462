"""`hellora sweep`: every paper sweep validates; a tiny sweep trains, skips finished runs and reports."""

from pathlib import Path

import pytest

from hellora.cli import main
from hellora.config import load_run_config
from hellora.sweep import load_sweep, sweep_runs

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SWEEPS = sorted([*RECIPES.joinpath("paper").glob("*.yaml"), RECIPES / "smoke" / "methods-olmoe-reduced.yaml"])


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_paper_sweeps_validate(path):
    sweep = load_sweep(path)
    runs = sweep_runs(sweep)
    assert len({out for out, _ in runs}) == len(runs) >= 4
    for _, overrides in runs:
        load_run_config(sweep["base"], overrides).resolved()


@pytest.mark.slow
def test_tiny_sweep_trains_resumes_and_reports(write_recipe, tmp_path, capsys):
    base = write_recipe("base.yaml")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base: {base.name}\noutput_dir: {tmp_path}/sw\nseeds: [0, 1]\nreport: true\n"
                     "runs:\n  hot: []\n  cold: [selection.strategy=cold]\n")
    assert main(["sweep", str(sweep), "--no-progress"]) == 0
    assert (tmp_path / "sw" / "cold-seed1" / "adapter").is_dir()
    assert (tmp_path / "sw" / "report" / "report.md").is_file()
    before = (tmp_path / "sw" / "hot-seed0" / "run.json").read_bytes()
    assert main(["sweep", str(sweep), "--no-progress"]) == 0  # finished runs are skipped
    assert (tmp_path / "sw" / "hot-seed0" / "run.json").read_bytes() == before
    assert "4 runs finished" in capsys.readouterr().out


def test_overrides_may_follow_options(capsys):
    sweep = str(RECIPES / "smoke" / "methods-olmoe-reduced.yaml")
    assert main(["sweep", sweep, "--dry-run", "data.limit=7"]) == 0
    out = capsys.readouterr().out
    assert out.count("data.limit=7") == 10 and "adapter.variant=dora" in out
    assert main(["sweep", sweep, "--dry-run", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
