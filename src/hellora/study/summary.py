"""study.json from the finished run folders: per-arm statistics, the paper's orderings tested on matched seed
pairs, the chosen learning rates, warm-up agreement (Table 10), routing skew and the review's diagnostics.

Accuracies are in points (0-100). A pair is one (base seed, fine-tune seed); "pooled" pairs are (target, base
seed, fine-tune seed), so the pooled test has twice the pairs of a per-target one (not independent targets'
averages: each pair still compares two arms on the same base, data order and init seed).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from hellora.profiling.profile import ExpertProfile, compare_profiles
from hellora.report.stats import describe, holm, pair_up, paired_test
from hellora.study.arms import CLAIMS
from hellora.study.config import StudyConfig
from hellora.study.paths import base_folder, chosen_file, run_folder, warmup_file
from hellora.utils.io import atomic_write_json, read_json
from hellora.utils.meta import run_metadata


def load_records(cfg: StudyConfig, out: Path) -> list[dict]:
    records = []
    for target in cfg.targets:
        for arm in cfg.arms:
            for b in cfg.base_seeds:
                for s in cfg.ft_seeds:
                    path = run_folder(out, target, arm, b, s) / "study_run.json"
                    if path.is_file():
                        records.append(read_json(path, "study run"))
    return records


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def _layer_mean(rows: list[list[float]]) -> list[float] | None:
    rows = [r for r in rows if r]
    return [statistics.mean(col) for col in zip(*rows)] if rows else None


def arm_table(records: list[dict]) -> dict:
    """arm -> n, mean, std, ci95 of test exact match (points), and the arm's costs and diagnostics."""
    by_arm: dict[str, list[dict]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], []).append(r)
    table = {}
    for arm, rows in by_arm.items():
        diag = [r["diagnostics"] for r in rows if r["diagnostics"]]
        table[arm] = {
            **describe([100 * r["test"]["exact_match"] for r in rows]),
            "token_accuracy": 100 * _mean(r["test"]["token_accuracy"] for r in rows),
            "val_exact_match": 100 * _mean(r["val"]["exact_match"] for r in rows),
            "diverged": sum(r["diverged"] for r in rows),
            "lr": rows[0]["lr"], "trainable": rows[0]["trainable"], "trainable_pct": rows[0]["trainable_pct"],
            "samples_per_s": _mean(r["samples_per_s"] for r in rows),
            "adapter_flops_per_token": _mean(d.get("adapter_forward_flops_per_token") for d in diag),
            "others_before": 100 * _mean(d["others_before_mean"] for d in diag) if diag else None,
            "others_after": describe([100 * d["others_after_mean"] for d in diag]),
            "entropy_before": _layer_mean([d["entropy_before"] for d in diag]),
            "entropy_after": _layer_mean([d["entropy_after"] for d in diag]),
            "hot_jaccard_before_after": describe([d["hot_jaccard_before_after"] for d in diag]),
        }
    return table


def _pairs(records: list[dict], arm: str, pooled: bool, metric: str) -> dict:
    return {((r["target"],) if pooled else ()) + (r["base_seed"], r["ft_seed"]): 100 * r["test"][metric]
            for r in records if r["arm"] == arm}


def orderings(records: list[dict], arms: list[str], *, pooled: bool = False, metric: str = "exact_match"
              ) -> list[dict]:
    """Every claim of `CLAIMS` whose two arms ran, tested on matched pairs of `metric` (test exact match, or
    token accuracy as a finer-grained check); Holm-adjusted p over the list."""
    out = []
    for a, b, strict, group in CLAIMS:
        if a not in arms or b not in arms:
            continue
        keys, x, y = pair_up(_pairs(records, a, pooled, metric), _pairs(records, b, pooled, metric))
        if len(keys) < 2:
            continue
        test = paired_test(x, y, strict=strict)
        out.append({"claim": f"{a} {'>' if strict else '>='} {b}", "a": a, "b": b, "group": group, **test})
    for row, p in zip(out, holm([r["p"] for r in out])):
        row["p_holm"] = p
    return out


def warmup_agreement(cfg: StudyConfig, out: Path, target: str) -> dict:
    """Table 10: each warm-up fraction's layer-hot set against the 100% warm-up of the same (base, seed)."""
    reference = max(cfg.warmup_fractions)
    result = {}
    for fraction in sorted(cfg.warmup_fractions):
        jac, cov, steps = [], [], []
        for b in cfg.base_seeds:
            for s in cfg.ft_seeds:
                p, ref = warmup_file(out, target, b, s, fraction), warmup_file(out, target, b, s, reference)
                if not (p.is_file() and ref.is_file()):
                    continue
                profile = ExpertProfile.load(p)
                agreement = compare_profiles(profile, ExpertProfile.load(ref), cfg.top_k)
                jac.append(agreement["jaccard"])
                cov.append(agreement["coverage"])
                steps.append(profile.meta.get("steps"))
        if jac:
            result[f"{fraction:g}"] = {"jaccard": describe(jac), "coverage": describe(cov),
                                       "warmup_steps": _mean(steps), "examples": ExpertProfile.load(
                                           warmup_file(out, target, cfg.base_seeds[0], cfg.ft_seeds[0], fraction)
                                       ).source.get("examples")}
    return result


def skew(cfg: StudyConfig, out: Path, target: str) -> dict:
    """Top-k share of the target's test tokens per layer on each base, against uniform k/E."""

    per_base = {}
    for b in cfg.base_seeds:
        path = out / target / f"base{b}" / "before.json"
        if path.is_file():
            profile = ExpertProfile.from_dict(read_json(path, "base scores")["routing"])
            per_base[str(b)] = list(profile.top_k_share(cfg.top_k).values())
    return {"uniform": cfg.top_k / cfg.experts, "per_base": per_base}


def hot_overlap_with_skills(cfg: StudyConfig, out: Path, target: str) -> dict:
    """Mean Jaccard of the target's layer-hot set with each other skill's, on each base (shared routing)."""
    from hellora.study.scoring import hot_set_jaccard

    result = {}
    for skill in cfg.skills:
        values = []
        for b in cfg.base_seeds:
            folder = base_folder(out, b) / "profiles"
            if (folder / f"{skill}.json").is_file() and (folder / f"{target}.json").is_file():
                values.append(hot_set_jaccard(ExpertProfile.load(folder / f"{target}.json"),
                                              ExpertProfile.load(folder / f"{skill}.json"), cfg.top_k))
        if values:
            result[skill] = statistics.mean(values)
    return result


def before_scores(cfg: StudyConfig, out: Path, target: str) -> dict:
    rows = [read_json(out / target / f"base{b}" / "before.json", "base scores") for b in cfg.base_seeds
            if (out / target / f"base{b}" / "before.json").is_file()]
    return {"test_exact_match": describe([100 * r["test"]["exact_match"] for r in rows]),
            "others": describe([100 * statistics.mean(v["exact_match"] for v in r["others"].values())
                                for r in rows])}


def summarise(cfg: StudyConfig, out: Path, *, timing: dict | None = None, command: str | None = None) -> dict:
    from dataclasses import asdict

    records = load_records(cfg, out)
    study = {"format": "hellora.proxy-study/2", "config": asdict(cfg), "command": command,
             "targets": {}, "orderings": {}, "orderings_token_accuracy": {}, "timing": timing or {}, "meta": run_metadata()}
    for target in cfg.targets:
        rows = [r for r in records if r["target"] == target]
        chosen = {}
        for arm in cfg.arms:
            path = chosen_file(out, target, arm)
            if path.is_file():
                saved = read_json(path, "chosen lr")
                chosen[arm] = {"lr": saved["lr"], "val_exact_match": {f"{t['lr']:g}": t["val"]["exact_match"]
                                                                     for t in saved["trials"]},
                               "others_after": {f"{t['lr']:g}": t.get("others_mean") for t in saved["trials"]}}
        study["targets"][target] = {
            "arms": arm_table(rows), "base": before_scores(cfg, out, target), "lr": chosen,
            "warmup": warmup_agreement(cfg, out, target), "skew": skew(cfg, out, target),
            "hot_overlap_with_skills": hot_overlap_with_skills(cfg, out, target),
        }
        study["orderings"][target] = orderings(rows, cfg.arms)
        study["orderings_token_accuracy"][target] = orderings(rows, cfg.arms, metric="token_accuracy")
    if len(cfg.targets) > 1:
        study["orderings"]["pooled"] = orderings(records, cfg.arms, pooled=True)
        study["orderings_token_accuracy"]["pooled"] = orderings(records, cfg.arms, pooled=True,
                                                                metric="token_accuracy")
    study["runs_finished"] = len(records)
    study["runs_planned"] = len(cfg.targets) * len(cfg.arms) * len(cfg.base_seeds) * len(cfg.ft_seeds)
    atomic_write_json(out / "study.json", study)
    try:
        from hellora.study.figures import write_figures

        study["figures"] = write_figures(study, out)
        atomic_write_json(out / "study.json", study)
    except ImportError:  # matplotlib is a dependency; this only guards a broken install
        pass
    return study
