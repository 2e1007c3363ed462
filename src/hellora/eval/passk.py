"""The unbiased pass@k estimator (Chen et al., 2021, "Evaluating Large Language Models Trained on Code").

Why not just "did any of the first k samples pass": that estimate has high variance and depends on sample
order. With n samples of which c pass, the probability that a random size-k subset contains at least one
pass is 1 - C(n-c, k) / C(n, k). The binomials overflow floats for large n, so we use the equivalent product
    C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i),
which stays in [0, 1] at every step. pass@k of a benchmark is the mean over problems.

A problem with fewer than k samples has no pass@k (the estimator is undefined); as in OpenAI's human-eval,
the benchmark-level pass@k is then not reported at all rather than averaged over a different subset of
problems, which would make numbers for different k incomparable.
"""

from __future__ import annotations

from typing import Iterable, Mapping

__all__ = ["pass_at_k", "pass_at_k_per_problem", "mean_pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples passes) from n samples with c passes."""
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"pass@k: {name} must be an integer, got {value!r}")
    n, c, k = int(n), int(c), int(k)
    if n < 1 or k < 1:
        raise ValueError(f"pass@k needs n >= 1 and k >= 1, got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got c={c}, n={n}")
    if k > n:
        raise ValueError(f"pass@{k} is undefined with only n={n} samples")
    if n - c < k:  # every size-k subset contains a pass
        return 1.0
    fail_all = 1.0
    for i in range(n - c + 1, n + 1):
        fail_all *= 1.0 - k / i
    return 1.0 - fail_all


def pass_at_k_per_problem(
    counts: Mapping[str, tuple[int, int]], ks: Iterable[int]
) -> dict[str, dict[str, float | None]]:
    """{problem: {"pass@k": value or None when that problem has fewer than k samples}} from {problem: (n, c)}."""
    ks = _check_ks(ks)
    return {
        pid: {f"pass@{k}": (pass_at_k(n, c, k) if k <= n else None) for k in ks} for pid, (n, c) in counts.items()
    }


def mean_pass_at_k(counts: Mapping[str, tuple[int, int]], ks: Iterable[int]) -> dict[str, float]:
    """{"pass@k": mean over problems} for every k that all problems have at least k samples for.

    A k that some problem cannot support is left out (see the module docstring); the caller can tell which
    by comparing keys with the ks it asked for.
    """
    ks = _check_ks(ks)
    if not counts:
        return {}
    out = {}
    for k in ks:
        if all(n >= k for n, _ in counts.values()):
            out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
    return out


def _check_ks(ks: Iterable[int]) -> list[int]:
    out = []
    for k in ks:
        if isinstance(k, bool) or int(k) != k or int(k) < 1:
            raise ValueError(f"pass@k: every k must be a positive integer, got {k!r}")
        if int(k) not in out:
            out.append(int(k))
    if not out:
        raise ValueError("pass@k: no k given")
    return out
