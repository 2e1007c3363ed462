"""The report's statistics for runs that carry bases (the proxy study's `study.base_seed`): the base is the unit.

Seeds are averaged within a base first (`hellora.report.stats.describe_bases`), so a base with five seeds weighs as
much as one with one; the CI is Student's t over base means with df = bases - 1, and none is given under 3 bases
(read the per-base means instead). The paper's orderings are base-level contrasts (per-base differences, exact
sign-flip p, t-CI, hierarchical bootstrap CI), Holm-adjusted together as one descriptive (secondary) family: a
report pre-registers nothing.
"""

from __future__ import annotations

from collections import defaultdict

from hellora.report.runs import Row


def base_runs(row: Row, metric: tuple[str, str]) -> dict:
    """{base: {fine-tune seed: score}} of one row (runs without a base are left out)."""
    runs: dict = defaultdict(dict)
    for run in row.runs:
        if run.base is not None and metric in run.scores:
            seed = run.seed_key()[-1]
            runs[run.base].setdefault(seed, []).append(run.scores[metric])
    return {base: {seed: sum(v) / len(v) for seed, v in seeds.items()} for base, seeds in runs.items()}


def _num(value: float | None, sign: bool = False) -> str:
    return "-" if value is None else (f"{value:+.2f}" if sign else f"{value:.2f}")


def _ci(ci: list[float] | None, sign: bool = False) -> str:
    return "-" if not ci else f"[{_num(ci[0], sign)}, {_num(ci[1], sign)}]"


def base_stats_table(rows: list[Row], metric: tuple[str, str, str], claims: list[tuple[str, str, bool]]) -> str:
    """Markdown: per row bases / runs / mean of base means / between-base std / t-CI (>= 3 bases) / per-base means,
    then each claim whose two rows share bases as a base-level contrast."""
    from hellora.report.stats import base_contrast, describe_bases, secondary_verdicts

    key = (metric[0], metric[1])
    values = {row.label: base_runs(row, key) for row in rows}
    values = {label: v for label, v in values.items() if v}
    lines = [f"Metric: {metric[2]}, the base as the unit: seeds averaged within each base, then mean, std and "
             f"95% t-CI over bases (df = bases - 1; no CI from fewer than 3 bases).", "",
             "| Method | bases | runs | mean | std | 95% CI | per base |", "|---|---|---|---|---|---|---|"]
    for label, runs in values.items():
        d = describe_bases(runs)
        per_base = ", ".join(f"{b}: {m:.2f}" for b, m in d["per_base"].items())
        lines.append(f"| {label} | {d['n_bases']} | {d['n_runs']} | {_num(d['mean'])} | {_num(d['std'])} | "
                     f"{_ci(d['ci95'])} | {per_base} |")
    contrasts, names = [], []
    for a, b, strict in claims:
        if a in values and b in values and set(values[a]) & set(values[b]):
            contrasts.append(base_contrast(values[a], values[b]))
            names.append(f"{a} {'>' if strict else '>='} {b}")
    if contrasts:
        lines += ["", "Base-level contrasts (difference a - b per base; exact sign-flip p over bases; Holm over "
                      "these contrasts; descriptive):", "",
                  "| Contrast | bases | diff | 95% CI | bootstrap CI | p | p (Holm) | verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, c in zip(names, secondary_verdicts(contrasts)):
            lines.append(f"| {name} | {c['n_bases']} | {_num(c['diff'], True)} | {_ci(c['ci95'], True)} | "
                         f"{_ci(c['boot_ci95'], True)} | {c['p']:.4f} | {c['p_holm']:.4f} | {c['verdict']} |")
    return "\n".join(lines)
