"""Statistics for run comparisons: base-level summaries and contrasts (the unit is the base), plus the run-level tests.

Pure functions (numpy only, no scipy), shared by the proxy study and `hellora report`.

The base as the unit (issue 21): `runs` maps a base id -> its values over fine-tune seeds; seeds are averaged
within a base first, so every base weighs the same.

    base_means(runs)                        base -> mean over its seeds
    describe_bases(runs)                    n_bases, n_runs, mean of base means, between-base std, t-CI with
                                            df = n_bases - 1 (None under 3 bases), per_base
    sign_flip_p(d, alternative)             exact permutation p of mean(d) over all 2^n sign patterns (n <= 20;
                                            seeded Monte Carlo with 2^20 draws above)
    hierarchical_bootstrap_ci(a, b=None)    bases, then seeds within each base, resampled (the secondary view)
    base_contrast(a, b, margin, kind)       per-base differences: diff, t-CI, sign-flip p, t p, bootstrap CI
    primary_verdicts / secondary_verdicts   Holm over the (at most 3) pre-registered primaries / over the rest
    minimum_detectable_effect, min_sign_flip_p, design_sensitivity    what a design with n bases can show

The run-level functions (describe, paired_test, wilcoxon_signed_rank, paired_bootstrap_ci, holm, pair_up,
t_quantile_975) live in `hellora.report.run_stats` and are re-exported here for their callers.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from hellora.report.distributions import t_quantile, t_sf, t_two_sided_p
from hellora.report.run_stats import (EXACT_MAX_N, finite_floats, describe, holm, pair_up, paired_bootstrap_ci,
                                      paired_test, signed_ranks, t_quantile_975, wilcoxon_signed_rank)
from hellora.utils.errors import HelloraError
from hellora.choices import Alternative, ContrastKind

__all__ = ["EXACT_MAX_N", "MAX_PRIMARY_CONTRASTS", "SIGN_FLIP_DRAWS", "SIGN_FLIP_EXACT_MAX_N", "base_contrast",
           "base_means", "describe", "describe_bases", "design_sensitivity", "hierarchical_bootstrap_ci", "holm",
           "min_sign_flip_p", "minimum_detectable_effect", "pair_up", "paired_bootstrap_ci", "paired_test",
           "primary_verdicts", "secondary_verdicts", "sign_flip_p", "signed_ranks", "t_quantile_975",
           "wilcoxon_signed_rank"]

# The base as the unit ------------------------------------------------------------------------------------------
#
# A "run" is one (base, fine-tune seed). Seeds within a base share the base's pretraining, so they are not
# independent draws of a claim about bases: every function below first averages a base's seeds, then treats the
# base means (or the per-base differences) as the sample. `runs` maps base id -> that base's values over seeds,
# either a sequence (the seed id is the position) or a {seed id: value} mapping.

SIGN_FLIP_EXACT_MAX_N = 20
SIGN_FLIP_DRAWS = 2 ** 20
MAX_PRIMARY_CONTRASTS = 3
_SIGN_FLIP_CHUNK = 2 ** 14

BaseRuns = Mapping[Hashable, "Sequence[float] | Mapping[Hashable, float]"]


def _runs_by_seed(runs: BaseRuns, what: str) -> dict[Hashable, dict[Hashable, float]]:
    """base -> {seed: value}, every value finite, every base with at least one seed (else one error naming it)."""
    if not isinstance(runs, Mapping):
        raise HelloraError(f"{what}: expected a mapping base -> values over seeds, got {type(runs).__name__}")
    out: dict[Hashable, dict[Hashable, float]] = {}
    for base, values in runs.items():
        seeds = dict(values) if isinstance(values, Mapping) else dict(enumerate(values))
        arr = finite_floats(list(seeds.values()), f"{what}: base {base!r}")
        if len(arr) == 0:
            raise HelloraError(f"{what}: base {base!r} has no values")
        out[base] = dict(zip(seeds, (float(v) for v in arr)))
    return out


def _sorted_bases(bases) -> list:
    return sorted(bases, key=str)


def base_means(runs: BaseRuns) -> dict[Hashable, float]:
    """base -> the mean of that base's values over its seeds (a base with 5 seeds weighs as much as one with 1)."""
    return {base: float(np.mean(list(seeds.values()))) for base, seeds in _runs_by_seed(runs, "base means").items()}


def _t_interval(mean: float, std: float, n: int) -> list[float]:
    half = t_quantile(0.975, n - 1) * std / math.sqrt(n)
    return [mean - half, mean + half]


def describe_bases(runs: BaseRuns) -> dict:
    """{n_bases, n_runs, mean (of the base means), std (between bases; None under 2), df, ci95 (Student t,
    df = n_bases - 1; None under 3 bases: no pooled CI over fewer than 3 bases, read per_base instead), per_base}."""
    seeds = _runs_by_seed(runs, "describe bases")
    means = base_means(seeds)
    bases = _sorted_bases(means)
    x = np.array([means[b] for b in bases])
    n = len(x)
    n_runs = sum(len(v) for v in seeds.values())
    mean = float(x.mean()) if n else None
    std = float(x.std(ddof=1)) if n >= 2 else None
    ci = _t_interval(mean, std, n) if n >= 3 and mean is not None and std is not None else None
    return {"n_bases": n, "n_runs": n_runs, "mean": mean, "std": std, "df": n - 1 if n else None, "ci95": ci,
            "per_base": {str(b): means[b] for b in bases}}


def _count_as_extreme(sums: np.ndarray, observed: float, tol: float, alternative: Alternative) -> int:
    if alternative is Alternative.GREATER:
        return int(np.count_nonzero(sums >= observed - tol))
    if alternative is Alternative.LESS:
        return int(np.count_nonzero(sums <= observed + tol))
    return int(np.count_nonzero(np.abs(sums) >= abs(observed) - tol))


def sign_flip_p(d: Sequence[float], alternative: str | Alternative = Alternative.TWO_SIDED, *, seed: int = 0) -> float:
    """Permutation p of mean(d) under "each d_i is as likely -d_i" (the paired null), over the bases' signs.

    n = len(d) <= 20: exact, the share of all 2^n sign patterns whose mean is at least as extreme as the observed
    one (two-sided: |mean| >= |observed|; greater: mean >= observed; less: mean <= observed). Zeros are kept (they
    count in n and flip to themselves). Means equal up to 1e-9 of sum|d| count as ties, so float rounding cannot
    drop the observed pattern itself. n > 20: a Monte Carlo estimate over SIGN_FLIP_DRAWS = 2^20 random sign
    patterns drawn with `seed` (reproducible), reported as (hits + 1) / (draws + 1), which never gives p = 0.
    The smallest exact two-sided p is 2 / 2^n (`min_sign_flip_p`): 3 bases can never go below 0.25.
    """
    alt = Alternative.parse(alternative, "sign-flip alternative")
    x = finite_floats(d, "sign-flip test")
    n = len(x)
    if n == 0:
        raise HelloraError("sign-flip test: no differences")
    observed = float(x.sum())  # the mean times n: n is the same for every pattern
    tol = 1e-9 * max(1.0, float(np.abs(x).sum()))
    if n <= SIGN_FLIP_EXACT_MAX_N:
        sums = np.zeros(1)
        for value in x:  # after step i: the 2^i sums of the first i values with every sign pattern
            sums = np.concatenate([sums + value, sums - value])
        return _count_as_extreme(sums, observed, tol, alt) / len(sums)
    rng = np.random.default_rng(seed)
    hits, left = 0, SIGN_FLIP_DRAWS
    while left:
        m = min(_SIGN_FLIP_CHUNK, left)
        signs = rng.integers(0, 2, size=(m, n)) * 2.0 - 1.0  # (m, n) of +-1
        hits += _count_as_extreme(signs @ x, observed, tol, alt)
        left -= m
    return (hits + 1) / (SIGN_FLIP_DRAWS + 1)


def min_sign_flip_p(n_bases: int, alternative: str | Alternative = Alternative.TWO_SIDED) -> float:
    """The smallest p an exact sign-flip test over n_bases can give: 2 / 2^n two-sided, 1 / 2^n one-sided."""
    alt = Alternative.parse(alternative, "sign-flip alternative")
    if isinstance(n_bases, bool) or not isinstance(n_bases, int) or n_bases < 1:
        raise HelloraError(f"n_bases: must be a positive integer, got {n_bases!r}")
    return min(1.0, (2.0 if alt is Alternative.TWO_SIDED else 1.0) / 2.0 ** n_bases)


def _resampled_means(rng: np.random.Generator, values: Sequence[float], k: int) -> np.ndarray:
    """(k,) means of `values` resampled with replacement, each of the original size."""
    v = np.asarray(values, dtype=float)
    return v[rng.integers(0, len(v), size=(k, len(v)))].mean(axis=1)


def hierarchical_bootstrap_ci(runs_a: BaseRuns, runs_b: BaseRuns | None = None, *, resamples: int = 10000,
                              seed: int = 0) -> list[float] | None:
    """Percentile 95% CI by resampling bases with replacement, then each drawn base's seeds with replacement.

    One arm: of the mean of base means. Two arms: of the mean over bases of (mean a - mean b), over the bases both
    have; a base where both arms have the same seeds resamples the per-seed differences (paired by seed), any other
    base resamples each arm's seeds on its own. None under 3 bases (no pooled interval over fewer than 3 bases).
    The secondary view: the primary interval is the t-interval over base means.
    """
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise HelloraError(f"hierarchical bootstrap: resamples must be a positive integer, got {resamples!r}")
    a = _runs_by_seed(runs_a, "hierarchical bootstrap, arm a")
    b = None if runs_b is None else _runs_by_seed(runs_b, "hierarchical bootstrap, arm b")
    bases = _sorted_bases(a if b is None else set(a) & set(b))
    n = len(bases)
    if n < 3:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))  # (R, n): which base fills each slot of each resample
    values = np.empty((resamples, n))
    for j, base in enumerate(bases):
        slots = picks == j
        k = int(slots.sum())
        if k == 0:
            continue
        seeds_a = a[base]
        if b is None:
            values[slots] = _resampled_means(rng, list(seeds_a.values()), k)
        elif set(seeds_a) == set(b[base]):
            keys = _sorted_bases(seeds_a)
            values[slots] = _resampled_means(rng, [seeds_a[s] - b[base][s] for s in keys], k)
        else:
            values[slots] = (_resampled_means(rng, list(seeds_a.values()), k)
                             - _resampled_means(rng, list(b[base].values()), k))
    lo, hi = np.quantile(values.mean(axis=1), [0.025, 0.975])
    return [float(lo), float(hi)]


def base_contrast(runs_a: BaseRuns, runs_b: BaseRuns, *, margin: float = 0.0,
                  kind: str | ContrastKind = ContrastKind.SUPERIORITY, alpha: float = 0.05,
                  resamples: int = 10000, seed: int = 0) -> dict:
    """Arm a against arm b with the base as the unit: d_b = mean_seeds(a at b) - mean_seeds(b at b).

    superiority: p is the exact two-sided sign-flip p of mean(d) = 0. noninferiority ("a is not worse than b by
    `margin` or more"): p is the one-sided sign-flip p of H0: d <= -margin, i.e. of d + margin > 0. p_t is the
    matching t-test p (secondary; None when the bases' d have no spread). ci95 is the t-interval of mean(d) with
    df = n_bases - 1 (None under 3 bases), boot_ci95 the hierarchical bootstrap. No verdict: verdicts use the
    Holm-adjusted p of the family (`primary_verdicts`, `secondary_verdicts`).
    """
    contrast = ContrastKind.parse(kind, "contrast kind")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin) or margin < 0:
        raise HelloraError(f"contrast margin: must be a finite number >= 0, got {margin!r}")
    if contrast is ContrastKind.SUPERIORITY and margin != 0:
        raise HelloraError(f"contrast margin: a superiority contrast takes no margin (got {margin}); "
                           "use kind noninferiority")
    if not 0 < alpha < 1:
        raise HelloraError(f"contrast alpha: must lie strictly between 0 and 1, got {alpha!r}")
    a, b = _runs_by_seed(runs_a, "contrast, arm a"), _runs_by_seed(runs_b, "contrast, arm b")
    mean_a, mean_b = base_means(a), base_means(b)
    bases = _sorted_bases(set(a) & set(b))
    if not bases:
        raise HelloraError("contrast: the two arms share no base")
    d = np.array([mean_a[base] - mean_b[base] for base in bases])
    n = len(d)
    diff = float(d.mean())
    std = float(d.std(ddof=1)) if n >= 2 else None
    shifted = diff + float(margin)
    if contrast is ContrastKind.SUPERIORITY:
        p = sign_flip_p(d.tolist(), Alternative.TWO_SIDED, seed=seed)
    else:
        p = sign_flip_p((d + float(margin)).tolist(), Alternative.GREATER, seed=seed)
    p_t = None
    if std is not None and std > 0:
        t = shifted / (std / math.sqrt(n))
        p_t = t_two_sided_p(t, n - 1) if contrast is ContrastKind.SUPERIORITY else t_sf(t, n - 1)
    return {"n_bases": n, "diff": diff, "std": std, "df": n - 1,
            "ci95": _t_interval(diff, std, n) if n >= 3 and std is not None else None,
            "p": p, "p_t": p_t,
            "boot_ci95": hierarchical_bootstrap_ci(a, b, resamples=resamples, seed=seed),
            "per_base": {str(base): float(v) for base, v in zip(bases, d)},
            "kind": contrast.value, "margin": float(margin), "alpha": alpha,
            "unmatched_bases": [str(base) for base in _sorted_bases(set(a) ^ set(b))]}


def _holm_verdicts(contrasts: Sequence[dict], alpha: float, family: str) -> list[dict]:
    if not 0 < alpha < 1:
        raise HelloraError(f"{family} verdicts: alpha must lie strictly between 0 and 1, got {alpha!r}")
    for i, c in enumerate(contrasts):
        if not isinstance(c, Mapping) or not {"p", "diff", "kind"} <= set(c):
            raise HelloraError(f"{family} contrast {i}: expected a base_contrast result with p, diff and kind")
    adjusted = holm([c["p"] for c in contrasts])
    out = []
    for c, p_holm in zip(contrasts, adjusted):
        significant = p_holm < alpha
        if ContrastKind.parse(c["kind"], f"{family} contrast kind") is ContrastKind.NONINFERIORITY:
            verdict = "holds" if significant else "not shown"
        elif significant and c["diff"] > 0:
            verdict = "holds"
        elif significant and c["diff"] < 0:
            verdict = "reversed"
        else:
            verdict = "not shown"
        out.append({**c, "p_holm": p_holm, "verdict": verdict, "family": family})
    return out


def primary_verdicts(contrasts: Sequence[dict], alpha: float = 0.05) -> list[dict]:
    """The pre-registered primaries (at most 3), Holm-adjusted over exactly these; each gets p_holm and a verdict.

    superiority: "holds" (p_holm < alpha, diff > 0), "reversed" (p_holm < alpha, diff < 0), else "not shown";
    noninferiority: "holds" when p_holm < alpha, else "not shown" (which is not evidence of inferiority).
    """
    if len(contrasts) > MAX_PRIMARY_CONTRASTS:
        raise HelloraError(f"primary contrasts: at most {MAX_PRIMARY_CONTRASTS} may be pre-registered, got "
                           f"{len(contrasts)}; report the others as secondary")
    return _holm_verdicts(contrasts, alpha, "primary")


def secondary_verdicts(contrasts: Sequence[dict], alpha: float = 0.05) -> list[dict]:
    """Every other contrast: Holm over the secondary family, verdicts as for primaries but labelled descriptive."""
    return [{**c, "descriptive": True} for c in _holm_verdicts(contrasts, alpha, "secondary")]


def minimum_detectable_effect(n_bases: int, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided t-test over n_bases bases detects with `power`.

    (t_{1-alpha/2, df} + t_{power, df}) * sd / sqrt(n), df = n - 1: the usual noncentral-t approximation, where sd
    is the between-base standard deviation of the per-base differences.
    """
    if isinstance(n_bases, bool) or not isinstance(n_bases, int) or n_bases < 2:
        raise HelloraError(f"n_bases: the minimum detectable effect needs an integer >= 2, got {n_bases!r}")
    if isinstance(sd, bool) or not isinstance(sd, (int, float)) or not math.isfinite(sd) or sd < 0:
        raise HelloraError(f"sd: must be a finite number >= 0, got {sd!r}")
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise HelloraError(f"{name}: must lie strictly between 0 and 1, got {value!r}")
    df = n_bases - 1
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * sd / math.sqrt(n_bases)


def design_sensitivity(n_bases: int, sd: float, alpha: float = 0.05, power: float = 0.8) -> dict:
    """What a design over n_bases can show: {n_bases, df, sd, alpha, power, mde, min_sign_flip_p, can_reject}
    (can_reject is False when even a unanimous sign across bases cannot reach p < alpha two-sided)."""
    min_p = min_sign_flip_p(n_bases)
    return {"n_bases": n_bases, "df": n_bases - 1, "sd": sd, "alpha": alpha, "power": power,
            "mde": minimum_detectable_effect(n_bases, sd, alpha, power), "min_sign_flip_p": min_p,
            "can_reject": min_p < alpha}
