"""`hellora sweep SWEEP.yaml`: one paper table = one base recipe x named override sets x seeds.

    base: ../olmoe-1b-7b/gsm8k-hellora.yaml       # relative to the sweep file
    output_dir: runs/paper/table4
    seeds: [0, 1, 2, 3, 4]                         # train.seed and selection.seed per run
    runs:
      layer-hot: [selection.strategy=layer]
      random:    [selection.strategy=random]
      lori-s:    [adapter.variant=lori_s, "adapter.lori_from=runs/t/lori-d-seed{seed}/adapter"]
    report: true                                   # hellora report over the finished runs

`{seed}` in an override is replaced by the run's seed. Each run goes to <output_dir>/<name>-seed<seed> and is an
ordinary `hellora train` run, so a killed sweep resumes run by run (finished runs are skipped) and any run can be
redone alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hellora.config import load_run_config
from hellora.utils.errors import HelloraError
from hellora.utils.yaml_values import read_yaml


def load_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep file, checked: known keys only, `base`, `output_dir` and `runs` present, `base` made absolute."""
    path = Path(path)
    sweep = read_yaml(path, "sweep", hint="see recipes/paper/ for examples")
    unknown = sorted(set(sweep) - {"base", "output_dir", "seeds", "runs", "report", "note"})
    if unknown:
        raise HelloraError(f"sweep {path}: unknown key {unknown[0]!r}")
    for key in ("base", "output_dir", "runs"):
        if key not in sweep:
            raise HelloraError(f"sweep {path}: missing key {key!r}")
    sweep["base"] = str((path.parent / sweep["base"]).resolve())
    return sweep


def sweep_runs(sweep: dict[str, Any], extra: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
    """(output folder, overrides) of every run of the sweep; `extra` overrides (the command line's) come after the
    sweep's own, so a user can change any run without editing the file, and output_dir last, so none moves it."""
    runs = []
    for name, overrides in sweep["runs"].items():
        for seed in sweep.get("seeds") or [0]:
            out = f"{sweep['output_dir']}/{name}-seed{seed}"
            own = [o.replace("{seed}", str(seed)) for o in overrides]
            runs.append((out, [*own, f"train.seed={seed}", f"selection.seed={seed}", *extra, f"output_dir={out}"]))
    return runs


def run_sweep(path: str | Path, extra: Sequence[str] = (), *, dry_run: bool = False,
              progress: bool = True) -> list[str]:
    """Train every run of the sweep not yet finished (each config checked before any run starts), then report.

    Returns the run folders that finished (none with `dry_run`, which prints each run's train command)."""
    sweep = load_sweep(path)
    planned = [(out, overrides, load_run_config(sweep["base"], overrides))  # every run validated before any starts
               for out, overrides in sweep_runs(sweep, list(extra))]
    done: list[str] = []
    for out, overrides, config in planned:
        if dry_run:
            print("hellora train", sweep["base"], " ".join(overrides))
            continue
        from hellora.train.pipeline import run_training  # after every run's config was checked (no torch before)
        from hellora.train.run_folder import run_finished

        if run_finished(out):
            done.append(out)
            continue
        run_training(config, progress=progress)
        done.append(out)
    if done and sweep.get("report") and not dry_run:
        from hellora.report.tables import write_report

        write_report(done, Path(sweep["output_dir"]) / "report")
    return done
