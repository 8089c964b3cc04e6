import numpy as np
import pytest

from wav.stats import mean_ci, paired_difference, parse_seeds


def test_mean_ci_hand_computed():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    # sd = 1, se = 1/sqrt(3), t_{0.975, 2} = 4.302653
    assert m == 2.0 and hi - m == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5) and m - lo == pytest.approx(hi - m)
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)


def test_paired_difference_detects_a_consistent_gap():
    rng = np.random.default_rng(0)
    b = rng.normal(size=10)
    out = paired_difference(b - 1.0 + 0.01 * rng.normal(size=10), b)
    assert out["mean"] == pytest.approx(-1.0, abs=0.02) and out["p_ttest"] < 1e-6 and out["n"] == 10
    same = paired_difference(b, b)
    assert same["mean"] == 0 and np.isnan(same["p_ttest"])


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(ValueError):
        parse_seeds("3-1")
