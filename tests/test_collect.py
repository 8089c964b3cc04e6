"""Collectors: determinism, the stored schema, conformance with the true transition function, test sets."""

import numpy as np
import pytest

from wav.cli.data import replay_matches
from wav.data.collect import collect, episode_seed, make_testset, transition_keys
from wav.data.io import load_transitions, save_transitions
from wav.envs.minigrid.encoding import AGENT, GOAL, N_ACTIONS


def test_same_seed_same_bytes(tmp_path):
    paths = []
    for k in range(2):
        tr, ep = collect("WAV/MultiTask-v0", None, "scripted", 600, seed=7, progress=False)
        paths.append(save_transitions(tmp_path / f"run{k}.npz", tr, episodes=ep))
    assert paths[0].read_bytes() == paths[1].read_bytes()  # numpy's zip entries carry a fixed 1980 date
    other, _ = collect("WAV/MultiTask-v0", None, "scripted", 600, seed=8, progress=False)
    assert not np.array_equal(other.states, load_transitions(paths[0]).states)


def test_random_play_same_seed_same_arrays():
    a, ea = collect("WAV/Interact-v0", {"objects": 6, "noise_floors": 2}, "random", 400, seed=3, episode_steps=50, progress=False)
    b, eb = collect("WAV/Interact-v0", {"objects": 6, "noise_floors": 2}, "random", 400, seed=3, episode_steps=50, progress=False)
    for name in ("states", "carried", "actions", "next_states", "next_carried"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(ea, eb)


def test_episode_seeds_are_distinct_and_stable():
    seeds = [episode_seed(0, e) for e in range(1000)]
    assert len(set(seeds)) == 1000
    assert seeds[:3] == [episode_seed(0, 0), episode_seed(0, 1), episode_seed(0, 2)]
    assert episode_seed(1, 0) != episode_seed(0, 0)


def test_stored_schema_and_no_terminal_transitions():
    tr, ep = collect("WAV/MultiTask-v0", None, "scripted", 1500, seed=0, progress=False)
    assert len(tr) == len(ep) == 1500
    assert tr.states.shape == (1500, 6, 6, 3) and tr.states.dtype == np.uint8
    assert tr.carried.shape == (1500, 2) and tr.carried.dtype == np.int64
    assert not tr.rewards.any() and not tr.dones.any()
    assert np.all(np.diff(ep) >= 0) and ep[0] == 0 and ep[-1] > 30
    # The step onto the goal ends each successful episode and is not stored: no next state shows the
    # agent where the goal is, and the goal cell is always visible.
    assert np.all(tr.next_states[:, 4, 4, 0] == GOAL)
    assert np.all(tr.states[:, 4, 4, 0] == GOAL)
    assert np.all((tr.next_states[..., 0] == AGENT).reshape(1500, -1).sum(1) == 1)


def test_episode_steps_cut_episodes():
    tr, ep = collect("WAV/Interact-v0", {"objects": 3}, "random", 250, seed=0, episode_steps=50, progress=False)
    assert np.array_equal(np.bincount(ep), [50] * 5)


def test_scripted_data_replays_exactly_with_swap():
    tr, _ = collect("WAV/MultiTask-v0", None, "scripted", 3000, seed=11, progress=False)
    assert replay_matches(tr, "swap").all()
    assert set(np.unique(tr.actions)) == set(range(N_ACTIONS))


def test_random_play_data_replays_exactly_with_recolor():
    tr, _ = collect("WAV/Interact-v0", {"objects": 6, "box_toggle": "recolor"}, "random", 3000, seed=5, episode_steps=50, progress=False)
    assert replay_matches(tr, "recolor").all()
    assert set(np.unique(tr.actions)) == set(range(N_ACTIONS))


def test_random_play_with_noise_floors_replays_up_to_floor_colours():
    tr, _ = collect("WAV/Interact-v0", {"objects": 4, "noise_floors": 3, "box_toggle": "recolor"}, "random", 1000, seed=2, episode_steps=50, progress=False)
    assert replay_matches(tr, "recolor").all()


def test_make_testset_is_balanced_and_excludes():
    pool, _ = collect("WAV/MultiTask-v0", None, "scripted", 2000, seed=0, progress=False)
    ts, ep = make_testset(per_action=40, exclude=pool, seed=0, progress=False)
    assert np.array_equal(np.bincount(ts.actions, minlength=N_ACTIONS), [40] * N_ACTIONS)
    assert not set(transition_keys(ts.states, ts.carried, ts.actions)) & set(transition_keys(pool.states, pool.carried, pool.actions))
    # The same seed without exclusion keeps some of the pool's transitions (seed 0 = the same episodes).
    same, _ = make_testset(per_action=40, exclude=None, seed=0, progress=False)
    assert set(transition_keys(same.states, same.carried, same.actions)) & set(transition_keys(pool.states, pool.carried, pool.actions))
    assert replay_matches(ts, "swap").all()


def test_make_testset_budget_may_leave_actions_short():
    ts, _ = make_testset(per_action=50, seed=1, max_transitions=100, progress=False)
    assert len(ts) <= 100 and np.bincount(ts.actions, minlength=N_ACTIONS).max() <= 50


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="task env"):
        collect("WAV/Interact-v0", None, "scripted", 5, progress=False)
    with pytest.raises(ValueError, match="cannot make env"):
        collect("WAV/Nope-v0", None, "random", 5, progress=False)
    with pytest.raises(ValueError, match="policy must be one of"):
        collect("WAV/Interact-v0", None, "greedy", 5, progress=False)
    with pytest.raises(ValueError, match="episode_steps"):
        collect("WAV/Interact-v0", None, "random", 5, episode_steps=0, progress=False)
