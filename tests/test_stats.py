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
    # two seeds that both lose 8 of 20 episodes: equal differences up to float rounding are no evidence
    rounded = paired_difference([9 / 20, 12 / 20], [17 / 20, 20 / 20])
    assert rounded["mean"] == pytest.approx(-0.4) and np.isnan(rounded["p_ttest"])


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    with pytest.raises(ValueError):
        parse_seeds("3-1")


def test_sample_efficiency_on_hand_computed_curves():
    from wav.experiments.common import sample_efficiency

    curves = {"random": {"acquired": [0, 50, 100], "pred_error": [6.0, 5.5, 5.0]},
              "wav": {"acquired": [0, 50, 100], "pred_error": [6.0, 4.5, 4.0]}}
    eff = sample_efficiency(curves)
    assert eff["target_error"] == 5.0 and eff["labels_needed"] == 50 and eff["ratio"] == 2.0  # first point counts whole
    curves["wav"]["pred_error"] = [6.0, 5.5, 4.5]  # crosses 5.0 halfway between 50 and 100
    assert sample_efficiency(curves)["labels_needed"] == 75
    curves["wav"]["pred_error"] = [6.0, 5.8, 5.6]
    assert sample_efficiency(curves)["labels_needed"] is None
    assert sample_efficiency({"wav": curves["wav"]}) == {}
    # the reference gets worse with labels (online: 6.0 -> 18.0): no ratio, whatever wav does
    curves["random"]["pred_error"] = [6.0, 12.0, 18.0]
    eff = sample_efficiency(curves)
    assert eff["labels_needed"] is None and eff["ratio"] is None and "did not fall" in eff["reason"]


def test_interval_is_clipped_to_the_metric_range_and_says_so():
    from wav.stats import mean_ci, metric_ci

    vals = [0.1, 4.0]  # two seeds: the t interval of a non-negative error reaches far below 0
    m, lo, hi = mean_ci(vals)
    assert lo < 0
    assert mean_ci(vals, bounds=(0.0, float("inf"))) == (m, 0.0, hi)
    assert metric_ci(vals, "pred_error") == (m, [0.0, hi], True)
    assert metric_ci(vals, "test_excl/pred_error")[1][0] == 0.0  # a prefixed name uses its last part
    assert metric_ci([0.5, 0.6, 0.55], "spearman")[2] is False
    assert metric_ci([0.9, 0.99], "kendall")[1][1] == 1.0
    assert metric_ci(vals, "seconds")[1][0] == lo  # an unknown metric is unbounded


def test_random_effects_pooling_hand_computed():
    from wav.stats import pool_random_effects, se_from_t_interval

    # two studies 0 and 2, both se 1: Q = 2 on 1 df, C = 1, tau^2 = 1, weights 1/2 each -> mean 1; Hartung-Knapp
    # factor sum w (y - mean)^2 / 1 = 1, so se = sqrt(1 / sum w) = 1, t on 1 df: p = 0.5, half-width 12.706
    out = pool_random_effects([0.0, 2.0], [1.0, 1.0])
    assert out["mean"] == pytest.approx(1.0) and out["se"] == pytest.approx(1.0) and out["tau2"] == pytest.approx(1.0)
    assert out["ci"] == pytest.approx([1 - 12.706205, 1 + 12.706205], rel=1e-6)
    assert out["p"] == pytest.approx(0.5) and out["i2"] == pytest.approx(0.5) and out["k"] == 2
    # agreeing studies: no heterogeneity, the factor floored at 1: se = 0.5 / sqrt(3), t = 3.4641 on 2 df
    out = pool_random_effects([1.0, 1.0, 1.0], [0.5, 0.5, 0.5])
    assert out["tau2"] == 0.0 and out["i2"] == 0.0 and out["se"] == pytest.approx(0.5 / np.sqrt(3))
    assert out["p"] == pytest.approx(0.0741799, rel=1e-5)
    # unequal precision pulls the mean toward the precise study (tau^2 = 0 here: Q = 0.8 < 1 df)
    assert pool_random_effects([0.0, 1.0], [0.5, 1.0])["mean"] == pytest.approx(0.2)
    # a t interval of n = 3 values with sd 1: half-width t_{0.975,2} / sqrt(3), so the se is 1 / sqrt(3)
    assert se_from_t_interval([2.0 - 4.302653 / np.sqrt(3), 2.0 + 4.302653 / np.sqrt(3)], 3) == pytest.approx(1 / np.sqrt(3), rel=1e-6)
    with pytest.raises(ValueError, match="positive"):
        pool_random_effects([1.0], [0.0])
    with pytest.raises(ValueError, match="same length"):
        pool_random_effects([1.0, 2.0], [1.0])
