"""step_batch equals stepping the env, on thousands of random states and actions, in both box modes."""

import numpy as np
import pytest

from wav.envs.minigrid.dynamics import step_batch, successors
from wav.envs.minigrid.encoding import AGENT, BLUE, BOX, EMPTY_CARRIED, FLOOR, KEY, RED, TOGGLE, SWAP, DROP, PICKUP
from wav.envs.minigrid.env import InteractEnv
from wav.envs.minigrid.states import random_states


def _mask_floor_colours(a, b):
    """Noise floors re-colour themselves; compare floors by type only."""
    a, b = a.copy(), b.copy()
    both = (a[..., 0] == FLOOR) & (b[..., 0] == FLOOR)
    a[..., 1][both] = 0
    b[..., 1][both] = 0
    return a, b


@pytest.mark.parametrize("box_toggle", ["swap", "recolor"])
def test_step_batch_equals_env_on_random_states(box_toggle):
    rng = np.random.default_rng(1 if box_toggle == "swap" else 2)
    n = 3000
    grids, carried = random_states(rng, n)
    # bias actions to the interactions (3-6) so every branch is hit hundreds of times
    actions = rng.choice(7, size=n, p=[0.08, 0.08, 0.14, 0.2, 0.15, 0.2, 0.15])
    env = InteractEnv(objects=3, noise_floors=0, box_toggle=box_toggle)
    env.reset(seed=0)
    want_g, want_c = np.empty_like(grids), np.empty_like(carried)
    for i in range(n):
        env.set_state(grids[i], carried[i])
        obs, *_ = env.step(int(actions[i]))
        want_g[i], want_c[i] = obs["grid"], obs["carried"]
    got_g, got_c = step_batch(grids, carried, actions, box_toggle)
    got_g, want_g = _mask_floor_colours(got_g, want_g)
    ok = (got_g == want_g).reshape(n, -1).all(1) & (got_c == want_c).all(1)
    assert ok.all(), f"{(~ok).sum()} mismatches, first at {np.flatnonzero(~ok)[:5]} actions {actions[~ok][:5]}"
    changed = (got_g != grids).reshape(n, -1).any(1) | (got_c != carried).any(1)
    for a in range(7):  # every action changes the world somewhere in the sample
        assert changed[actions == a].any()


@pytest.mark.parametrize("box_toggle", ["swap", "recolor"])
def test_step_batch_equals_env_along_trajectories_with_hidden_state(box_toggle):
    """Hidden facts (box contents, the cell under the agent) passed explicitly give exact agreement."""
    env = InteractEnv(objects=8, noise_floors=3, box_toggle=box_toggle)
    rng = np.random.default_rng(3)
    checked = 0
    for ep in range(40):
        obs, _ = env.reset(seed=ep)
        for _ in range(60):
            a = int(rng.choice(7, p=[0.1, 0.1, 0.2, 0.15, 0.15, 0.15, 0.15]))
            fx, fy = env.front_pos
            fwd = env.grid.get(fx, fy)
            inside = EMPTY_CARRIED
            if fwd is not None and fwd.type == "box" and fwd.contains is not None:
                inside = tuple(fwd.contains.encode()[1::-1])
            here = env.grid.get(*env.agent_pos)
            under = (1, 0, 0) if here is None else tuple(here.encode())
            g, c = obs["grid"][None], obs["carried"][None]
            obs, _, term, trunc, _ = env.step(a)
            pg, pc = step_batch(g, c, [a], box_toggle, under=np.array([under]), box_contents=np.array([inside]))
            pg, tg = _mask_floor_colours(pg[0], obs["grid"])
            assert (pg == tg).all() and (pc[0] == obs["carried"]).all(), (ep, a)
            checked += 1
            if term or trunc:
                break
    assert checked > 1000


def test_hand_computed_cases():
    grids, carried = random_states(np.random.default_rng(0), 1, objects=(2, 2), noise_floors=(0, 0))
    g = grids[0]
    g[1:5, 1:5] = (1, 0, 0)
    g[4, 4] = (8, 1, 0)
    g[1, 1] = (AGENT, 0, 0)  # facing right, front cell (2, 1)
    g[2, 1] = (KEY, RED, 0)
    hand_box = np.array([[RED, BOX]])
    empty = np.array([EMPTY_CARRIED])
    # pickup with an empty hand takes the key
    ng, nc = step_batch(g[None], empty, [PICKUP])
    assert tuple(nc[0]) == (RED, KEY) and ng[0, 2, 1, 0] == 1
    # pickup with a full hand does nothing; swap exchanges
    ng, nc = step_batch(g[None], hand_box, [PICKUP])
    assert (ng[0] == g).all() and tuple(nc[0]) == (RED, BOX)
    ng, nc = step_batch(g[None], hand_box, [SWAP])
    assert tuple(nc[0]) == (RED, KEY) and tuple(ng[0, 2, 1]) == (BOX, RED, 0)
    # toggle flips a key's colour; drop needs an empty front cell
    ng, nc = step_batch(g[None], empty, [TOGGLE])
    assert tuple(ng[0, 2, 1]) == (KEY, BLUE, 0)
    ng, nc = step_batch(g[None], hand_box, [DROP])
    assert (ng[0] == g).all()
    # a box in front: swap mode puts the hand into the box, recolor mode flips the box
    g[2, 1] = (BOX, BLUE, 0)
    ng, nc = step_batch(g[None], np.array([[RED, KEY]]), [TOGGLE], "swap")
    assert tuple(nc[0]) == EMPTY_CARRIED and (ng[0] == g).all()
    ng, nc = step_batch(g[None], np.array([[RED, KEY]]), [TOGGLE], "recolor")
    assert tuple(nc[0]) == (RED, KEY) and tuple(ng[0, 2, 1]) == (BOX, RED, 0)


def test_successors_and_bad_input():
    grids, carried = random_states(np.random.default_rng(0), 5)
    sg, sc = successors(grids, carried)
    assert sg.shape == (5, 7, 6, 6, 3) and sc.shape == (5, 7, 2)
    with pytest.raises(ValueError, match="box_toggle"):
        step_batch(grids, carried, np.zeros(5, int), "open")
    with pytest.raises(ValueError, match="actions"):
        step_batch(grids, carried, np.full(5, 7), "swap")
    g = grids.copy()
    g[0, 1:5, 1:5, 0] = 1
    with pytest.raises(ValueError, match="agent"):
        step_batch(g, carried, np.zeros(5, int))


def test_step_batch_does_not_modify_inputs():
    grids, carried = random_states(np.random.default_rng(5), 50)
    g0, c0 = grids.copy(), carried.copy()
    step_batch(grids, carried, np.random.default_rng(0).integers(0, 7, 50))
    assert (grids == g0).all() and (carried == c0).all()
