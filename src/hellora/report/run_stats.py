"""Run-level statistics: per-arm summaries and paired tests that treat every run as an independent draw.

Seeds fine-tuned from one base are not independent draws of a claim about bases: for study verdicts use the
base-level functions in `hellora.report.stats` (which re-exports these names, so older callers keep working).
`holm` and `finite_floats` are shared by both.

    describe(values)            n, mean, sample std, 95% CI of the mean by Student's t (the quantile from
                                `hellora.report.distributions.t_quantile`, the one t quantile of the package)
    paired_test(a, b, ...)      a[i] and b[i] come from the same (base seed, fine-tune seed): the mean of
                                d = a - b, a percentile paired-bootstrap 95% CI of that mean (resampling pairs),
                                the two-sided Wilcoxon signed-rank p, and a verdict
    wilcoxon_signed_rank(d)     zeros dropped (Wilcoxon's convention), tied |d| get average ranks; the p-value is
                                exact (the null distribution of W+ counted over all 2^n sign patterns by dynamic
                                programming on doubled ranks) for n <= 30, normal with tie correction above
    holm(pvalues)               Holm's step-down adjustment for several orderings tested at once

Verdict: "holds" when the claimed direction is significant (p < alpha AND the bootstrap CI excludes 0 on the
claimed side), "reversed" when the opposite direction is, otherwise "not significant". Requiring both tests to
agree is deliberately conservative: with 10 pairs, a single large outlier can move a bootstrap CI but not W+.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hellora.report.distributions import t_quantile
from hellora.utils.errors import HelloraError

EXACT_MAX_N = 30


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95%)."""
    if df < 1:
        raise HelloraError(f"t quantile: degrees of freedom must be >= 1, got {df}")
    return t_quantile(0.975, df)


def finite_floats(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise HelloraError(f"{what}: expected a flat list of finite numbers")
    return arr


def describe(values: Sequence[float]) -> dict:
    """{n, mean, std, ci95: [lo, hi]} (std and CI are 0-wide / None for n < 2)."""
    x = finite_floats(values, "describe")
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": 0.0, "ci95": None}
    std = float(x.std(ddof=1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def signed_ranks(d: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(ranks of |d| with ties averaged, signs) of the non-zero differences."""
    x = finite_floats(d, "signed ranks")
    x = x[x != 0]
    order = np.argsort(np.abs(x), kind="stable")
    ranks = np.empty(len(x))
    a = np.abs(x)[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and a[j + 1] == a[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1  # average of 1-based ranks i+1..j+1
        i = j + 1
    return ranks, np.sign(x)


def wilcoxon_signed_rank(d: Sequence[float]) -> dict:
    """Two-sided Wilcoxon signed-rank test of median(d) = 0: {n (non-zero), w_plus, p, method}."""
    ranks, signs = signed_ranks(d)
    n = len(ranks)
    if n == 0:
        return {"n": 0, "w_plus": 0.0, "p": 1.0, "method": "no non-zero differences"}
    w_plus = float(ranks[signs > 0].sum())
    if n <= EXACT_MAX_N:
        doubled = np.rint(2 * ranks).astype(int)  # average ranks are multiples of 1/2
        total = int(doubled.sum())
        ways = np.zeros(total + 1, dtype=float)
        ways[0] = 1.0
        for r in doubled:  # each rank's sign is + or - with probability 1/2
            ways[r:] = ways[r:] + ways[:total + 1 - r].copy()
        ways /= 2.0 ** n
        w2 = int(round(2 * w_plus))
        lower, upper = float(ways[:w2 + 1].sum()), float(ways[w2:].sum())
        return {"n": n, "w_plus": w_plus, "p": min(1.0, 2 * min(lower, upper)), "method": "exact"}
    mean = n * (n + 1) / 4
    _, counts = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - float((counts ** 3 - counts).sum()) / 48
    z = (abs(w_plus - mean) - 0.5) / math.sqrt(var) if var > 0 else 0.0
    return {"n": n, "w_plus": w_plus, "p": min(1.0, 2 * _normal_sf(max(z, 0.0))), "method": "normal"}


def paired_bootstrap_ci(d: Sequence[float], *, resamples: int = 10000, seed: int = 0) -> list[float]:
    """Percentile 95% CI of mean(d), resampling the pairs with replacement (a fixed seed: reproducible)."""
    x = finite_floats(d, "paired bootstrap")
    if len(x) == 0:
        raise HelloraError("paired bootstrap: no pairs")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return [float(lo), float(hi)]


def paired_test(a: Sequence[float], b: Sequence[float], *, strict: bool = True, alpha: float = 0.05,
                resamples: int = 10000, seed: int = 0) -> dict:
    """Test the claim "a > b" (strict) or "a >= b" on matched pairs.

    Returns {n, diff (mean a - b), ci95 (paired bootstrap), p (Wilcoxon, two-sided), wilcoxon_method, verdict}.
    For a ">=" claim "holds" means a is significantly better; "not significant" is consistent with the claim
    (a is not shown worse) but not evidence of a difference.
    """
    x, y = finite_floats(a, "paired test a"), finite_floats(b, "paired test b")
    if len(x) != len(y):
        raise HelloraError(f"paired test: {len(x)} values against {len(y)}; pairs must match")
    if len(x) < 2:
        raise HelloraError("paired test: needs at least 2 pairs")
    d = x - y
    diff = float(d.mean())
    ci = paired_bootstrap_ci(d, resamples=resamples, seed=seed)
    w = wilcoxon_signed_rank(d)
    if w["p"] < alpha and ci[0] > 0:
        verdict = "holds"
    elif w["p"] < alpha and ci[1] < 0:
        verdict = "reversed"
    else:
        verdict = "not significant"
    return {"n": int(len(d)), "diff": diff, "ci95": ci, "p": w["p"], "wilcoxon_method": w["method"],
            "relation": ">" if strict else ">=", "verdict": verdict}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given): controls the family-wise error over all the claims."""
    p = finite_floats(pvalues, "holm")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        adjusted[idx] = running
    return [float(v) for v in adjusted]


def pair_up(a: dict, b: dict) -> tuple[list, list[float], list[float]]:
    """Match two {pair key: value} maps on their common keys (sorted): (keys, a values, b values)."""
    keys = sorted(set(a) & set(b), key=str)
    return keys, [a[k] for k in keys], [b[k] for k in keys]
