"""Downstream planning (wav.planning, wav.experiments.robot_downstream, `wav reproduce robot-downstream`): the
discriminator, gradient penalty, lambda-returns and MPPI on hand cases; the RSSM's filtering and imagined features
against its batch methods; the planning actor and the whole experiment on a toy env (no simulator). The pool-file
tests need h5py (the robot venv has it)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from wav.models.rssm import RSSM, preset
from wav.planning import CriticConfig, CriticEnsemble, Discriminator, Planner, PlannerConfig, RewardConfig, mppi
from wav.planning.critic import fit_critic, lambda_returns
from wav.planning.reward import SuccessReward, discriminator_loss, fit_discriminator, fit_success_reward, gradient_penalty, separation, success_targets
from wav.types import SequenceBatch

D, A = 8, 7
LAYOUT = {"names": ["tcp_pose", "qpos"], "sizes": [7, 1], "groups": ["ee", "robot"]}


def small_rssm(seed: int = 0) -> RSSM:
    torch.manual_seed(seed)
    return RSSM(preset("debug", state_dim=D, action_dim=A)).eval()


# ----- reward model ------------------------------------------------------------------------------------------


def test_gradient_penalty_of_a_linear_discriminator_is_hand_computed():
    w = torch.tensor([3.0, 4.0])  # |grad D| = 5 everywhere

    def disc(x):
        return x @ w

    e, le = torch.randn(16, 2), torch.randn(16, 2)
    assert float(gradient_penalty(disc, e, le, 0.4)) == pytest.approx((5 - 0.4) ** 2)
    cfg = RewardConfig(gp_weight=10.0, gp_target=0.4)
    want = float((le @ w).mean() - (e @ w).mean()) + 10 * (5 - 0.4) ** 2
    assert float(discriminator_loss(disc, e, le, cfg)) == pytest.approx(want, rel=1e-5)


def test_discriminator_starts_at_zero_and_separates_expert_from_learner_features():
    gen = torch.Generator().manual_seed(0)
    expert = torch.randn(400, 6, generator=gen) + torch.tensor([1.5, 0, 0, 0, 0, 0])
    learner = torch.randn(400, 6, generator=gen) - torch.tensor([1.5, 0, 0, 0, 0, 0])
    assert torch.equal(Discriminator(6, RewardConfig(units=32))(expert), torch.zeros(400))
    disc, log = fit_discriminator(expert[:300], learner[:300], RewardConfig(units=32, lr=1e-3, steps=150, batch_size=64), 0)
    with torch.no_grad():
        se, sl = disc(expert[300:]).numpy(), disc(learner[300:]).numpy()
    sep = separation(se, sl, 0.5 * float(se.mean() + sl.mean()))
    assert sep["auc"] > 0.9 and sep["accuracy"] > 0.8 and se.mean() > sl.mean()
    assert log[-1] < log[0]


def test_success_targets_by_hand():
    # r_t is earned on reaching s_{t+1}: success states are s_3 and s_5; s_4 is one step before s_5
    r = np.array([0, 0, 1, 0, 1, 0], np.float32)
    assert np.allclose(success_targets(r, 0.5), [0.125, 0.25, 0.5, 1.0, 0.5, 1.0, 0.0])
    assert np.allclose(success_targets(np.zeros(4), 0.9), 0.0)  # a failure: no state is near a success
    assert np.allclose(success_targets(np.ones(2), 0.9), [0.9, 1.0, 1.0])
    with pytest.raises(ValueError, match="reward kind"):
        RewardConfig(kind="expert")


def test_success_reward_starts_at_one_half_and_learns_which_states_lead_to_success():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 6, generator=gen)
    y = torch.sigmoid(3 * x[:, 0])  # nearness to success rises with feature 0
    cfg = RewardConfig(units=32, lr=1e-3, steps=300, batch_size=64, kind="success")
    assert torch.equal(SuccessReward(6, cfg)(x), torch.full((600,), 0.5))
    model, log = fit_success_reward(x[:500], y[:500], cfg, 0)
    with torch.no_grad():
        pred = model(x[500:])
    assert float(((pred - y[500:]) ** 2).mean()) < 0.01 < float(((0.5 - y[500:]) ** 2).mean())
    assert log[-1] < log[0]


def test_separation_auc_and_accuracy_by_hand():
    sep = separation(np.array([3.0, 1.0]), np.array([0.0, 2.0]), threshold=1.5)
    assert sep["auc"] == pytest.approx(3 / 4) and sep["accuracy"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)


# ----- critic ----------------------------------------------------------------------------------------------------


def test_lambda_returns_hand_computed():
    r, v, d = torch.tensor([[1.0, 2.0]]), torch.tensor([[10.0, 20.0]]), torch.tensor([[0.5, 0.5]])  # v = V(s_1), V(s_2)
    # R_1 = 2 + 0.5 (0.5 * 20 + 0.5 * 20) = 12; R_0 = 1 + 0.5 (0.5 * 10 + 0.5 * 12) = 6.5
    assert torch.allclose(lambda_returns(r, v, d, 0.5), torch.tensor([[6.5, 12.0]]))
    assert torch.allclose(lambda_returns(r, v, d, 1.0), torch.tensor([[7.0, 12.0]]))  # Monte Carlo + bootstrap
    assert torch.allclose(lambda_returns(r, v, d, 0.0), torch.tensor([[6.0, 12.0]]))  # one-step TD


@pytest.mark.parametrize("feat_size,units", [(128, 64), (256, 128), (1536, 512)])  # the debug, cpu and paper sizes
def test_member_major_critic_gives_the_grouped_layers_numbers_bit_for_bit(feat_size, units):
    """The critic runs its members as (M, N, .) batched matmuls; its values, and after a backward pass its
    gradients, must equal those of its grouped layers' einsum on the (..., M, F) expanded input to
    the last bit at the presets' sizes, so recorded downstream results do not move. (Not at every size: with
    8 units the grouped layers' einsum takes another path and the gradients differ in the last bits.)"""
    critic = CriticEnsemble(feat_size, CriticConfig(units=units, members=5))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in critic.parameters():  # away from the zero start, so the output layer and its gradients matter
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    feat, target = torch.randn(16, 7, feat_size, generator=gen), torch.randn(16, 7, 1, generator=gen)

    def grouped():  # the grouped layers' einsum (GroupedLinear), as the recorded runs computed it
        x = feat.unsqueeze(-2).expand(16, 7, 5, feat_size)
        for layer in critic.net[:-1]:
            x = torch.nn.functional.silu(layer.norm(layer.lin.g(x)))
        return critic.net[-1].g(x)[..., 0]

    grads = []
    for forward in (critic, lambda f: grouped()):
        critic.zero_grad()
        values = forward(feat)
        ((values - target) ** 2).mean().backward()
        grads.append((values.detach(), [p.grad.clone() for p in critic.parameters()]))
    (va, ga), (vb, gb) = grads
    assert va.shape == (16, 7, 5) and torch.equal(va, vb)
    assert torch.equal(va.mean(-1), vb.mean(-1)) and torch.equal(va.std(-1), vb.std(-1))
    assert all(torch.equal(a, b) for a, b in zip(ga, gb))


def test_critic_ensemble_shapes_zero_start_and_fit_on_a_constant_reward():
    rssm = small_rssm()
    critic = CriticEnsemble(rssm.cfg.feat, CriticConfig(units=16, members=5))
    assert critic(torch.randn(3, 4, rssm.cfg.feat)).shape == (3, 4, 5) and not critic(torch.randn(2, rssm.cfg.feat)).any()
    h, z = rssm.initial(32)
    cfg = CriticConfig(units=32, members=3, lr=3e-3, steps=150, batch_size=32, horizon=3, gamma=0.9)
    critic, log = fit_critic(rssm, lambda f: torch.ones(f.shape[:-1]), (h, z), torch.zeros(32, 4, A), cfg, 0)
    with torch.no_grad():
        v = critic(rssm.features(h, z).mean(-2))  # (32, 3)
    assert log[-1] < log[0] and float(v.mean()) > 1.0  # every step pays 1: the value grows past one step's reward


# ----- RSSM additions ------------------------------------------------------------------------------------------


def test_filter_step_reproduces_the_posterior_and_imagined_features_decode_to_imagine():
    rssm = small_rssm()
    s, a = torch.randn(2, 6, D), torch.rand(2, 6, A) * 2 - 1
    first = torch.zeros(2, 6, dtype=torch.bool)
    first[:, 0] = True
    h, z, _ = rssm.posterior(SequenceBatch(s, a, first))
    latent = None
    for t in range(6):
        latent = rssm.filter_step(latent, None if t == 0 else a[:, t - 1], s[:, t])
        # z is the straight-through one-hot `hard + p - p.detach()`: the same sample, equal up to float rounding
        assert torch.allclose(latent[0], h[:, t], atol=1e-5) and torch.equal(latent[1].round(), z[:, t].round())
        assert torch.allclose(latent[1], z[:, t], atol=1e-6)
    acts = torch.rand(2, 4, A) * 2 - 1
    feat = rssm.imagine_features(latent, acts)
    assert feat.shape == (2, 4, 1, rssm.cfg.feat)
    assert torch.allclose(rssm.decode(feat), rssm.imagine_members(latent, acts), atol=1e-5)
    assert rssm.continue_prob(feat).shape == (2, 4, 1)


# ----- planner -------------------------------------------------------------------------------------------------


def test_mppi_finds_the_optimum_of_a_quadratic_and_respects_the_clamp():
    target = torch.linspace(-0.15, 0.15, 12).reshape(4, 3)
    cfg = PlannerConfig(iterations=10, samples=256, elites=32)
    best, info = mppi(lambda r: -((r - target) ** 2).sum((1, 2)), 4, 3, cfg, torch.Generator().manual_seed(0))
    assert (best - target).abs().max() < 0.03
    assert info["base_value"] == pytest.approx(-float((target**2).sum())) and info["value"] >= info["base_value"]
    assert all(b >= a for a, b in zip(info["values"], info["values"][1:]))
    far, _ = mppi(lambda r: -((r - 1.0) ** 2).sum((1, 2)), 2, 2, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(far, torch.full((2, 2), 0.2))


def test_planner_returns_batched_equal_one_at_a_time_and_plan_shapes():
    rssm = small_rssm()
    feat = rssm.cfg.feat
    torch.manual_seed(1)
    disc = Discriminator(feat, RewardConfig(units=16))
    critic = CriticEnsemble(feat, CriticConfig(units=16, members=5))
    for p in list(disc.parameters()) + list(critic.parameters()):  # non-trivial outputs
        p.data.normal_(0, 0.3)
    planner = Planner(rssm, disc, critic, PlannerConfig(iterations=2, samples=16, elites=4, horizon=5))
    latent = rssm.filter_step(None, None, torch.randn(1, D))
    acts = torch.rand(6, 5, A) * 2 - 1
    with torch.no_grad():
        batched = planner.returns(latent, acts)
        single = torch.cat([planner.returns(latent, acts[i : i + 1]) for i in range(6)])
    assert batched.shape == (6,) and torch.allclose(batched, single, atol=1e-4) and batched.std() > 0
    residual, info = planner.plan(latent, torch.zeros(5, A), torch.Generator().manual_seed(0))
    assert residual.shape == (A,) and residual.abs().max() <= 0.2 and info["value"] >= info["base_value"]


# ----- acting, on a toy env ------------------------------------------------------------------------------------


class ToyEnv:
    """State (8,): a 7-D point the action moves by 0.1 a, plus a constant; success when x_0 > 0.3."""

    camera = False

    def __init__(self, steps: int = 10):
        self.steps = steps

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)
        self.s = np.concatenate([self.rng.normal(0, 0.1, 7), [1.0]]).astype(np.float32)
        self.t = 0
        return self.s.copy(), {"success": False}

    def step(self, a):
        self.s[:7] += 0.1 * np.asarray(a, np.float32)
        self.t += 1
        ok = bool(self.s[0] > 0.3)
        return self.s.copy(), float(ok), False, self.t >= self.steps, {"success": ok}


def tiny_policy():
    from wav.robot.policy import DiffusionPolicy, PolicyConfig

    torch.manual_seed(0)
    return DiffusionPolicy(D, A, PolicyConfig(hidden=16, layers=1, train_steps=10, checkpoints=1, sample_steps=2))


def test_planning_actor_base_alone_follows_the_policy_chunks_and_the_planner_stays_near_them():
    from wav.planning.agent import PlanningActor, run_episodes

    pol = tiny_policy()
    base = PlanningActor(pol, torch.Generator().manual_seed(0))
    rows = run_episodes(ToyEnv(10), base, [1, 2])
    assert [r["steps"] for r in rows] == [10, 10] and rows[0]["plan_ms"] is None
    env = ToyEnv(10)
    s, _ = env.reset(seed=1)
    base.reset()
    chunk = pol.sample(torch.as_tensor(np.stack([s, s]))[None], torch.Generator().manual_seed(0))[0].numpy()
    base_gen = torch.Generator().manual_seed(0)
    base = PlanningActor(pol, base_gen)
    got = [base(env, s)] + [base(env, env.step(chunk[i])[0]) for i in range(7)]
    assert np.allclose(np.stack(got), chunk[:8], atol=1e-6)  # 8 steps of one chunk, executed as sampled
    rssm = small_rssm()
    planner = Planner(rssm, Discriminator(rssm.cfg.feat, RewardConfig(units=16)), CriticEnsemble(rssm.cfg.feat, CriticConfig(units=16)),
                      PlannerConfig(iterations=2, samples=8, elites=4))
    actor = PlanningActor(pol, torch.Generator().manual_seed(0), planner, torch.Generator().manual_seed(1), LAYOUT)
    rows = run_episodes(ToyEnv(10), actor, [1])
    assert rows[0]["steps"] == 10 and rows[0]["plan_ms"] > 0
    assert actor.latent[0].shape == (1, 1, rssm.cfg.deter)


def test_planning_gives_the_same_residuals_with_one_or_two_threads():
    """At the `cpu` sizes (where matmuls split over threads), filtering and planning a short episode gives the
    same residuals and MPPI values to the last bit with one or two torch threads."""
    from wav.experiments.robot_downstream import PRESETS

    cfg = PRESETS["cpu"]
    torch.manual_seed(0)
    rssm = RSSM(preset("cpu", state_dim=35, action_dim=A)).eval().requires_grad_(False)
    disc, critic = Discriminator(rssm.cfg.feat, cfg.reward), CriticEnsemble(rssm.cfg.feat, cfg.critic)
    for p in list(disc.parameters()) + list(critic.parameters()):  # non-zero outputs
        p.data.normal_(0, 0.1)
    planner = Planner(rssm, disc, critic, cfg.planner)
    runs, before = [], torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            gen, latent, out = torch.Generator().manual_seed(0), None, []
            with torch.no_grad():
                for _ in range(4):
                    latent = rssm.filter_step(latent, None if latent is None else torch.zeros(1, A), torch.randn(1, 35, generator=gen))
                    residual, info = planner.plan(latent, torch.rand(cfg.planner.horizon, A, generator=gen) * 2 - 1, gen)
                    out += [residual, torch.tensor(info["values"])]
            runs.append(torch.cat(out))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0], runs[1]) and runs[0].abs().sum() > 0


def test_a_planner_without_room_for_residuals_acts_exactly_as_the_base_policy():
    from wav.planning.agent import PlanningActor

    pol, rssm = tiny_policy(), small_rssm()
    planner = Planner(rssm, Discriminator(rssm.cfg.feat, RewardConfig(units=16)), CriticEnsemble(rssm.cfg.feat, CriticConfig(units=16)),
                      PlannerConfig(iterations=2, samples=8, elites=4, clamp=0.0))
    acts = {}
    for name, planner_ in (("base", None), ("planner", planner)):
        actor = PlanningActor(pol, torch.Generator().manual_seed(3), planner_, torch.Generator().manual_seed(1), LAYOUT)
        env, seen = ToyEnv(12), []
        s, _ = env.reset(seed=4)
        actor.reset()
        for _ in range(12):
            seen.append(actor(env, s))
            s = env.step(seen[-1])[0]
        acts[name] = np.stack(seen)
    assert np.allclose(acts["base"], acts["planner"], atol=1e-6)


def test_streaming_quaternion_continuity_matches_the_batch_rule():
    from wav.domains.manipulation import continuous_quaternions, quaternion_slices
    from wav.planning.agent import continue_quaternions

    layout = {"names": ["tcp_pose", "x"], "sizes": [7, 1], "groups": ["ee", "robot"]}
    rng = np.random.default_rng(0)
    s = rng.normal(size=(12, 8)).astype(np.float32)
    s[5:, 3:7] *= -1  # a sign flip mid-episode
    want = continuous_quaternions(s, layout)
    prev, got = None, []
    for row in s:
        prev = continue_quaternions(row, prev, quaternion_slices(layout))
        got.append(prev)
    assert np.allclose(np.stack(got), want)


# ----- probing the planner's objective against the true dynamics (wav.planning.probe) ---------------------------


class SnapshotToyEnv(ToyEnv):
    """ToyEnv with the simulator snapshot interface the probe needs."""

    def snapshot(self):
        return {"s": self.s.copy(), "t": self.t}

    def restore(self, snap):
        self.s, self.t = snap["s"].copy(), snap["t"]

    def dense_reward(self):
        return float(self.s[0])  # progress towards the success condition x_0 > 0.3


def probe_planner(horizon: int = 4) -> Planner:
    rssm = small_rssm()
    torch.manual_seed(2)
    disc, critic = Discriminator(rssm.cfg.feat, RewardConfig(units=16)), CriticEnsemble(rssm.cfg.feat, CriticConfig(units=16))
    for p in list(disc.parameters()) + list(critic.parameters()):  # non-trivial objectives
        p.data.normal_(0, 0.3)
    return Planner(rssm, disc, critic, PlannerConfig(horizon=horizon))


def test_learned_reward_is_the_objective_without_the_critic():
    from wav.planning.probe import learned_reward

    planner = probe_planner(4)
    feat = torch.randn(5, 4, 1, planner.rssm.cfg.feat, generator=torch.Generator().manual_seed(0))
    silent = Planner(planner.rssm, planner.reward, lambda f: torch.zeros(*f.shape[:-1], 1), planner.cfg)  # value 0, no spread
    with torch.no_grad():
        assert torch.allclose(learned_reward(planner, feat), silent.objective(feat), atol=1e-6)
        assert not torch.allclose(learned_reward(planner, feat), planner.objective(feat), atol=1e-3)  # the critic counts there


def test_true_features_of_the_actions_taken_next_equal_filtering_the_episode_and_the_env_is_restored():
    from wav.planning.probe import true_features

    planner = probe_planner(4)
    rssm = planner.rssm
    env = SnapshotToyEnv(20)
    s, _ = env.reset(seed=3)
    latent = rssm.filter_step(None, None, torch.as_tensor(s)[None])
    acts = torch.rand(3, 4, A, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        roll = true_features(env, rssm, latent, acts, s, [], task_reward=True)
    feat, visited = roll.features, roll.states
    assert np.allclose(roll.task_reward, 4 * s[0] + 0.1 * np.cumsum(acts[:, :, 0].numpy(), 1).sum(1), atol=1e-5)  # x_0 summed over 4 steps
    assert feat.shape == (3, 4, 1, rssm.cfg.feat) and np.array_equal(env.s, s) and env.t == 0  # restored
    lat, want = latent, []
    for k in range(4):  # candidate 1, executed for real and filtered online
        state = env.step(acts[1, k].numpy())[0]
        assert np.allclose(state, visited[1, k])
        lat = rssm.filter_step(lat, acts[1, k][None], torch.as_tensor(state)[None])
        want.append(rssm.features(*lat)[0])
    assert torch.allclose(feat[1], torch.stack(want), atol=1e-5)
    env.reset(seed=3)
    with torch.no_grad():
        again = true_features(env, rssm, latent, acts, s, [], task_reward=True, replay=True)
    assert torch.equal(again.features, feat) and np.array_equal(again.states, visited)  # the replay roll changes nothing else
    assert torch.allclose(again.replay_features[0], feat[0], atol=1e-6) and np.array_equal(again.replay_states[0], visited[0])  # an exact simulator


def test_probing_leaves_the_base_episode_unchanged_and_the_true_pick_is_never_worse_than_the_model_pick():
    from wav.planning.agent import PlanningActor, run_episodes
    from wav.planning.probe import ProbeActor, ProbeConfig

    pol, planner = tiny_policy(), probe_planner(4)
    base = run_episodes(SnapshotToyEnv(12), PlanningActor(pol, torch.Generator().manual_seed(5)), [7])
    probe = ProbeActor(pol, torch.Generator().manual_seed(5), planner, ProbeConfig(candidates=6, every=3), torch.Generator().manual_seed(1), LAYOUT)
    env = SnapshotToyEnv(12)
    s, _ = env.reset(seed=7)
    probe.reset(env)
    seen = []
    for _ in range(12):
        seen.append(probe(env, s))
        s = env.step(seen[-1])[0]
    plain = PlanningActor(pol, torch.Generator().manual_seed(5))
    env2 = SnapshotToyEnv(12)
    s2, _ = env2.reset(seed=7)
    want = []
    for _ in range(12):
        want.append(plain(env2, s2))
        s2 = env2.step(want[-1])[0]
    assert np.allclose(np.stack(seen), np.stack(want), atol=1e-6) and base[0]["steps"] == 12
    assert [r["t"] for r in probe.rows] == [0, 3, 6, 9]
    # the toy env restores exactly (the objective to rounding: the replay is filtered in a batch of its own)
    assert all(r["replay_state_diff"] == 0 and r["replay_objective_diff"] < 1e-5 for r in probe.rows)
    assert all(-1 <= r["spearman"] <= 1 and r["gain_true_pick"] >= max(r["gain_model_pick"], 0.0) for r in probe.rows)
    assert all(-1 <= r["spearman_reward_vs_task"] <= 1 for r in probe.rows if np.isfinite(r["spearman_reward_vs_task"]))
    acting = ProbeActor(pol, torch.Generator().manual_seed(5), planner, ProbeConfig(candidates=6, act="true"), torch.Generator().manual_seed(1), LAYOUT)
    rows = run_episodes(SnapshotToyEnv(12), acting, [7])
    assert rows[0]["steps"] == 12 and len(acting.rows) == 12  # acting probes every step
    task = ProbeActor(pol, torch.Generator().manual_seed(5), planner, ProbeConfig(candidates=6, act="task"), torch.Generator().manual_seed(1), LAYOUT)
    run_episodes(SnapshotToyEnv(12), task, [7])
    assert all(r["task_gain_task_pick"] >= max(r["task_gain_true_pick"], r["task_gain_model_pick"], 0.0) for r in task.rows)
    # the toy task reward is x_0 and the first action's residual moves x_0 most: the task pick pushes x_0 up
    assert np.mean([r["task_gain_task_pick"] for r in task.rows]) > 0
    with pytest.raises(ValueError, match="act must be one of"):
        ProbeConfig(act="best")
    with pytest.raises(NotImplementedError, match="dense_reward"):  # refused before the episode starts
        run_episodes(ToyEnv(12), ProbeActor(pol, torch.Generator().manual_seed(5), planner, ProbeConfig(act="task"), torch.Generator(), LAYOUT), [7])


# ----- the experiment and the CLI on a synthetic acquisition folder (h5py) -----------------------------------


def make_acquisition(root, task: str = "PullCube", strategies=("random", "wav", "oracle"), seeds=(0, 1), action_dim: int = A):
    """A pool file, a build folder (summary + checkpoints) and finished acquisition runs with world models."""
    from wav.data.robot_io import Trajectory, save_trajectories
    from wav.robot.policy import DiffusionPolicy, PolicyConfig
    from wav.train import save_checkpoint

    build = root / "build"
    (build / "checkpoints").mkdir(parents=True)
    env, trajs = ToyEnv(10), []
    rng = np.random.default_rng(0)
    for i in range(12):
        s, _ = env.reset(seed=i)
        states, acts = [s], []
        for _ in range(10):
            a = np.clip((np.ones(A) if i < 6 else rng.normal(0, 0.5, A)), -1, 1).astype(np.float32)
            states.append(env.step(a)[0])
            acts.append(a)
        rewards = np.array([0] * 7 + [1] * 3 if i < 6 else [0] * 10, np.float32)  # a success is held for the last 3 steps
        trajs.append(Trajectory(np.stack(states), np.stack(acts), rewards, np.zeros(10, bool), i < 6,
                                "expert" if i < 6 else "ckpt1", i))
    save_trajectories(build / "pool.hdf5", trajs, {"task": task, "layout": LAYOUT}, {"eval": [0, 1, 6, 7]})
    (build / "summary.json").write_text(json.dumps({"checkpoint_success": {"ckpt1": 0.0, "ckpt2": 0.45, "ckpt3": 1.0}}))
    for k in (1, 2, 3):
        torch.manual_seed(k)
        DiffusionPolicy(D, action_dim, PolicyConfig(hidden=16, layers=1, train_steps=10, checkpoints=1, sample_steps=2)).save(
            build / "checkpoints" / f"ckpt_{k}.pt", task=task)
    acq = root / "acq"
    for s in strategies:
        for k in seeds:
            d = acq / "runs" / s / f"seed{k}"
            d.mkdir(parents=True)
            meta = {"task": task, "preset": "debug", "kind": "rssm", "layout": LAYOUT, "scale": [1.0] * D, "window": 32,
                    "data": str((build / "pool.hdf5").resolve()), "warmup": 5}
            save_checkpoint(d / "world_model.pt", small_rssm(k), meta)
            (d / "done").write_text("ok\n")
    return acq, build


TINY = replace(__import__("wav.experiments.robot_downstream", fromlist=["PRESETS"]).PRESETS["debug"],
               reward=RewardConfig(units=16, lr=1e-3, steps=20, batch_size=32), critic=CriticConfig(units=16, lr=1e-3, steps=10, batch_size=32),
               planner=PlannerConfig(iterations=2, samples=8, elites=4))


def test_downstream_experiment_end_to_end_on_a_toy_env_with_resume(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    import wav.envs.manipulation.core as core
    import wav.experiments.robot_downstream as ds

    acq, build = make_acquisition(tmp_path)
    monkeypatch.setitem(ds.PRESETS, "debug", TINY)
    monkeypatch.setattr(ds, "_env", lambda task: ToyEnv(10))
    monkeypatch.setattr(core, "require_simulator", lambda task: None)
    exp = ds.RobotDownstreamExperiment(task="PullCube", source=str(acq), out=str(tmp_path / "out"), seeds=(0, 1), episodes=2, preset="debug", jobs=1)
    res = ds.run(exp, progress=False)
    assert res["policy"].endswith("ckpt_2.pt")  # success 0.45 is closest to 0.5
    assert set(res["strategies"]) == {"random", "wav", "oracle"} and res["base"]["reward"] is not None
    for n in ("base", "random", "wav", "oracle"):
        rows = [json.loads(x) for x in (tmp_path / "out" / "runs" / n / "seed1" / "metrics.jsonl").read_text().splitlines()]
        assert rows[0]["kind"] == "fit" and [r["env_seed"] for r in rows[1:]] == exp.env_seeds(1)
    fit = [json.loads(x) for x in (tmp_path / "out" / "runs" / "wav" / "seed0" / "metrics.jsonl").read_text().splitlines()][0]
    assert 0 <= fit["reward_heldout_trajectory"]["auc"] <= 1 and fit["heldout_trajectories"] == [2, 2]
    assert "reward" in res["paired_vs_base"]["oracle"] and "wav" not in res["paired_wav_minus"]
    assert (tmp_path / "out" / "table.md").read_text().count("|") > 20 and (tmp_path / "out" / "figure.png").stat().st_size > 0
    monkeypatch.setattr(ds, "_job", lambda *a: pytest.fail("a finished run was redone"))
    again = ds.run(exp, progress=False)
    assert again["strategies"]["wav"]["reward"] == res["strategies"]["wav"]["reward"]
    with pytest.raises(ValueError, match="other settings"):
        ds.run(replace(exp, episodes=3), progress=False)
    # the success reward model is another setting, also against runs recorded before the setting existed
    cfg_path = tmp_path / "out" / "runs" / "wav" / "seed0" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["settings"]["planning"]["reward"]["kind"]
    cfg_path.write_text(json.dumps(cfg))
    assert ds.run(exp, progress=False)["strategies"]["wav"]["reward"] == res["strategies"]["wav"]["reward"]  # kept: made as the default
    with pytest.raises(ValueError, match="planning.reward.kind: 'discriminator' -> 'success'"):
        ds.run(replace(exp, reward="success"), progress=False)
    monkeypatch.undo()
    monkeypatch.setitem(ds.PRESETS, "debug", TINY)
    monkeypatch.setattr(ds, "_env", lambda task: ToyEnv(10))
    monkeypatch.setattr(core, "require_simulator", lambda task: None)
    succ = ds.run(replace(exp, reward="success", out=str(tmp_path / "succ"), strategies=("wav",), seeds=(0,)), progress=False)
    fit = [json.loads(x) for x in (tmp_path / "succ" / "runs" / "wav" / "seed0" / "metrics.jsonl").read_text().splitlines()][0]
    assert succ["planning"]["reward"]["kind"] == "success" and "success reward model" in (tmp_path / "succ" / "table.md").read_text()
    assert 0 <= fit["reward_heldout_trajectory"]["auc"] <= 1 and fit["reward_loss"][-1] < fit["reward_loss"][0]


def test_cli_bad_inputs_are_one_line_and_write_nothing(tmp_path, capsys):
    pytest.importorskip("h5py")
    from wav.cli import main

    acq, build = make_acquisition(tmp_path, seeds=(0,))
    out = tmp_path / "out"

    def err(*args):
        try:
            rc = main(["reproduce", "robot-downstream", "--out", str(out), "--preset", "debug", "--seeds", "0", *args])
        except SystemExit as e:  # argparse refuses the value itself
            rc = e.code
        e = capsys.readouterr().err.strip()
        assert rc != 0 and len(e.splitlines()) == 1, e
        assert not out.exists()
        return e

    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    assert "no finished robot-acquisition runs" in err("--task", "PullCube", "--from", str(empty))
    assert "no such folder" in err("--task", "PullCube", "--from", str(tmp_path / "nope"))
    assert "not a finished run" in err("--task", "PullCube", "--from", str(acq), "--seeds", "0-1")
    assert "a world model of task 'PullCube', not the requested task 'PokeCube'" in err("--task", "PokeCube", "--from", str(acq))
    from wav.robot.policy import DiffusionPolicy, PolicyConfig

    DiffusionPolicy(D, 4, PolicyConfig(hidden=8, layers=1, train_steps=10, checkpoints=1)).save(tmp_path / "bad.pt")
    assert "do not match" in err("--task", "PullCube", "--from", str(acq), "--policy", str(tmp_path / "bad.pt"))
    assert "unknown" in err("--task", "Nope", "--from", str(acq))
