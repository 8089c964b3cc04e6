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
