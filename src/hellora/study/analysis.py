"""The study's statistics from its run records: the base is the unit.

    cross_fit        the reported lr of an arm: chosen on the validation scores of one half of the bases,
                     applied to the test scores of the other half, then the halves swap (so no base's test score
                     ever chose its own lr); a choice at either end of the grid is flagged
    iso_retention    the other skills' mean exact match at the moment the target's test accuracy first reaches a
                     pre-registered level, interpolated along each lr's checkpoints (step 0 = the base), best lr
    frontier         per arm and lr, the (target, retention) path over the checkpoints, averaged over bases
    contrasts        per-base values of two arms, paired by (target, seed) cells within a base, tested with
                     `hellora.report.stats.base_contrast` (t over bases, df = bases - 1, exact sign-flip p)

Accuracies are in points (0-100). A record is a `study_run.json` (see arm_run.py); a "before" is the base's scores.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable

from hellora.study.contrasts import Contrast, ContrastMetric

DIVERGED_VAL = -1.0  # a diverged run's validation score: below every real one, so never chosen over one


def final_point(record: dict, steps: int) -> dict | None:
    """The last checkpoint's scores (points) of a run that reached `steps`; a diverged run scores 0 on test."""
    if record["diverged"]:
        return {"val": DIVERGED_VAL, "test": 0.0, "others": None}
    last = record["checkpoints"][-1] if record["checkpoints"] else None
    if not last or last["step"] != steps:
        return None
    return {"val": 100 * last["val"], "test": 100 * last["test"],
            "others": None if last["others_mean"] is None else 100 * last["others_mean"]}


class Cells:
    """Run records of one study indexed by (target, arm, base, seed, lr), with the bases each target keeps."""

    def __init__(self, records: list[dict], befores: list[dict], steps: Callable[[str], int]) -> None:
        self.steps = steps  # target -> the final step of its runs (`StudyConfig.steps_for`)
        self.runs = {(r["target"], r["arm"], r["base_seed"], r["ft_seed"], r["lr"]): r for r in records}
        self.before = {(b["target"], b["base_seed"], b["ft_seed"]): b for b in befores}

    def kept(self, target: str, base_seeds: list[int], ft_seeds: list[int]) -> dict[int, list[int]]:
        """base -> fine-tune seeds of `target` that the exclusion rule kept (bases with none are left out)."""
        out = {}
        for b in base_seeds:
            seeds = [s for s in ft_seeds if (target, b, s) in self.before and not self.before[(target, b, s)]["excluded"]]
            if seeds:
                out[b] = seeds
        return out

    def final(self, target: str, arm: str, base: int, seed: int, lr: float) -> dict | None:
        record = self.runs.get((target, arm, base, seed, lr))
        return final_point(record, self.steps(target)) if record else None

    def trajectory(self, target: str, arm: str, base: int, seed: int, lr: float) -> list[tuple[int, float, float]]:
        """[(step, target test points, other skills' points)], step 0 being the base before fine-tuning."""
        record, before = self.runs.get((target, arm, base, seed, lr)), self.before.get((target, base, seed))
        if record is None or before is None or before["others_mean"] is None:
            return []
        points = [(0, 100 * before["test"], 100 * before["others_mean"])]
        points += [(c["step"], 100 * c["test"], 100 * c["others_mean"]) for c in record["checkpoints"]
                   if c["others_mean"] is not None]
        return points


def halves(bases: list[int]) -> tuple[list[int], list[int]]:
    """The pre-registered split for cross-fitting: bases in increasing order, alternately to half A and B."""
    ordered = sorted(bases)
    return ordered[0::2], ordered[1::2]


def _mean_val(cells: Cells, target: str, arm: str, kept: dict[int, list[int]], bases: list[int], lr: float):
    values = [p["val"] for b in bases for s in kept[b] if (p := cells.final(target, arm, b, s, lr))]
    return statistics.mean(values) if values else None


def cross_fit(cells: Cells, target: str, arm: str, kept: dict[int, list[int]], grid: list[float]) -> dict:
    """{values: base -> [test points per seed] at the lr chosen on the other half, choices: [...]}.
    With fewer than 2 bases there is no other half: the lr is chosen on the same bases and flagged in-sample."""
    a, b = halves(list(kept))
    plan = [(a, b), (b, a)] if a and b else [(a + b, a + b)]
    values: dict[int, list[float]] = {}
    choices = []
    for applied, chosen_on in plan:
        by_lr = {lr: _mean_val(cells, target, arm, kept, chosen_on, lr) for lr in grid}
        scored = [(v, -lr) for lr, v in by_lr.items() if v is not None]
        if not scored:
            continue
        lr = -max(scored)[1]
        choices.append({"chosen_on": chosen_on, "applied_to": applied, "lr": lr,
                        "edge": "low" if lr == grid[0] else "high" if lr == grid[-1] else None,
                        "in_sample": applied == chosen_on, "val_by_lr": {f"{k:g}": v for k, v in by_lr.items()}})
        for base in applied:
            tests = [p["test"] for s in kept[base] if (p := cells.final(target, arm, base, s, lr))]
            if tests:
                values[base] = tests
    return {"values": dict(sorted(values.items())), "choices": choices}


def interpolate_at(points: list[tuple[int, float, float]], level: float) -> float | None:
    """Retention where the target accuracy first reaches `level` along `points`, linearly between checkpoints;
    None when it never does."""
    for i, (_, t, r) in enumerate(points):
        if t >= level:
            if i == 0:
                return r
            _, t0, r0 = points[i - 1]
            return r0 + (r - r0) * (level - t0) / (t - t0)
    return None


def iso_retention(cells: Cells, target: str, arm: str, kept: dict[int, list[int]], grid: list[float],
                  level: float) -> dict[int, dict[int, float]]:
    """base -> seed -> best retention over lrs at target accuracy `level` (cells that never reach it: absent)."""
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for base, seeds in kept.items():
        for seed in seeds:
            found = [v for lr in grid
                     if (v := interpolate_at(cells.trajectory(target, arm, base, seed, lr), level)) is not None]
            if found:
                out[base][seed] = max(found)
    return dict(out)


def frontier(cells: Cells, target: str, arm: str, kept: dict[int, list[int]], grid: list[float]) -> dict:
    """lr -> [[step, mean target points, mean retention points]] over the cells that have every checkpoint."""
    out = {}
    for lr in grid:
        paths = [p for b, seeds in kept.items() for s in seeds if (p := cells.trajectory(target, arm, b, s, lr))]
        length = max((len(p) for p in paths), default=0)
        paths = [p for p in paths if len(p) == length]
        if paths:
            out[f"{lr:g}"] = [[paths[0][i][0], statistics.mean(p[i][1] for p in paths),
                               statistics.mean(p[i][2] for p in paths)] for i in range(length)]
    return out


def cell_values(per_target: dict[str, dict], arm: str, metric: ContrastMetric) -> dict[int, dict[tuple, float]]:
    """base -> {(target, seed): value} of one arm on one metric, from `per_target[target][arm]`."""
    out: dict[int, dict[tuple, float]] = defaultdict(dict)
    for target, arms in per_target.items():
        if arm not in arms:
            continue
        source = arms[arm]["test_by_cell"] if metric is ContrastMetric.TEST else arms[arm]["iso_by_cell"]
        for base, seeds in source.items():
            for seed, value in seeds.items():
                out[int(base)][(target, int(seed))] = value
    return dict(out)


def paired_runs(per_target: dict[str, dict], contrast: Contrast) -> tuple[dict, dict]:
    """(runs_a, runs_b): base -> values of the (target, seed) cells both arms have, in the same order."""
    a, b = cell_values(per_target, contrast.a, contrast.metric), cell_values(per_target, contrast.b, contrast.metric)
    runs_a, runs_b = {}, {}
    for base in sorted(set(a) & set(b)):
        shared = sorted(set(a[base]) & set(b[base]))
        if shared:
            runs_a[base] = [a[base][c] for c in shared]
            runs_b[base] = [b[base][c] for c in shared]
    return runs_a, runs_b
