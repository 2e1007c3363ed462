"""Student's t distribution without scipy: CDF, tail p-values and quantiles for any probability.

The base-level statistics (`hellora.report.stats`) need t quantiles at probabilities other than 0.975 (power,
one-sided tests) and t p-values; these are the few numerics they rest on, written from the textbook definitions:

    regularized_incomplete_beta(x, a, b)   I_x(a, b) by its continued fraction (modified Lentz), using the
                                            symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly
    t_cdf(t, df)                           P(T <= t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t >= 0
    t_two_sided_p(t, df)                   P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2), computed as the tail itself
                                            (no 1 - CDF cancellation for large |t|)
    t_quantile(p, df)                      the t with P(T <= t) = p, by bisection on t_cdf (to ~1e-12)

`df` may be any positive real; the study only uses whole numbers (bases - 1).
"""

from __future__ import annotations

import math

from hellora.utils.errors import HelloraError

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 10000


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b) * a * B(a, b) / (x^a (1-x)^b), evaluated by modified Lentz."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    value = d
    for m in range(1, _MAX_TERMS + 1):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),            # even step d_{2m}
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # odd step d_{2m+1}
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            value *= c * d
        if abs(c * d - 1.0) < _EPS:
            return value
    raise HelloraError(f"incomplete beta: no convergence at x={x}, a={a}, b={b}")


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b) for 0 <= x <= 1 and a, b > 0."""
    if not (a > 0 and b > 0):
        raise HelloraError(f"incomplete beta: a and b must be positive, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise HelloraError(f"incomplete beta: x must lie in [0, 1], got {x}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast here
        return math.exp(log_front) * _beta_continued_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(1.0 - x, b, a) / b


def _check_df(df: float) -> float:
    if isinstance(df, bool) or not isinstance(df, (int, float)) or not math.isfinite(df) or df <= 0:
        raise HelloraError(f"t distribution: degrees of freedom must be a positive number, got {df!r}")
    return float(df)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    df = _check_df(df)
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = t_two_sided_p(t, df) / 2.0  # P(T >= |t|)
    return 1.0 - tail if t >= 0 else tail


def t_sf(t: float, df: float) -> float:
    """P(T >= t), the one-sided upper tail (kept accurate for large t)."""
    tail = t_two_sided_p(t, df) / 2.0
    return tail if t >= 0 else 1.0 - tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, for 0 < p < 1: bisection on `t_cdf` (monotone), bracket doubled until it holds p."""
    df = _check_df(df)
    if not 0.0 < p < 1.0:
        raise HelloraError(f"t quantile: probability must lie strictly between 0 and 1, got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0
