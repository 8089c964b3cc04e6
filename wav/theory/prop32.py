"""Proposition 3.2 checked by Monte Carlo: in a linear-Gaussian world, forward / inverse error ratio =
dimensionality x stochasticity x sample size. The model is stated exactly in docs/theory.md.

Shapes: R Monte-Carlo repetitions, n transitions per data set, p regression inputs, q regression outputs.
Weights are stored in row convention, y = x @ W with W (p, q).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------------------
# Closed form


def ols_expected_excess_risk(noise_var: float, p: int, n: int) -> float:
    """E[excess risk] of least squares (no intercept) with n i.i.d. Gaussian input rows in R^p, per output
    of noise variance `noise_var`: sigma^2 p / (n - p - 1), exact for n > p + 1 and any input covariance."""
    if n <= p + 1:
        raise ValueError(f"OLS excess risk is infinite or undefined for n={n} <= p+1={p + 1}")
    return noise_var * p / (n - p - 1)


def factors(d_s: int, d_a: int, d_z: int, sigma_s: float, sigma_a: float, lam: float, n: int) -> tuple[float, float, float]:
    """The three factors of Proposition 3.2: (dimensionality, stochasticity, sample size)."""
    p_f, p_i = d_s + d_a, 2 * d_z
    if n <= max(p_f, p_i) + 1:
        raise ValueError(f"n={n} must exceed max(d_s+d_a, 2 d_z) + 1 = {max(p_f, p_i) + 1}")
    return p_f / p_i, (sigma_s / (lam * sigma_a)) ** 2, (n - p_i - 1) / (n - p_f - 1)


def closed_form(d_s: int, d_a: int, d_z: int, sigma_s: float, sigma_a: float, lam: float, n: int) -> float:
    """Forward / inverse expected error ratio of Proposition 3.2 (product of the three factors)."""
    dim, stoch, size = factors(d_s, d_a, d_z, sigma_s, sigma_a, lam, n)
    return dim * stoch * size


# --------------------------------------------------------------------------------------------------
# The generative model


@dataclass(frozen=True)
class LinearGaussianModel:
    """Linear-Gaussian world with an action-relevant block z (first d_z state coordinates) and d_s - d_z
    distractors u. See docs/theory.md for the equations; `sigma_s`, `sigma_a`, `lam` are the quantities
    of Proposition 3.2 and the block noises are derived from them."""

    d_s: int
    """state dimension (outputs of the forward model)"""
    d_a: int
    """action dimension (outputs of the inverse model); d_a <= d_z"""
    d_z: int
    """dimension of the action-relevant block z read by the sparse inverse model; d_z <= d_s"""
    sigma_s: float
    """forward noise: root of the mean per-coordinate variance of s' given (s, a)"""
    sigma_a: float
    """inverse noise: standard deviation of each action coordinate given (z, z')"""
    lam: float
    """action gain: z' moves by lam * B a with B orthonormal columns, so |d z'| = lam |d a|"""
    rho: float = 1.0
    """standard deviation of each action coordinate (actions are N(0, rho^2 I)); needs sigma_a < rho"""

    def __post_init__(self):
        if not (1 <= self.d_a <= self.d_z <= self.d_s):
            raise ValueError(f"need 1 <= d_a <= d_z <= d_s, got d_a={self.d_a}, d_z={self.d_z}, d_s={self.d_s}")
        if min(self.sigma_s, self.sigma_a, self.lam, self.rho) <= 0:
            raise ValueError("sigma_s, sigma_a, lam and rho must be positive")
        if self.sigma_a >= self.rho:
            raise ValueError(f"sigma_a={self.sigma_a} must be below the action prior std rho={self.rho}")
        if self.sigma_u2 < -1e-12 or (self.d_s == self.d_z and abs(self.sigma_u2) > 1e-12):
            raise ValueError(
                f"infeasible: the z block alone needs noise variance tau^2={self.tau2:.4g} per coordinate, which exceeds "
                f"the forward budget d_s sigma_s^2 = {self.d_s * self.sigma_s ** 2:.4g} over d_z={self.d_z} coordinates "
                f"(need (sigma_s / (lam sigma_a))^2 >= (d_z / d_s) / (1 - sigma_a^2 / rho^2))"
            )

    @property
    def d_u(self) -> int:
        return self.d_s - self.d_z

    @property
    def p_forward(self) -> int:
        return self.d_s + self.d_a

    @property
    def p_inverse(self) -> int:
        return 2 * self.d_z

    @property
    def tau2(self) -> float:
        """Noise variance of each z' coordinate, chosen so that Var(a_k | z, z') = sigma_a^2 exactly."""
        return self.lam**2 * self.sigma_a**2 * self.rho**2 / (self.rho**2 - self.sigma_a**2)

    @property
    def sigma_u2(self) -> float:
        """Noise variance of each distractor coordinate u', chosen so the mean over all d_s is sigma_s^2."""
        if self.d_u == 0:
            return self.sigma_s**2 - self.tau2
        return (self.d_s * self.sigma_s**2 - self.d_z * self.tau2) / self.d_u

    def factors(self, n: int) -> tuple[float, float, float]:
        return factors(self.d_s, self.d_a, self.d_z, self.sigma_s, self.sigma_a, self.lam, n)

    def closed_form(self, n: int) -> float:
        return closed_form(self.d_s, self.d_a, self.d_z, self.sigma_s, self.sigma_a, self.lam, n)

    def forward_error(self, n: int) -> float:
        """Closed-form expected forward error: excess risk per state coordinate."""
        return ols_expected_excess_risk(self.sigma_s**2, self.p_forward, n)

    def inverse_error(self, n: int) -> float:
        """Closed-form expected inverse error: excess risk per action coordinate, times lam^2 (state units)."""
        return self.lam**2 * ols_expected_excess_risk(self.sigma_a**2, self.p_inverse, n)

    def sample_parameters(self, rng: np.random.Generator) -> "TrueParameters":
        """Draw the dynamics matrices. OLS errors do not depend on them; they make the simulator honest."""
        d_s, d_a, d_z, d_u = self.d_s, self.d_a, self.d_z, self.d_u
        q, _ = np.linalg.qr(rng.standard_normal((d_z, d_z)))
        A_z = 0.9 * q  # (d_z, d_z): z' = A_z z + lam B a + eta; stable, no back-action from u
        B, _ = np.linalg.qr(rng.standard_normal((d_z, d_a)))  # (d_z, d_a), B^T B = I
        # distractors read the whole state but not the action, so (z, z') is sufficient for a:
        # E[a | s, s'] = E[a | z, z'], and a sparse inverse model that keeps only z loses nothing
        A_u = rng.standard_normal((d_u, d_s)) / math.sqrt(d_s)
        # forward weights F (d_s, d_s + d_a): s' = F [s; a] + eps
        F = np.zeros((d_s, d_s + d_a))
        F[:d_z, :d_z] = A_z
        F[:d_z, d_s:] = self.lam * B
        F[d_z:, :d_s] = A_u
        sigma_f = np.diag(np.r_[np.ones(d_s), np.full(d_a, self.rho**2)])  # Cov([s; a])
        # inverse weights G (d_a, 2 d_z): E[a | z, z'] = (sigma_a^2 lam / tau^2) B^T (z' - A_z z)
        G = (self.sigma_a**2 * self.lam / self.tau2) * B.T @ np.hstack([-A_z, np.eye(d_z)])
        cov_zz = A_z @ A_z.T + self.lam**2 * self.rho**2 * B @ B.T + self.tau2 * np.eye(d_z)
        sigma_i = np.block([[np.eye(d_z), A_z.T], [A_z, cov_zz]])  # Cov([z; z'])
        return TrueParameters(A_z=A_z, B=B, A_u=A_u, F=F, G=G, sigma_f=sigma_f, sigma_i=sigma_i)


@dataclass(frozen=True)
class TrueParameters:
    A_z: np.ndarray
    B: np.ndarray
    A_u: np.ndarray
    F: np.ndarray
    """forward weights (d_s, d_s + d_a)"""
    G: np.ndarray
    """inverse (posterior-mean) weights (d_a, 2 d_z)"""
    sigma_f: np.ndarray
    """covariance of the forward inputs [s; a]"""
    sigma_i: np.ndarray
    """covariance of the inverse inputs [z; z']"""


def sample_transitions(model: LinearGaussianModel, P: TrueParameters, reps: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`reps` independent data sets of n transitions, packed as [s, a, s'] (R, n, d_s + d_a + d_s).

    Packed in one buffer (drawn once, transformed in place) because drawing and copying dominate the cost."""
    d_s, d_a, d_z = model.d_s, model.d_a, model.d_z
    buf = rng.standard_normal((reps, n, 2 * d_s + d_a))  # (R, n, [s | a | eps])
    buf[..., d_s:d_s + d_a] *= model.rho
    noise_sd = np.r_[np.full(d_z, math.sqrt(model.tau2)), np.full(model.d_u, math.sqrt(max(model.sigma_u2, 0.0)))]
    buf[..., d_s + d_a:] *= noise_sd
    buf[..., d_s + d_a:] += buf[..., :d_s + d_a] @ P.F.T  # s' = F [s; a] + eps, (R, n, d_s)
    return buf


def sample_action_block(model: LinearGaussianModel, P: TrueParameters, reps: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """The (z, z', a) marginal of `sample_transitions`, drawn alone, packed as [z, z', a] (R, n, 2 d_z + d_a).

    z' depends on z, a and its own noise only (no back-action from the distractors), so this is the same
    distribution as the z and action columns of `sample_transitions`, at a fraction of the cost."""
    d_z, d_a = model.d_z, model.d_a
    buf = rng.standard_normal((reps, n, 2 * d_z + d_a))  # (R, n, [z | eta | a])
    buf[..., 2 * d_z:] *= model.rho
    buf[..., d_z:2 * d_z] *= math.sqrt(model.tau2)
    buf[..., d_z:2 * d_z] += buf[..., :d_z] @ P.A_z.T + model.lam * buf[..., 2 * d_z:] @ P.B.T  # z' = A_z z + lam B a + eta
    return buf


# --------------------------------------------------------------------------------------------------
# Batched least squares and its excess risk


def ols_fit(XY: np.ndarray, p: int) -> np.ndarray:
    """Least squares without intercept for a batch of problems packed as [X, Y] (R, n, p + q) -> W (R, p, q)."""
    M = np.swapaxes(XY, 1, 2) @ XY  # (R, p + q, p + q): X^T X and X^T Y in one product
    return np.linalg.solve(M[:, :p, :p], M[:, :p, p:])  # (R, p, p) \ (R, p, q)


def excess_risk(W_hat: np.ndarray, W: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """E_x |x @ W_hat - x @ W|^2 over x ~ N(0, cov), summed over outputs: tr(D^T cov D), D = W_hat - W.
    W_hat (R, p, q), W (p, q), cov (p, p) -> (R,)."""
    D = W_hat - W  # (R, p, q)
    return np.einsum("rpq,pk,rkq->r", D, cov, D, optimize=True)


def _design_relvar(p: int, n: int) -> float:
    """Relative variance of tr((X^T X)^-1) for X (n, p) standard Gaussian (inverse-Wishart moments)."""
    # Infinite below n = p + 4 and heavy-tailed just above it: closer to the threshold than p + 10 (outside
    # the accuracy target) more repetitions buy little, so those points get the budget of n = p + 10.
    n = max(n, p + 10)
    return 2 * (n - 1) / (p * (n - p) * (n - p - 3))


def _reps_needed(p: int, d_eff: float, n: int, rse: float, min_reps: int, max_reps: int) -> int:
    """Repetitions for a relative standard error `rse` of a mean excess risk (noise + design variance)."""
    relvar = 2.0 / (p * d_eff) + _design_relvar(p, n)
    return int(min(max_reps, max(min_reps, math.ceil(relvar / rse**2))))


def _chunks(reps: int, n: int, width: int, max_floats: int = 3_000_000):
    per = max(1, max_floats // (n * width))
    done = 0
    while done < reps:
        k = min(per, reps - done)
        yield k
        done += k


def simulate_forward(model: LinearGaussianModel, P: TrueParameters, n: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Per-repetition forward error (R,): excess risk of OLS s' ~ [s, a], per state coordinate."""
    out = []
    for k in _chunks(reps, n, 2 * model.d_s + model.d_a):
        W_hat = ols_fit(sample_transitions(model, P, k, n, rng), model.p_forward)  # (k, d_s + d_a, d_s)
        out.append(excess_risk(W_hat, P.F.T, P.sigma_f) / model.d_s)
    return np.concatenate(out)


def simulate_inverse(model: LinearGaussianModel, P: TrueParameters, n: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Per-repetition inverse error (R,): excess risk of OLS a ~ [z, z'], per action coordinate, times lam^2."""
    out = []
    for k in _chunks(reps, n, 2 * model.d_z + model.d_a):
        W_hat = ols_fit(sample_action_block(model, P, k, n, rng), model.p_inverse)  # (k, 2 d_z, d_a)
        out.append(model.lam**2 * excess_risk(W_hat, P.G.T, P.sigma_i) / model.d_a)
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------------
# The grid


@dataclass(frozen=True)
class Prop32Config:
    """Monte-Carlo check of Proposition 3.2 over a grid of (d_s, d_a, d_z, sigma_s, sigma_a, lambda, n)."""

    seed: int = 0
    """root seed; every grid point gets its own child stream"""
    rse: float = 0.0035
    """target relative standard error of each of the two mean errors (the ratio's is ~1.4x this)"""
    min_reps: int = 200
    """fewest Monte-Carlo repetitions per model and grid point"""
    max_reps: int = 20000
    """most Monte-Carlo repetitions per model and grid point"""
    tolerance: float = 0.03
    """accuracy target: |sim / formula - 1| at every point with n >= d_s + d_a + 10"""
    debug: bool = False
    """a 6-point grid at twice the standard error, for CI smoke runs"""

    @property
    def point_rse(self) -> float:
        return self.rse * (2 if self.debug else 1)

    @property
    def grid(self) -> list[tuple[LinearGaussianModel, int]]:
        return debug_grid() if self.debug else default_grid()


DIMS = ((8, 2, 2), (16, 2, 4), (32, 4, 4), (24, 3, 6), (12, 4, 6), (9, 2, 6))
"""(d_s, d_a, d_z): distractor-heavy to nearly all action-relevant (the last has 2 d_z > d_s + d_a)"""
NOISES = ((1.0, 0.5, 1.0), (2.0, 0.25, 1.0), (1.0, 0.2, 0.5), (1.0, 0.5, 2.0), (0.5, 0.5, 1.0))
"""(sigma_s, sigma_a, lambda): stochasticity factor 4, 64, 100, 1, 1"""


def n_values(model: LinearGaussianModel) -> list[int]:
    """Sample sizes from just above the threshold max(p_f, p_i) + 1 to ten times the input dimension."""
    p = max(model.p_forward, model.p_inverse)
    return sorted({p + 2, p + 4, p + 10, p + 30, 3 * p, 10 * p})


def default_grid() -> list[tuple[LinearGaussianModel, int]]:
    """Every feasible (dims, noise) pair at every n of `n_values`; infeasible noise levels are skipped
    (see LinearGaussianModel: the forward noise must cover the z-block noise)."""
    grid = []
    for d_s, d_a, d_z in DIMS:
        for sigma_s, sigma_a, lam in NOISES:
            try:
                model = LinearGaussianModel(d_s, d_a, d_z, sigma_s, sigma_a, lam)
            except ValueError:
                continue
            grid += [(model, n) for n in n_values(model)]
    return grid


def debug_grid() -> list[tuple[LinearGaussianModel, int]]:
    m = LinearGaussianModel(8, 2, 2, 1.0, 0.5, 1.0)
    m2 = LinearGaussianModel(12, 4, 6, 2.0, 0.25, 1.0)
    return [(m, 12), (m, 30), (m, 100), (m2, 20), (m2, 50), (m2, 160)]


@dataclass
class PointResult:
    d_s: int
    d_a: int
    d_z: int
    sigma_s: float
    sigma_a: float
    lam: float
    n: int
    dimensionality: float
    stochasticity: float
    sample_size: float
    formula: float
    ratio: float
    """simulated forward / inverse ratio of mean errors"""
    ratio_se: float
    rel_error: float
    """|ratio / formula - 1|"""
    forward: float
    forward_se: float
    forward_formula: float
    inverse: float
    inverse_se: float
    inverse_formula: float
    reps_forward: int
    reps_inverse: int
    targeted: bool
    """n >= d_s + d_a + 10: inside the accuracy target"""
    seconds: float = 0.0


def simulate_point(model: LinearGaussianModel, n: int, rng: np.random.Generator, rse: float = 0.0035,
                   min_reps: int = 200, max_reps: int = 20000) -> PointResult:
    """Simulate both regressions at one grid point and compare the ratio of mean errors with the formula."""
    t0 = time.perf_counter()
    rng_params, rng_f, rng_i = rng.spawn(3)
    P = model.sample_parameters(rng_params)
    tau2, su2 = model.tau2, max(model.sigma_u2, 0.0)
    d_eff_f = (model.d_z * tau2 + model.d_u * su2) ** 2 / (model.d_z * tau2**2 + model.d_u * su2**2)
    reps_f = _reps_needed(model.p_forward, d_eff_f, n, rse, min_reps, max_reps)
    reps_i = _reps_needed(model.p_inverse, model.d_a, n, rse, min_reps, max_reps)
    ef = simulate_forward(model, P, n, reps_f, rng_f)
    ei = simulate_inverse(model, P, n, reps_i, rng_i)
    mf, mi = ef.mean(), ei.mean()
    sf, si = ef.std(ddof=1) / math.sqrt(reps_f), ei.std(ddof=1) / math.sqrt(reps_i)
    ratio = mf / mi
    ratio_se = ratio * math.hypot(sf / mf, si / mi)  # delta method; the two samples are independent
    dim, stoch, size = model.factors(n)
    formula = dim * stoch * size
    return PointResult(
        d_s=model.d_s, d_a=model.d_a, d_z=model.d_z, sigma_s=model.sigma_s, sigma_a=model.sigma_a, lam=model.lam, n=n,
        dimensionality=dim, stochasticity=stoch, sample_size=size, formula=formula, ratio=float(ratio),
        ratio_se=float(ratio_se), rel_error=float(abs(ratio / formula - 1)), forward=float(mf), forward_se=float(sf),
        forward_formula=model.forward_error(n), inverse=float(mi), inverse_se=float(si),
        inverse_formula=model.inverse_error(n), reps_forward=reps_f, reps_inverse=reps_i,
        targeted=n >= model.d_s + model.d_a + 10, seconds=time.perf_counter() - t0,
    )


def run(cfg: Prop32Config) -> list[PointResult]:
    """Simulate every grid point with its own child stream of SeedSequence(cfg.seed)."""
    grid = cfg.grid
    rngs = [np.random.Generator(np.random.PCG64(ss)) for ss in np.random.SeedSequence(cfg.seed).spawn(len(grid))]
    return [simulate_point(m, n, g, cfg.point_rse, cfg.min_reps, cfg.max_reps) for (m, n), g in zip(grid, rngs)]


def summarize(results: list[PointResult]) -> dict:
    targeted = [r for r in results if r.targeted]
    worst = max(targeted, key=lambda r: r.rel_error) if targeted else None
    return {
        "points": len(targeted),
        "max_rel_error": worst.rel_error if worst else float("nan"),
        "points_total": len(results),
        "max_rel_error_all": max(r.rel_error for r in results),
        "worst": asdict(worst) if worst else None,
        "max_abs_z": max(abs(r.ratio - r.formula) / r.ratio_se for r in targeted) if targeted else float("nan"),
    }


def write_records(results: list[PointResult], cfg: Prop32Config, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    with open(out / "metrics.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps(asdict(r)) + "\n")


def plot(results: list[PointResult], path: Path) -> Path:
    """Four panels: the simulated ratio divided by the other two factors against each factor (the formula is
    the diagonal), and the simulated ratio against the formula. Reads only PointResult records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.4))
    t = [r for r in results if r.targeted]
    near = [r for r in results if not r.targeted]
    panels = (
        ("dimensionality", "(d_s + d_a) / (2 d_z)", lambda r: r.stochasticity * r.sample_size),
        ("stochasticity", "(sigma_s / (lambda sigma_a))^2", lambda r: r.dimensionality * r.sample_size),
        ("sample_size", "(n - 2 d_z - 1) / (n - d_s - d_a - 1)", lambda r: r.dimensionality * r.stochasticity),
    )
    for ax, (name, label, others) in zip(axes, panels):
        for group, style in ((near, dict(fmt="s", color="C1", mfc="none", alpha=0.6, label="simulation, n < d_s+d_a+10")),
                             (t, dict(fmt="o", color="C0", label="simulation, n >= d_s+d_a+10"))):
            if not group:
                continue
            x = np.array([getattr(r, name) for r in group])
            y = np.array([r.ratio / others(r) for r in group])
            e = np.array([r.ratio_se / others(r) for r in group])
            ax.errorbar(x, y, yerr=1.96 * e, ms=4, lw=0.8, capsize=2, **style)
        xs = np.array([getattr(r, name) for r in results])
        line = np.linspace(xs.min(), xs.max(), 100)
        ax.plot(line, line, "k-", lw=1, label="formula")
        ax.set_xlabel(label)
        ax.set_ylabel("simulated ratio / other two factors")
        if xs.max() / xs.min() > 20:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_title(name.replace("_", " "))
    axes[0].legend(fontsize=7)
    ax = axes[3]
    f = np.array([r.formula for r in results])
    ax.errorbar([r.formula for r in near], [r.ratio for r in near], yerr=[1.96 * r.ratio_se for r in near], fmt="s",
                mfc="none", ms=3, lw=0.8, color="C1", alpha=0.6)
    ax.errorbar([r.formula for r in t], [r.ratio for r in t], yerr=[1.96 * r.ratio_se for r in t], fmt="o", ms=3, lw=0.8,
                color="C0")
    ax.plot([f.min(), f.max()], [f.min(), f.max()], "k-", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("formula: product of the three factors")
    ax.set_ylabel("simulated forward / inverse error")
    ax.set_title("ratio (95% MC intervals)")
    fig.suptitle("Proposition 3.2: forward / inverse excess-risk ratio, Monte Carlo vs closed form")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_table(results: list[PointResult]) -> str:
    """Markdown table, one row per grid point."""
    head = ("| d_s | d_a | d_z | sigma_s | sigma_a | lambda | n | formula | simulated ± se | rel. err | reps f/i | target |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [
        f"| {r.d_s} | {r.d_a} | {r.d_z} | {r.sigma_s:g} | {r.sigma_a:g} | {r.lam:g} | {r.n} | {r.formula:.4g} | "
        f"{r.ratio:.4g} ± {r.ratio_se:.2g} | {100 * r.rel_error:.2f}% | {r.reps_forward}/{r.reps_inverse} | "
        f"{'yes' if r.targeted else 'no'} |"
        for r in results
    ]
    return "\n".join([head, *rows])
