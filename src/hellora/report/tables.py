"""`hellora report RUN_DIR...`: the paper's tables and figures from saved run folders (JSON only).

Runs are pooled into a row only when their configs differ in nothing but the seeds (`hellora.report.runs`); runs of
one method with other configs get rows of their own and a note naming the fields. Each row gives params %, training
throughput (with the machine's load average at train time, when recorded), the number of seeds and mean +- std of
each evaluation score (a single value, no std, for one seed). Figures: per-run expert activation heatmaps with hot
experts boxed, a throughput bar chart (only when some run recorded a throughput), and the warm-up stability table
(Jaccard / coverage against the largest warm-up fraction of the same model and task). Seed statistics: per row
n / mean / std / 95% CI of the first metric present, and the paper's orderings as paired tests over runs with
matching seeds (hellora.report.stats).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hellora.placement import HotExpertPlacement
from hellora.profiling.profile import ExpertProfile, compare_profiles
from hellora.report.labels import LABEL_LEGEND, method_label
from hellora.report.runs import (Row, Run, duplicate_seeds, health_flags, load_average, load_run, pool_rows,
                                 split_unfinished)
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_text
from hellora.utils.ownership import OutputKind, mark_folder

__all__ = ["METRICS", "Report", "make_report", "method_label", "results_table", "stats_table", "write_report"]

METRICS = [("proxy", "accuracy", "Target acc"), ("proxy", "others", "Other skills"), ("gsm8k", "accuracy", "GSM8K"),
           ("humaneval", "pass@1", "HE@1"), ("humaneval", "pass@5", "HE@5"), ("humaneval", "pass@10", "HE@10"),
           ("hexphi", "refusal_rate", "HEx-PHI"), ("advbench", "refusal_rate", "AdvBench"),
           ("skill", "accuracy", "Skill acc")]


def _mean_std(values: list[float]) -> str:
    """"-" for none, the value alone for one (a std needs two), else "mean +- std"."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def per_seed(row: Row, metric: tuple[str, str]) -> dict[tuple, float]:
    """{seed key: score} of one row; runs repeating a seed (see `duplicate_seeds`) are averaged into one sample."""
    found: dict[tuple, list[float]] = defaultdict(list)
    for run in row.runs:
        if metric in run.scores:
            found[run.seed_key()].append(run.scores[metric])
    return {key: statistics.mean(values) for key, values in found.items()}


def results_table(rows: list[Row]) -> str:
    """Markdown: one row per pooled config, columns Params % / samples/s / load / seeds / the metrics present."""
    runs = [r for row in rows for r in row.runs]
    present = [m for m in METRICS if any((m[0], m[1]) in r.scores for r in runs)]
    head = ["Method", "Params %", "samples/s", "load", "seeds"] + [m[2] for m in present]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        params = [r.status["steps"].get("attach", {}).get("trainable_pct") for r in row.runs]
        speed = [r.status["steps"].get("train", {}).get("samples_per_s") for r in row.runs]
        loads = [x for x in (load_average(r) for r in row.runs) if x is not None]
        seeds = {r.seed_key() for r in row.runs}
        cells = [row.label, _mean_std([p for p in params if p is not None]).split(" +-")[0],
                 _mean_std([s for s in speed if s]), f"{max(loads):.1f}" if loads else "?", str(len(seeds))]
        cells += [_mean_std(list(per_seed(row, (t, k)).values())) for t, k, _ in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# the paper's orderings between method labels: (a, b, strict)
LABEL_CLAIMS = [("HELLoRA", "HELLoRA (model)", True), ("HELLoRA (model)", "HELLoRA (random)", True),
                ("HELLoRA (random)", "LoRA", True), ("LoRA", "HELLoRA (cold)", True), ("HELLoRA", "LoRA", False),
                ("HELLoRI-D", "LoRI-D", False), ("HELLoRI-S", "LoRI-S", False)]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def stats_table(rows: list[Row]) -> str | None:
    """Markdown: per row n / mean / std / 95% CI of the first metric present (std and CI only from 2 seeds), then
    each ordering of `LABEL_CLAIMS` whose two rows have >= 2 runs with matching seeds (paired bootstrap CI,
    Wilcoxon p). Runs that carry bases (a study's `study.base_seed`) get the base-level statistics instead
    (`hellora.report.base_table`)."""
    from hellora.report.stats import describe, pair_up, paired_test

    runs = [r for row in rows for r in row.runs]
    metric = next((m for m in METRICS if any((m[0], m[1]) in r.scores for r in runs)), None)
    if metric is None:
        return None
    if any(r.base is not None for r in runs):  # several base models: the base is the unit (hellora.report.stats)
        from hellora.report.base_table import base_stats_table

        return base_stats_table(rows, metric, LABEL_CLAIMS)
    values = {row.label: per_seed(row, (metric[0], metric[1])) for row in rows}
    values = {label: v for label, v in values.items() if v}
    lines = [f"Metric: {metric[2]} (95% CI by Student's t over fine-tune seeds of one base model; no std or CI from "
             f"a single seed)", "",
             "| Method | n | mean | std | 95% CI |", "|---|---|---|---|---|"]
    for label, by_seed in values.items():
        d = describe(list(by_seed.values()))
        ci = f"[{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}]" if d["ci95"] else "-"
        lines.append(f"| {label} | {d['n']} | {_fmt(d['mean'])} | {_fmt(d['std']) if d['n'] >= 2 else '-'} | {ci} |")
    claims = []
    for a, b, strict in LABEL_CLAIMS:
        if a in values and b in values:
            keys, x, y = pair_up(values[a], values[b])
            if len(keys) >= 2:
                t = paired_test(x, y, strict=strict)
                claims.append(f"| {a} {'>' if strict else '>='} {b} | {t['n']} | {t['diff']:+.2f} | "
                              f"[{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}] | {t['p']:.4f} | {t['verdict']} |")
    if claims:
        lines += ["", "Paired over matching seeds (difference a - b; paired bootstrap CI; two-sided Wilcoxon "
                      "signed-rank p):", "", "| Claim | pairs | diff | 95% CI | p | verdict |",
                  "|---|---|---|---|---|---|"] + claims
    return "\n".join(lines)


def warmup_table(runs: list[Run]) -> str | None:
    """Table 10: hot-set agreement of each warm-up fraction with the largest one (same model and task)."""
    profiled = [r for r in runs if (r.path / "profile.json").is_file()]
    if len({r.config.get("profile", {}).get("fraction") for r in profiled}) < 2:
        return None
    profiles = {r.config["profile"]["fraction"]: (r, ExpertProfile.load(r.path / "profile.json")) for r in profiled}
    reference = profiles[max(profiles)][1]
    lines = ["| Fraction | Jaccard | Coverage | Warm-up s |", "|---|---|---|---|"]
    for fraction in sorted(profiles):
        run, profile = profiles[fraction]
        agreement = compare_profiles(profile, reference)
        wall = run.status["steps"].get("profile", {}).get("wall_time_s")
        lines.append(f"| {100 * fraction:g}% | {agreement['jaccard']:.3f} | {100 * agreement['coverage']:.1f}% | "
                     f"{wall if wall is not None else '-'} |")
    return "\n".join(lines)


@dataclass
class Report:
    """What `make_report` wrote and what the user must hear about: runs left out, rows split, runs flagged."""

    path: Path
    left_out: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _bullets(title: str, items: list[str]) -> list[str]:
    return [title, ""] + [f"- {item}" for item in items] + [""] if items else []


def make_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, include_unfinished: bool = False) -> Report:
    """Write out_dir/report.md (and figures) from run folders; every folder is read and checked before anything is
    written. Runs that did not finish are left out (listed in `Report.left_out`) unless `include_unfinished`."""
    from hellora.report.figures import throughput_plot
    from hellora.report.heatmap import plot_activation_heatmaps

    loaded = [load_run(d) for d in run_dirs]
    runs, left_out = split_unfinished(loaded, include_unfinished)
    if not runs:
        raise HelloraError("no finished run to report: " + "; ".join(left_out))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mark_folder(out, OutputKind.REPORT)  # hellora's: `report --overwrite` may replace it (utils/ownership.py)
    sections = ["# hellora report", ""]
    sections += _bullets("**Left out** (did not finish):", [] if include_unfinished else left_out)
    warnings = list(left_out) if include_unfinished else []
    flags = health_flags(runs)
    sections += _bullets("**Flagged** (training ended without learning; their scores are not the method's):", flags)
    warnings += flags
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.group].append(run)
    all_rows = []
    for (model, task), group in groups.items():
        rows, notes = pool_rows(group)
        all_rows += rows
        repeats = [w for row in rows for w in duplicate_seeds(row)]
        warnings += notes + repeats
        sections += [f"## {model} / {task}", "", results_table(rows), ""]
        sections += _bullets("Not pooled:", notes) + _bullets("Repeated seeds:", repeats)
        stats = stats_table(rows)
        if stats:
            sections += ["### Statistics", "", stats, ""]
        table = warmup_table(group)
        if table:
            sections += ["### Warm-up fraction (against the largest)", "", table, ""]
    sections += [LABEL_LEGEND + " `load`: the machine's 1-minute load average when training started (`?`: not "
                 "recorded); samples/s from a loaded or shared machine understate the method's speed.", ""]
    for run in runs:
        if (run.path / "profile.json").is_file():
            profile = ExpertProfile.load(run.path / "profile.json")
            placement = HotExpertPlacement.load(run.path / "placement.json") \
                if (run.path / "placement.json").is_file() else None
            name = f"heatmap_{run.path.name}.png"
            plot_activation_heatmaps({run.label: profile}, out / name,
                                     placements={run.label: placement} if placement else None)
            sections.append(f"![{run.label}]({name})")
    if throughput_plot(all_rows, out / "throughput.png") is not None:
        sections += ["", "![throughput](throughput.png)", ""]
    else:
        (out / "throughput.png").unlink(missing_ok=True)  # a stale figure from an earlier report would mislead
        sections += ["", "No run recorded a training throughput: no throughput figure.", ""]
    written = atomic_write_text(out / "report.md", "\n".join(sections))
    mark_folder(out, OutputKind.REPORT, finished=True)
    return Report(written, left_out, warnings)


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, include_unfinished: bool = False) -> Path:
    """`make_report`'s report.md path (for callers that need only the file: sweeps, the study's tests)."""
    return make_report(run_dirs, out_dir, include_unfinished=include_unfinished).path
