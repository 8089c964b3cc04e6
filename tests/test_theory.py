"""Proposition 3.2: closed form on hand-computed cases, the model's derived noises, the OLS excess-risk
identity, the simulator against the formula, and the CLI's JSON line."""

import json
import math

import numpy as np
import pytest

from wav.theory.prop32 import (
    LinearGaussianModel,
    Prop32Config,
    closed_form,
    excess_risk,
    factors,
    ols_expected_excess_risk,
    ols_fit,
    sample_action_block,
    sample_transitions,
    simulate_point,
)


def test_closed_form_hand_computed():
    # (8 + 2) / (2 * 2) = 2.5; (1 / (1 * 0.5))^2 = 4; (30 - 4 - 1) / (30 - 10 - 1) = 25 / 19
    assert factors(8, 2, 2, 1.0, 0.5, 1.0, 30) == pytest.approx((2.5, 4.0, 25 / 19))
    assert closed_form(8, 2, 2, 1.0, 0.5, 1.0, 30) == pytest.approx(250 / 19)
    # every factor 1: d_s + d_a = 2 d_z, sigma_s = lambda sigma_a
    assert closed_form(4, 2, 3, 2.0, 1.0, 2.0, 20) == pytest.approx(1.0)
    # lambda enters squared in the denominator
    assert closed_form(8, 2, 2, 1.0, 0.5, 2.0, 30) == pytest.approx(250 / 19 / 4)
    # the ratio of the two OLS risks is the formula
    m = LinearGaussianModel(16, 2, 4, 2.0, 0.25, 1.0)
    assert m.forward_error(50) / m.inverse_error(50) == pytest.approx(m.closed_form(50))
    assert ols_expected_excess_risk(2.0, 3, 13) == pytest.approx(2.0 * 3 / 9)


def test_closed_form_rejects_n_at_threshold():
    with pytest.raises(ValueError):
        closed_form(8, 2, 2, 1.0, 0.5, 1.0, 11)  # n = d_s + d_a + 1
    with pytest.raises(ValueError):
        closed_form(4, 1, 4, 1.0, 0.5, 1.0, 9)  # n = 2 d_z + 1


def test_model_rejects_infeasible_noise():
    # the z block alone needs tau^2 = lam^2 sigma_a^2 / (1 - sigma_a^2) = 1/3 > d_s sigma_s^2 / d_z = 0.25
    with pytest.raises(ValueError, match="infeasible"):
        LinearGaussianModel(4, 1, 4, 0.5, 0.5, 1.0)
    with pytest.raises(ValueError):
        LinearGaussianModel(4, 3, 2, 1.0, 0.5, 1.0)  # d_a > d_z


def test_model_noise_levels_are_the_propositions(rng):
    """One large data set: residual variance of a on (z, z') is sigma_a^2, of s' on (s, a) is sigma_s^2 on
    average, the fitted weights are the model's G and F, and the (z, z', a) block has the same law alone."""
    m = LinearGaussianModel(6, 2, 3, 1.5, 0.4, 1.3)
    P = m.sample_parameters(rng)
    n = 200_000
    buf = sample_transitions(m, P, 1, n, rng)[0]  # (n, [s | a | s'])
    s, a, sn = buf[:, :6], buf[:, 6:8], buf[:, 8:]
    X_i = np.concatenate([s[:, :3], sn[:, :3]], 1)
    G_hat = np.linalg.lstsq(X_i, a, rcond=None)[0]  # (2 d_z, d_a)
    assert np.abs(G_hat - P.G.T).max() < 0.01
    assert np.var(a - X_i @ P.G.T, axis=0) == pytest.approx([0.4**2] * 2, rel=0.02)
    resid = sn - np.concatenate([s, a], 1) @ P.F.T
    assert np.var(resid, axis=0).mean() == pytest.approx(1.5**2, rel=0.02)
    assert np.cov(X_i.T) == pytest.approx(P.sigma_i, abs=0.03)
    blk = sample_action_block(m, P, 1, n, rng)[0]  # (n, [z | z' | a])
    assert np.cov(blk.T) == pytest.approx(np.cov(np.concatenate([X_i, a], 1).T), abs=0.04)


def test_ols_fit_matches_lstsq(rng):
    XY = rng.standard_normal((3, 20, 7))
    W = ols_fit(XY, 4)  # (3, 4, 3)
    for r in range(3):
        ref = np.linalg.lstsq(XY[r, :, :4], XY[r, :, 4:], rcond=None)[0]
        assert W[r] == pytest.approx(ref)


def test_ols_excess_risk_identity(rng):
    """E ||W_hat - W||^2_cov = sigma^2 p / (n - p - 1) per output, for a non-identity Gaussian design."""
    R, n, p, q, sigma = 20_000, 13, 3, 2, 1.7
    L = np.array([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.2, 2.0]])
    cov = L @ L.T
    W = rng.standard_normal((p, q))
    X = rng.standard_normal((R, n, p)) @ L.T  # rows ~ N(0, cov)
    Y = X @ W + sigma * rng.standard_normal((R, n, q))
    e = excess_risk(ols_fit(np.concatenate([X, Y], -1), p), W, cov) / q
    se = e.std() / math.sqrt(R)
    expected = ols_expected_excess_risk(sigma**2, p, n)
    assert abs(e.mean() - expected) < max(4 * se, 0.03 * expected)


@pytest.mark.parametrize("model,n", [(LinearGaussianModel(8, 2, 2, 1.0, 0.5, 1.0), 40),
                                     (LinearGaussianModel(12, 4, 6, 2.0, 0.25, 1.0), 60)])
def test_simulator_agrees_with_formula(model, n):
    r = simulate_point(model, n, np.random.default_rng(1), rse=0.006)
    assert r.targeted
    assert r.rel_error <= 0.03
    assert abs(r.ratio - r.formula) < 4 * r.ratio_se
    assert r.forward == pytest.approx(model.forward_error(n), rel=0.03)
    assert r.inverse == pytest.approx(model.inverse_error(n), rel=0.03)


def test_default_grid_covers_thresholds():
    grid = Prop32Config().grid
    assert len(grid) >= 100
    gaps = {n - max(m.p_forward, m.p_inverse) for m, n in grid}
    assert min(gaps) == 2 and any(n >= 10 * m.p_forward for m, n in grid)
    assert any(n < m.d_s + m.d_a + 10 for m, n in grid) and any(n >= m.d_s + m.d_a + 10 for m, n in grid)


def test_cli_json_line(tmp_path, capsys):
    from wav.cli import main

    rc = main(["theory", "prop32", "--preset", "debug", "--json", "--out", str(tmp_path)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    obj = json.loads(last)
    assert set(obj) == {"points", "max_rel_error"}
    assert obj["points"] == 4 and 0 <= obj["max_rel_error"] <= 0.03
    assert rc == 0
    assert (tmp_path / "prop32.png").stat().st_size > 0
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 6


def test_learned_debug_run(tmp_path, capsys):
    """The learned-model sweep end to end at debug scale: the JSON line, records and figure."""
    from wav.cli import main

    assert main(["theory", "learned", "--preset", "debug", "--json", "--out", str(tmp_path)]) == 0
    obj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(obj) == {"dimensionality", "stochasticity"}
    for sweep in obj.values():
        assert len(sweep["x"]) == len(sweep["ratio"]) == len(sweep["formula"]) == 2
        assert all(r > 0 and math.isfinite(r) for r in sweep["ratio"])
    assert obj["stochasticity"]["formula"][1] == pytest.approx(4 * obj["stochasticity"]["formula"][0], rel=1e-3)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 4 and (tmp_path / "learned.png").stat().st_size > 0
