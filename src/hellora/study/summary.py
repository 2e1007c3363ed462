"""study.json from a study's run records: per target and arm the base-level statistics, the lr chosen by
cross-fitting, retention at matched target accuracy, the forgetting frontier, and the pre-registered contrasts.

Two steps, so the published numbers can be re-derived from what the repository keeps:
- `collect` reads the run folders of an output folder into two small lists (run records, base scores);
  `write_data` saves them as `runs.jsonl` and `before.jsonl` beside `study.json` (docs/data/proxy-v2/);
- `summarise_data` is a pure function of the config and those two lists; `hellora.study.results_doc` rebuilds
  study.json and the page from the data folder alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from hellora.study.analysis import (
    Cells,
    cross_fit,
    frontier,
    iso_retention,
    paired_runs,
)
from hellora.study.config import StudyConfig
from hellora.study.contrasts import Contrast, secondary_contrasts
from hellora.study.paths import before_file, run_folder
from hellora.study.arm_run import read_run
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, atomic_write_text, read_json
from hellora.utils.meta import run_metadata

FORMAT = "hellora.proxy-study/4"  # /4: target_steps and warmup_lr in the config, checkpoint steps per target
ALPHA, POWER = 0.05, 0.8


def collect(cfg: StudyConfig, out: Path) -> tuple[list[dict], list[dict]]:
    """(run records, base scores) of every finished piece of `cfg` under `out`."""
    records, befores = [], []
    for target in cfg.targets:
        for b in cfg.base_seeds:
            for s in cfg.ft_seeds:
                path = before_file(out, target, b, s)
                if path.is_file():
                    befores.append(read_json(path, "base scores"))
                for arm in cfg.arms:
                    for lr in cfg.lr_grid_for(arm):
                        path = run_folder(out, target, arm, b, s, lr) / "study_run.json"
                        if path.is_file():
                            records.append(read_run(path))
    return records, befores


def _stats():
    from hellora.report import stats

    return stats


def _by_cell(values: dict, kept: dict[int, list[int]]) -> dict:
    """base -> seed -> value (JSON keys), from base -> {seed: value} or base -> [value per kept seed]."""
    out = {}
    for b, vals in values.items():
        pairs = vals.items() if isinstance(vals, dict) else zip(kept[b], vals)
        out[str(b)] = {str(s): v for s, v in pairs}
    return out


def _describe(values: dict[int, list[float]]) -> dict:
    values = {b: v for b, v in values.items() if v}
    if not values:
        return {"n_bases": 0, "n_runs": 0, "mean": None, "std": None, "ci95": None, "per_base": {}}
    return _stats().describe_bases(values)


def arm_block(cfg: StudyConfig, cells: Cells, target: str, arm: str, kept: dict[int, list[int]]) -> dict:
    grid = cfg.lr_grid_for(arm)
    fit = cross_fit(cells, target, arm, kept, grid)
    iso = iso_retention(cells, target, arm, kept, grid, cfg.iso_target)
    others = {}
    for choice in fit["choices"]:
        for b in choice["applied_to"]:
            vals = [p["others"] for s in kept[b] if (p := cells.final(target, arm, b, s, choice["lr"]))
                    and p["others"] is not None]
            if vals:
                others[b] = vals
    sample = next((r for r in cells.runs.values() if r["target"] == target and r["arm"] == arm
                   and r["trainable"] is not None), None)
    diverged = sum(r["diverged"] for r in cells.runs.values() if r["target"] == target and r["arm"] == arm)
    return {
        "test": _describe(fit["values"]),
        "others_at_chosen_lr": _describe(others),
        "iso_retention": _describe({b: list(v.values()) for b, v in iso.items()}),
        "iso_reached": f"{sum(len(v) for v in iso.values())}/{sum(len(v) for v in kept.values())}",
        "lr_choices": fit["choices"],
        "edge": sorted({c["edge"] for c in fit["choices"] if c["edge"]}),
        "trainable": sample["trainable"] if sample else None,
        "trainable_pct": sample["trainable_pct"] if sample else None,
        "diverged_runs": diverged,
        "frontier": frontier(cells, target, arm, kept, grid),
        "test_by_cell": _by_cell(fit["values"], kept),
        "iso_by_cell": _by_cell(iso, kept),
    }


def run_contrasts(per_target: dict[str, dict], contrasts: list[Contrast], scope: str) -> list[dict]:
    stats = _stats()
    rows = []
    for c in contrasts:
        runs_a, runs_b = paired_runs(per_target, c)
        row = {"contrast": c.name, "scope": scope, **c.to_dict()}
        if len(runs_a) < 2:
            row.update({"n_bases": len(runs_a), "p": None, "note": "fewer than 2 bases with both arms"})
        else:
            row.update(stats.base_contrast(runs_a, runs_b, margin=c.margin, kind=c.kind))
        rows.append(row)
    return rows


def _verdicts(rows: list[dict], primary: bool) -> list[dict]:
    stats = _stats()
    tested = [r for r in rows if r.get("p") is not None]
    done = stats.primary_verdicts(tested) if primary else stats.secondary_verdicts(tested)
    untested = [{**r, "p_holm": None, "verdict": "not tested"} for r in rows if r.get("p") is None]
    return list(done) + untested


def summarise_data(cfg: StudyConfig, records: list[dict], befores: list[dict], *, timing: dict | None = None,
                   command: str | None = None, meta: dict | None = None) -> dict:
    """study.json's content from the run records and base scores (pure: no file is read)."""
    stats = _stats()
    cells = Cells(records, befores, cfg.steps_for)
    per_target: dict[str, dict] = {}
    targets = {}
    for target in cfg.targets:
        kept = cells.kept(target, cfg.base_seeds, cfg.ft_seeds)
        scored = [b for b in befores if b["target"] == target]
        excluded = sorted({b["base_seed"] for b in scored if b["excluded"]})
        arms = {arm: arm_block(cfg, cells, target, arm, kept) for arm in cfg.arms}
        per_target[target] = arms
        targets[target] = {
            "bases_kept": sorted(kept), "bases_excluded": excluded,
            "before": {"val": _describe({b["base_seed"]: [100 * b["val"]] for b in scored}),
                       "test": _describe({b["base_seed"]: [100 * b["test"]] for b in scored}),
                       "others": _describe({b["base_seed"]: [100 * b["others_mean"]] for b in scored})},
            "arms": arms,
        }
    primary = cfg.primary_contrasts()
    primary_rows = _verdicts(run_contrasts(per_target, primary, "both targets"), primary=True)
    secondary = run_contrasts(per_target, secondary_contrasts(cfg.arms, primary), "both targets")
    if len(cfg.targets) > 1:
        for target in cfg.targets:
            secondary += run_contrasts({target: per_target[target]}, primary, target)
    for row in primary_rows:
        if row.get("std") is not None and row.get("n_bases", 0) >= 2:
            row["mde"] = stats.minimum_detectable_effect(row["n_bases"], row["std"], ALPHA, POWER)
    planned = len(cfg.targets) * len(cfg.base_seeds) * len(cfg.ft_seeds) * sum(len(cfg.lr_grid_for(a))
                                                                                   for a in cfg.arms)
    return {
        "format": FORMAT, "config": asdict(cfg), "command": command, "timing": timing or {}, "meta": meta or {},
        "design": {"analysed_bases": cfg.base_seeds, "pilot_seed": cfg.pilot_seed,
                   "exclusion_rule": f"a base scoring above {100 * cfg.exclude_before_above:g}% exact match on the "
                                     f"target's validation set before fine-tuning is dropped for that target",
                   "excluded": {t: targets[t]["bases_excluded"] for t in cfg.targets},
                   "checkpoint_steps": {t: cfg.checkpoint_steps(t) for t in cfg.targets}, "iso_target": cfg.iso_target,
                   "alpha": ALPHA, "power": POWER},
        "targets": targets, "primary": primary_rows, "secondary": _verdicts(secondary, primary=False),
        "runs_finished": len(records), "runs_planned": planned,
    }


def write_data(folder: Path, study: dict, records: list[dict], befores: list[dict]) -> Path:
    """study.json, runs.jsonl, before.jsonl in `folder` (the kept, re-analysable form of a study)."""
    folder.mkdir(parents=True, exist_ok=True)
    def key(r):
        return (r["target"], r.get("arm", ""), r["base_seed"], r["ft_seed"], r.get("lr", 0))
    atomic_write_text(folder / "runs.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n"
                                                     for r in sorted(records, key=key)))
    atomic_write_text(folder / "before.jsonl", "".join(json.dumps(b, sort_keys=True) + "\n"
                                                       for b in sorted(befores, key=key)))
    return atomic_write_json(folder / "study.json", study)


def read_data(folder: Path) -> tuple[StudyConfig, list[dict], list[dict], dict]:
    """(config, run records, base scores, study.json) of a data folder written by `write_data`."""
    study = read_json(folder / "study.json", "study summary")
    if not isinstance(study, dict) or study.get("format") != FORMAT:
        raise HelloraError(f"{folder / 'study.json'}: not a {FORMAT} study summary")
    cfg = StudyConfig(**study["config"])
    lists = []
    for name in ("runs.jsonl", "before.jsonl"):
        rows = []
        for i, line in enumerate((folder / name).read_text().splitlines(), 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise HelloraError(f"{folder / name} line {i}: not JSON ({err.msg})") from None
            if not isinstance(row, dict) or "target" not in row or "base_seed" not in row:
                raise HelloraError(f"{folder / name} line {i}: not a study record")
            rows.append(row)
        lists.append(rows)
    return cfg, lists[0], lists[1], study


def summarise(cfg: StudyConfig, out: Path, *, timing: dict | None = None, command: str | None = None) -> dict:
    """Collect, summarise, write `out/study.json` and the data folder `out/data/`, and the figures."""
    records, befores = collect(cfg, out)
    study = summarise_data(cfg, records, befores, timing=timing, command=command, meta=run_metadata())
    try:
        from hellora.study.figures import write_figures

        study["figures"] = write_figures(study, out / "figures")
    except ImportError:  # matplotlib is a dependency; this only guards a broken install
        study["figures"] = []
    write_data(out / "data", study, records, befores)
    atomic_write_json(out / "study.json", study)
    return study
