"""Metrics of REFERENCE §3 on hand-computed cases: dynamic accuracy, per-action accuracy, subgoal
validity and coverage, and the model runners with the true-dynamics oracles."""

import numpy as np
import torch

from wav.envs.minigrid.encoding import (
    AGENT, BLUE, BOX, EMPTY, EMPTY_CARRIED, FLOOR, GOAL, GREEN, GREY, KEY, PICKUP, RED, WALL, N_FEATURES, to_features,
)
from wav.envs.minigrid.oracles import TrueInverseModel, TrueSubgoalGenerator, TrueWorldModel
from wav.envs.minigrid.states import random_states
from wav.evaluate import (
    dynamic_accuracy, dynamic_counts, execute, inverse_metrics, onto_goal, per_action_accuracy,
    per_action_dynamic_accuracy, subgoal_metrics, subgoal_quality, true_successors, world_model_metrics,
)
from wav.data.io import Transitions


def _room(agent=(1, 1, 0), objects=(), floors=(), carried=EMPTY_CARRIED):
    """One hand-made state as (D,) features: walls, goal at (4, 4), agent (x, y, dir), objects (x, y, type, colour)."""
    g = np.zeros((6, 6, 3), np.uint8)
    g[..., 0] = EMPTY
    g[[0, -1], :] = (WALL, GREY, 0)
    g[:, [0, -1]] = (WALL, GREY, 0)
    g[4, 4] = (GOAL, GREEN, 0)
    for x, y, t, c in objects:
        g[x, y] = (t, c, 0)
    for x, y, c in floors:
        g[x, y] = (FLOOR, c, 0)
    x, y, d = agent
    g[x, y] = (AGENT, 0, d)
    return to_features(g[None], np.array([carried]))[0]


def test_dynamic_items_count_changed_cells_and_the_hand_but_not_floor_noise():
    s = _room(objects=[(2, 1, KEY, RED)], floors=[(3, 3, RED)])
    sn = _room(objects=[], floors=[(3, 3, BLUE)], carried=(RED, KEY))  # picked the key up; a floor re-coloured
    s, sn = s[None], sn[None]
    # one dynamic cell (the key's) + the hand; the floor (floor in both) is not an item
    assert dynamic_counts(s, sn, sn) == (np.array([2]), np.array([2]))
    assert dynamic_counts(s, sn, s) == (np.array([0]), np.array([2]))
    half = sn.copy()
    half[0, -2:] = s[0, -2:]  # the cell right, the hand wrong
    assert dynamic_accuracy(s, sn, half) == 0.5
    wrong_state_channel = sn.copy()
    wrong_state_channel[0, (2 * 6 + 1) * 3 + 2] = 1  # one channel of the dynamic cell wrong -> the cell is wrong
    assert dynamic_accuracy(s, sn, wrong_state_channel) == 0.5
    assert np.isnan(dynamic_accuracy(s, s, s))


def test_dynamic_accuracy_pools_items_over_transitions():
    a, an = _room(agent=(1, 1, 0))[None], _room(agent=(1, 1, 1))[None]  # a turn: one item
    b = _room(objects=[(2, 1, KEY, RED)])[None]
    bn = _room(carried=(RED, KEY))[None]  # a pickup: two items
    s, sn = np.concatenate([a, b]), np.concatenate([an, bn])
    pred = np.concatenate([an, b])  # first right (1 item), second all wrong (0 of 2)
    assert dynamic_accuracy(s, sn, pred) == 1 / 3
    assert per_action_dynamic_accuracy(s, np.array([1, PICKUP]), sn, pred) == {"right": 1.0, "pickup": 0.0}


def test_per_action_accuracy():
    true = np.array([0, 0, 3, 3, 3, 6])
    inferred = np.array([0, 1, 3, 3, 5, 6])
    assert per_action_accuracy(true, inferred) == {"left": 0.5, "pickup": 2 / 3, "swap": 1.0}


def test_true_successors_of_a_hand_made_state():
    s = _room(agent=(1, 1, 0), objects=[(2, 1, KEY, RED)])[None]
    succ = true_successors(s)
    assert succ.shape == (1, 7, N_FEATURES)
    assert tuple(succ[0, PICKUP, -2:]) == (RED, KEY)
    assert (succ[0, 2] == s[0]).all()  # forward into the key: blocked
    box = _room(agent=(1, 1, 0), objects=[(2, 1, BOX, RED)])[None]
    assert succ.dtype == np.int64 and execute(box, np.array([5]), "recolor")[0, (2 * 6 + 1) * 3 + 1] == BLUE


def test_subgoal_quality_by_hand():
    s = np.zeros((1, 4), np.int64)
    succ = np.array([[[0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    samples = np.array([[[1, 0, 0, 0], [1, 0, 0, 0], [9, 0, 0, 0], [0, 0, 0, 0]]])
    q = subgoal_quality(s, samples, succ)
    # valid: 3 of 4; distinct successors other than s: {1, 2}; hit: {1}
    assert q["validity"] == 0.75 and q["coverage"] == 0.5 and q["n_targets"] == 2
    exclude = np.array([[False, False, False, True, False, False, False]])  # drop successor 2
    assert subgoal_quality(s, samples, succ, exclude)["coverage"] == 1.0


def test_onto_goal_marks_the_terminal_move():
    s = _room(agent=(4, 3, 1))[None]  # facing down onto the goal at (4, 4)
    assert onto_goal(s, true_successors(s)).tolist() == [[False, False, True, False, False, False, False]]


def _transitions(n=40, box_toggle="swap"):
    g, c = random_states(np.random.default_rng(0), n)
    s = to_features(g, c)
    a = np.arange(n) % 7
    sn = execute(s, a, box_toggle)
    from wav.envs.minigrid.encoding import from_features

    ng, nc = from_features(sn)
    return Transitions.from_arrays(g, c, a, ng, nc)


def test_runners_score_the_true_models_perfectly():
    tr = _transitions()
    wm = world_model_metrics(TrueWorldModel(), tr)
    assert wm["dynamic_accuracy"] == 1.0 and all(v == 1.0 for v in wm["per_action"].values())
    inv = inverse_metrics(_OracleWithMask(), tr)
    assert inv["dynamic_accuracy"] == 1.0 and inv["mask_size"] == N_FEATURES
    states, _ = tr.features()
    sg = subgoal_metrics(TrueSubgoalGenerator(), states, k=16)
    assert sg["validity"] == 1.0
    assert subgoal_metrics(_Enumerating(), states, k=14)["coverage"] == 1.0


class _Enumerating:
    """Every true successor, twice."""

    def sample(self, states, k, generator=None):
        return torch.from_numpy(true_successors(states.numpy())).repeat(1, 2, 1)[:, :k]


class _OracleWithMask(TrueInverseModel):
    def infer_with_mask(self, states, next_states):
        return self.infer(states, next_states), torch.ones(len(states), N_FEATURES)
