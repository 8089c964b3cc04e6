"""Tests generated from the env registry (as Minigrid's tests/test_envs.py): API, determinism, pickling."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import wav.envs  # noqa: F401  (registers the ids)
from wav.envs.minigrid import ENV_IDS
from wav.envs.minigrid.encoding import AGENT, BOX, FLOOR, KEY, BALL


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_checker(env_id):
    env = gym.make(env_id).unwrapped
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_rollout(env_id):
    def roll(seed):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs["grid"].copy()]
        for _ in range(50):
            obs, r, term, trunc, _ = env.step(int(rng.integers(7)))
            out.append(obs["grid"].copy())
            if term or trunc:
                obs, _ = env.reset()
        return np.stack(out)

    assert np.array_equal(roll(3), roll(3))
    assert not np.array_equal(roll(3), roll(4))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    env2 = pickle.loads(pickle.dumps(env))
    a, b = env.step(2)[0], env2.step(2)[0]
    assert np.array_equal(a["grid"], b["grid"])


@pytest.mark.parametrize("objects,floors", [(2, 0), (6, 0), (14, 0), (6, 4), (10, 4)])
def test_interact_counts(objects, floors):
    env = gym.make("WAV/Interact-v0", objects=objects, noise_floors=floors)
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        t = obs["grid"][..., 0]
        assert np.isin(t, [KEY, BALL, BOX]).sum() == objects
        assert (t == FLOOR).sum() == floors == len(env.unwrapped.noise_floors)  # the agent starts on a free cell
        assert (t == AGENT).sum() == 1 and tuple(obs["carried"]) == (5, 1)


def test_noise_floors_recolour_at_rate():
    env = gym.make("WAV/Interact-v0", objects=2, noise_floors=4).unwrapped
    env.reset(seed=0)
    changes = 0
    for _ in range(500):
        before = [t.color for t in env.noise_floors]
        env.step(0)
        changes += sum(b != t.color for b, t in zip(before, env.noise_floors))
    # p(change) = 0.25 * 5/6 per tile and step
    assert abs(changes / 2000 - 0.25 * 5 / 6) < 0.04


def test_bad_arguments():
    with pytest.raises(ValueError, match="objects"):
        gym.make("WAV/Interact-v0", objects=15)
    with pytest.raises(ValueError, match="noise_floors"):
        gym.make("WAV/Interact-v0", noise_floors=5)
    with pytest.raises(ValueError, match="box_toggle"):
        gym.make("WAV/Interact-v0", box_toggle="open")
    env = gym.make("WAV/Interact-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(7)


def test_set_state_roundtrip_official_like(rng):
    from wav.envs.minigrid.states import random_states

    g, c = random_states(rng, 50)
    env = gym.make("WAV/Interact-v0").unwrapped
    for i in range(50):
        obs = env.set_state(g[i], c[i])
        assert np.array_equal(obs["grid"], g[i]) and np.array_equal(obs["carried"], c[i])
