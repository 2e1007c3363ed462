"""The study's analysis on hand-made records: cross-fitted lr, grid-edge flags, exclusion, iso-target
interpolation, pairing by (target, seed) within a base, and the primary contrasts' statistics."""

import pytest

from hellora.study.analysis import (
    Cells,
    cross_fit,
    halves,
    interpolate_at,
    iso_retention,
    paired_runs,
)
from hellora.study.config import StudyConfig
from hellora.study.contrasts import Contrast, ContrastMetric
from hellora.study.summary import summarise_data

GRID = [0.001, 0.002, 0.004]


def _run(target, arm, base, lr, val, test, others=(0.5, 0.5), seed=0, steps=(5, 10)):
    """A run whose checkpoints climb linearly to (val, test) with `others` the retention at each checkpoint."""
    points = [{"step": s, "val": val * (i + 1) / len(steps), "test": test * (i + 1) / len(steps),
               "test_token_accuracy": test, "others": {}, "others_mean": others[i]} for i, s in enumerate(steps)]
    return {"target": target, "arm": arm, "base_seed": base, "ft_seed": seed, "lr": lr, "diverged": False,
            "checkpoints": points, "trainable": 10, "trainable_pct": 1.0}


def _before(target, base, val=0.0, seed=0, others=0.9):
    return {"target": target, "base_seed": base, "ft_seed": seed, "val": val, "test": 0.0, "others_mean": others,
            "excluded": val > 0.05}


def test_halves_alternate_over_sorted_bases():
    assert halves([4, 1, 3, 2, 0]) == ([0, 2, 4], [1, 3])


def test_cross_fit_chooses_on_the_other_half_and_flags_edges():
    # bases 0, 2 (half A) peak on validation at 0.004; bases 1, 3 (half B) at 0.002
    records = []
    for base in range(4):
        best = 0.004 if base % 2 == 0 else 0.002
        for lr in GRID:
            records.append(_run("t", "lora", base, lr, val=0.8 if lr == best else 0.2, test=0.1 * (base + 1) + lr))
    cells = Cells(records, [_before("t", b) for b in range(4)], steps=lambda target: 10)
    kept = cells.kept("t", [0, 1, 2, 3], [0])
    fit = cross_fit(cells, "t", "lora", kept, GRID)
    a, b = fit["choices"]
    assert (a["applied_to"], a["chosen_on"], a["lr"], a["edge"]) == ([0, 2], [1, 3], 0.002, None)
    assert (b["applied_to"], b["chosen_on"], b["lr"], b["edge"]) == ([1, 3], [0, 2], 0.004, "high")
    # each base's test value is read at the lr its *other* half chose
    assert fit["values"] == {0: [pytest.approx(10 + 0.2)], 1: [pytest.approx(20 + 0.4)],
                             2: [pytest.approx(30 + 0.2)], 3: [pytest.approx(40 + 0.4)]}


def test_exclusion_rule_drops_a_base_that_knew_the_target():
    cells = Cells([], [_before("t", 0), _before("t", 1, val=0.06), _before("t", 2, val=0.05)], steps=lambda target: 10)
    assert cells.kept("t", [0, 1, 2], [0]) == {0: [0], 2: [0]}


def test_iso_target_interpolates_along_the_checkpoints_and_takes_the_best_lr():
    # step 0: target 0, retention 90; step 5: 30 / 70; step 10: 60 / 50 -> at 40: 70 + (50 - 70) * (10 / 30)
    points = [(0, 0.0, 90.0), (5, 30.0, 70.0), (10, 60.0, 50.0)]
    assert interpolate_at(points, 40.0) == pytest.approx(70 - 20 / 3)
    assert interpolate_at(points, 61.0) is None
    records = [_run("t", "lora", 0, 0.001, val=0.6, test=0.6, others=(0.7, 0.5)),
               _run("t", "lora", 0, 0.002, val=0.9, test=0.9, others=(0.4, 0.2))]
    cells = Cells(records, [_before("t", 0)], steps=lambda target: 10)
    iso = iso_retention(cells, "t", "lora", {0: [0]}, [0.001, 0.002], 40.0)
    # lr 0.001 reaches 40 between steps 5 (30, 70) and 10 (60, 50): 63.33; lr 0.002 between 0 (0, 90) and 5 (45, 40)
    assert iso == {0: {0: pytest.approx(70 - 20 / 3)}}


def test_paired_runs_keep_only_the_cells_both_arms_have():
    per_target = {"t": {"a": {"test_by_cell": {"0": {"0": 1.0, "1": 2.0}, "1": {"0": 3.0}}},
                        "b": {"test_by_cell": {"0": {"1": 5.0}, "2": {"0": 7.0}}}},
                  "u": {"a": {"test_by_cell": {"0": {"0": 4.0}}}, "b": {"test_by_cell": {"0": {"0": 6.0}}}}}
    runs_a, runs_b = paired_runs(per_target, Contrast("a", "b", ContrastMetric.TEST))
    assert runs_a == {0: [2.0, 4.0]} and runs_b == {0: [5.0, 6.0]}


def test_primary_contrasts_are_tested_over_bases_with_holm_over_the_primaries_only():
    """4 bases, 2 targets: hellora beats random by 10 points on every base; the per-base mean over both targets
    is the unit (df = 3, exact sign-flip p = 2/16 two-sided), Holm over the 3 primaries."""
    cfg = StudyConfig(targets=["shift", "sub"], base_seeds=[0, 1, 2, 3], pilot_seed=None, lr_grid=GRID, finetune_steps=10,
                      arms=["lora", "hellora", "random"], iso_target=30.0)
    records, befores = [], []
    for target in cfg.targets:
        for base in cfg.base_seeds:
            befores.append(_before(target, base))
            for lr in GRID:
                val = 0.5 if lr == 0.002 else 0.1
                for arm, test in (("lora", 0.5), ("hellora", 0.5 + 0.01 * base), ("random", 0.4 + 0.01 * base)):
                    records.append(_run(target, arm, base, lr, val=val, test=test))
    study = summarise_data(cfg, records, befores)
    rows = {(r["a"], r["b"], r["metric"]): r for r in study["primary"]}
    better = rows[("hellora", "random", "test")]
    assert better["n_bases"] == 4 and better["df"] == 3 and better["diff"] == pytest.approx(10.0)
    assert better["p"] == pytest.approx(2 / 16)
    assert better["p_holm"] == pytest.approx(min(1.0, 3 * 2 / 16)) or better["p_holm"] >= better["p"]
    noninf = rows[("hellora", "lora", "test")]
    assert noninf["diff"] == pytest.approx(1.5) and noninf["p"] == pytest.approx(1 / 16)
    assert all(r["family"] == "primary" for r in study["primary"])
    assert study["targets"]["shift"]["arms"]["hellora"]["test"]["n_bases"] == 4
