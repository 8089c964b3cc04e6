"""The robot online loop (issue 13 items 3b and 6): the action-free trajectory generator, the online env records,
continuous-action choice in the shared loop, and Algorithm 1 end to end on a simulator-free linear world."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from wav.config import OnlineConfig, ScoringConfig, TrainConfig
from wav.data.sequences import linear_world
from wav.domains import manipulation_online as online
from wav.domains.base import PoolData
from wav.domains.manipulation import DOMAIN_PRESETS, TrajectorySet
from wav.experiments.robot_acquisition import ROUND_PRESETS
from wav.models.trajectory_generator import TrajectoryGenerator, future_pairs, preset

D_OBJ = 6
LAYOUT = {"names": ["ee_pos", "ee_vel", "cube"], "sizes": [7, 7, D_OBJ], "groups": ["ee", "robot", "object"]}
FAST = TrainConfig(epochs=4, lr=3e-3, batch_size=16, val_fraction=0.0)
DOMAIN = replace(DOMAIN_PRESETS["debug"], world_model_train=FAST, inverse_train=replace(FAST, batch_size=128),
                 generator_train=TrainConfig(epochs=30, lr=3e-3, batch_size=128, val_fraction=0.0), task="Linear")
ROUND = replace(ROUND_PRESETS["debug"], refit=replace(FAST, epochs=2), inverse_refit=replace(FAST, epochs=2, batch_size=128),
                scoring=ScoringConfig(k=8, mc_passes=1))


def dataset(n, steps, seed) -> TrajectorySet:
    return TrajectorySet.of(linear_world(n, steps, np.random.default_rng(seed), distractors=D_OBJ)[0], LAYOUT)


class LinearEnv:
    """The linear world of `wav.data.sequences.linear_world` as a simulator: v' = 0.8 v + 0.5 a, p' = 0.95 p + 0.2 v'."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def reset(self, seed):
        self.rng = np.random.default_rng(seed)
        self.p, self.v, self.x, self.t = self.rng.normal(0, 0.5, 7), np.zeros(7), self.rng.normal(0, 1.0, D_OBJ), 0
        return self.state(), {}

    def state(self):
        return np.concatenate([self.p, self.v, self.x]).astype(np.float32)

    def step(self, a):
        self.v = 0.8 * self.v + 0.5 * np.asarray(a)
        self.p = 0.95 * self.p + 0.2 * self.v
        self.x = 0.9 * self.x + 0.2 * self.rng.normal(size=D_OBJ)
        self.t += 1
        return self.state(), 0.0, False, self.t >= 25, {}

    def close(self):
        self.closed = True


@pytest.fixture
def linear_sim(monkeypatch):
    made = []

    def make_env(task, seed):
        env = online.OnlineEnv(LinearEnv(), LAYOUT)
        online.reset(env, seed)
        made.append(env)
        return env

    monkeypatch.setattr(online, "make_env", make_env)
    return made


def test_generator_samples_rows_and_learns_the_futures():
    train, test = dataset(60, 30, 0), dataset(6, 30, 1)
    gen = replace(DOMAIN, generator_train=TrainConfig(epochs=10, lr=3e-3, batch_size=128, val_fraction=0.0)).fit_generator(train, 0, horizon=3)
    s, f = future_pairs(list(test.trajectories), 3)
    rows = gen.sample(s[:5], 4, torch.Generator().manual_seed(0))
    assert rows.shape == (5, 4, 4 * s.shape[1]) and torch.equal(rows[:, :, : s.shape[1]], s[:5, None].expand(-1, 4, -1))
    untrained = TrajectoryGenerator(preset("debug", state_dim=s.shape[1], horizon=3)).set_stats(s, f)
    with torch.no_grad():
        assert float(gen.training_loss(s, f)) < float(untrained.training_loss(s, f)) - 1.0  # held-out NLL per dim
        samp = gen.sample(s, 16, torch.Generator().manual_seed(1))[:, :, s.shape[1]:].reshape(len(s), 16, 3, -1)
    # the actions are random, so the futures are too; the samples still cover them better than "nothing moves",
    # and their mean tracks the position block, which the state's velocity predicts
    hold = (s[:, None] - f) ** 2
    assert float(((samp - f[:, None]) ** 2).mean((-1, -2)).min(1).values.mean()) < 0.6 * float(hold.mean())
    assert float(((samp.mean(1) - f) ** 2)[..., :7].mean()) < 0.7 * float(hold[..., :7].mean())


def test_online_records_become_trajectories_and_quaternions_stay_continuous():
    layout = {"names": ["tcp_pose"], "sizes": [7], "groups": ["ee"]}
    env = online.OnlineEnv(None, layout)
    q = np.array([0, 0, 0, 0.1, 0.995, 0, 0], np.float32)
    env.start(q)
    env.add(np.zeros(7), -q)  # the simulator flipped the quaternion's sign
    np.testing.assert_allclose(env.states[-1][3:], q[3:])
    records = [(1, 1, np.zeros(3), np.ones(2), np.ones(3)), (1, 2, np.ones(3), 2 * np.ones(2), 2 * np.ones(3)), (2, 1, 5 * np.ones(3), np.zeros(2), 6 * np.ones(3))]
    trajs = online.trajectories(records)
    assert [len(a) for _, a in trajs] == [2, 1]
    np.testing.assert_array_equal(trajs[0][0][:, 0], [0, 1, 2])
    np.testing.assert_array_equal(trajs[1][0][:, 0], [5, 6])


@pytest.mark.parametrize("strategy", ["random", "ensemble", "wav"])
def test_algorithm_1_runs_online_and_labels_every_step(tmp_path, linear_sim, strategy):
    from wav.acquire import make_strategy
    from wav.loop import run_online, shared_models, shared_parts, train_shared_part

    data = PoolData(dataset(8, 30, 0), dataset(6, 30, 1), dataset(3, 30, 2))
    s = make_strategy(strategy)
    parts = {p: train_shared_part(DOMAIN, data.seed_set, ROUND, 0, p) for p in shared_parts([s])}
    gen = DOMAIN.fit_generator(DOMAIN.concat([data.seed_set, data.pool]), 0, horizon=3) if s.subgoal else None
    cfg = OnlineConfig(steps=30, update_every=15, episode_steps=20)
    rows = run_online(DOMAIN, strategy, 0, data, shared_models(gen, parts), cfg, ROUND, tmp_path / strategy)
    assert [r["steps"] for r in rows] == [0, 15, 30] and [r["labels"] for r in rows] == [8, 9, 10]  # 2 episodes (20 + 10 steps)
    assert all(np.isfinite(r["pred_error"]) for r in rows) and len(rows[-1]["acquired_actions"]) == 7
    assert linear_sim[-1].episode == 2 and getattr(linear_sim[-1].env, "closed", False)
    again = run_online(DOMAIN, strategy, 0, data, shared_models(gen, parts), cfg, ROUND, tmp_path / f"{strategy}-again")
    assert again == rows  # the same seed acts the same


def test_continuous_choice_scores_uniform_candidates():
    from wav.acquire import Models, make_strategy
    from wav.loop import act

    class Ens:
        members = 2

        def disagreement(self, states, actions):
            return actions[:, 0]  # "most disagreement" = largest first action coordinate

    state, outcomes = online.observe(type("E", (), {"states": [np.zeros(4, np.float32)]})())
    models = Models(world_model=None, space=DOMAIN.space, ensemble=Ens())
    strategy = replace(make_strategy("ensemble"), random_mix=0.0)
    a = act(strategy, state, models, ROUND, outcomes, np.random.default_rng(0), torch.Generator().manual_seed(0))
    cands = DOMAIN.space.sample(8, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, cands[int(cands[:, 0].argmax())])
