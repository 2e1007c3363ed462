"""hellora.report.stats against values worked out by hand (and scipy where it is installed)."""

import math

import pytest

from hellora.report.stats import (describe, holm, pair_up, paired_bootstrap_ci, paired_test, signed_ranks,
                                  t_quantile_975, wilcoxon_signed_rank)
from hellora.utils.errors import HelloraError


def test_describe_by_hand():
    d = describe([1, 2, 3, 4])
    std = math.sqrt(5 / 3)  # squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3
    half = 3.1824463 * std / 2  # t(0.975, df=3) = 3.1824463, sqrt(n) = 2
    assert d["n"] == 4 and d["mean"] == 2.5 and d["std"] == pytest.approx(std)
    assert d["ci95"] == pytest.approx([2.5 - half, 2.5 + half])
    assert describe([7.0]) == {"n": 1, "mean": 7.0, "std": 0.0, "ci95": None}
    assert describe([])["n"] == 0


def test_t_quantile_975_matches_printed_tables():
    assert t_quantile_975(1) == pytest.approx(12.7062, abs=1e-4)   # printed tables: 12.706
    assert t_quantile_975(9) == pytest.approx(2.2622, abs=1e-4)    # 2.262
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=2e-4)   # printed tables: 2.021
    assert t_quantile_975(100) == pytest.approx(1.9840, abs=2e-4)  # 1.984
    with pytest.raises(HelloraError):
        t_quantile_975(0)


def test_signed_ranks_average_ties_and_drop_zeros():
    ranks, signs = signed_ranks([0, 1, -1, 1, 2])
    assert list(ranks) == [2, 2, 2, 4] and list(signs) == [1, -1, 1, 1]


@pytest.mark.parametrize("d, w_plus, p", [
    ([1, 2, 3, 4, 5], 15, 2 / 32),          # all 5 positive: P(W+ >= 15) = 1/32, two-sided
    ([0, 1, 2, 3, 4, 5], 15, 2 / 32),       # a zero difference is dropped
    ([1, -2, 3, 4, 5, 6], 19, 6 / 64),      # P(W- <= 2) = |{}, {1}, {2}| / 64
    ([-1, -2, -3, -4, -5], 0, 2 / 32),
    ([1, 1, -1, 2], 8, 0.5),                # ranks 2, 2, 2, 4: P(W+ >= 8) = 4/16 counted by hand
])
def test_wilcoxon_exact_by_hand(d, w_plus, p):
    w = wilcoxon_signed_rank(d)
    assert w["method"] == "exact" and w["w_plus"] == w_plus and w["p"] == pytest.approx(p)


def test_wilcoxon_all_zero_and_large_n():
    assert wilcoxon_signed_rank([0, 0, 0])["p"] == 1.0
    big = wilcoxon_signed_rank([i * (-1) ** i for i in range(1, 41)])  # alternating signs: no effect
    assert big["method"] == "normal" and big["p"] > 0.5
    assert wilcoxon_signed_rank(list(range(1, 41)))["p"] < 1e-6


def test_wilcoxon_matches_scipy_without_ties():
    stats = pytest.importorskip("scipy.stats")
    for d in ([0.5, -1.25, 2, 3.5, -0.1, 4, 6, 7.5, -3, 9], [1, 2, 3, 4, 5, 6, -7, 8]):
        assert wilcoxon_signed_rank(d)["p"] == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)


def test_paired_bootstrap_ci():
    assert paired_bootstrap_ci([2, 2, 2]) == [2, 2]
    lo, hi = paired_bootstrap_ci([1, 2, 3, 4, 10])
    assert 1 <= lo < 4 < hi <= 10
    assert paired_bootstrap_ci([1, 2, 3], seed=3) == paired_bootstrap_ci([1, 2, 3], seed=3)


def test_paired_test_verdicts():
    a = [10, 11, 12, 13, 14, 15, 16, 17]
    b = [x - i for i, x in enumerate(a, start=1)]  # a - b = 1..8
    up = paired_test(a, b)
    assert up["diff"] == 4.5 and up["p"] == pytest.approx(2 / 256) and up["verdict"] == "holds"
    assert paired_test(b, a)["verdict"] == "reversed"
    mixed = paired_test([1, 2, 3, 4], [2, 1, 4, 3])
    assert mixed["diff"] == 0 and mixed["verdict"] == "not significant"
    few = paired_test([2, 3, 4], [1, 2, 3])  # every pair +1, but n=3 cannot reach p < 0.05 (min p = 2/8)
    assert few["p"] == pytest.approx(0.25) and few["verdict"] == "not significant"
    assert paired_test(a, b, strict=False)["relation"] == ">="
    with pytest.raises(HelloraError, match="pairs must match"):
        paired_test([1, 2], [1])


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_pair_up_uses_common_keys_only():
    keys, x, y = pair_up({(0, 1): 1.0, (0, 2): 2.0, (1, 1): 3.0}, {(0, 2): 5.0, (1, 1): 6.0})
    assert keys == [(0, 2), (1, 1)] and x == [2.0, 3.0] and y == [5.0, 6.0]
