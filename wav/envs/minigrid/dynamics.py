"""The true MiniGrid transition function, vectorised over a batch of encoded states (REFERENCE §2).

`step_batch` is what labels candidate transitions, scores inverse models by executing their actions,
and enumerates true successor sets; tests prove it equal to stepping `InteractEnv`. Two facts the
encoding hides are passed explicitly when known and otherwise take the values a fresh episode has:
what the agent stands on (`under`, default an empty cell) and whether a box holds something
(`box_contents`, default empty). Noise floors are not re-coloured here (their colours are noise).
"""

from __future__ import annotations

import numpy as np

from wav.envs.minigrid.encoding import (
    AGENT,
    BALL,
    BLUE,
    BOX,
    DIR_VEC,
    DROP,
    EMPTY,
    EMPTY_CARRIED,
    FLOOR,
    FORWARD,
    GOAL,
    KEY,
    LEFT,
    PICKUP,
    RED,
    RIGHT,
    SWAP,
    TOGGLE,
    agent_pose,
)

BOX_TOGGLES = ("swap", "recolor")
_WALKABLE = np.zeros(256, bool)
_WALKABLE[[EMPTY, FLOOR, GOAL]] = True
_PICKABLE = np.zeros(256, bool)
_PICKABLE[[KEY, BALL, BOX]] = True


def flip_colour(colours: np.ndarray) -> np.ndarray:
    """Red <-> blue; other colours unchanged (toggle on a key, ball, or box in `recolor` mode)."""
    return np.where(colours == RED, BLUE, np.where(colours == BLUE, RED, colours))


def step_batch(
    grids: np.ndarray,
    carried: np.ndarray,
    actions: np.ndarray,
    box_toggle: str = "swap",
    under: np.ndarray | None = None,
    box_contents: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply one action to each encoded state.

    grids (N, W, H, 3) uint8, carried (N, 2) int64 (colour, type), actions (N,) int in 0..6.
    under: (N, 3) encoding of the cell beneath the agent (default empty).
    box_contents: (N, 2) (colour, type) held by the box in front of the agent (default empty).
    Returns (next_grids (N, W, H, 3) uint8, next_carried (N, 2) int64); inputs are not modified.
    """
    if box_toggle not in BOX_TOGGLES:
        raise ValueError(f"box_toggle must be one of {BOX_TOGGLES}, got {box_toggle!r}")
    grids = np.asarray(grids)
    n = grids.shape[0]
    actions = np.asarray(actions, dtype=np.int64).reshape(n)
    if n and (actions.min() < 0 or actions.max() > SWAP):
        raise ValueError(f"actions must lie in 0..{SWAP}; got {actions.min()}..{actions.max()}")
    g = grids.astype(np.uint8, copy=True)
    c = np.asarray(carried, dtype=np.int64).reshape(n, 2).copy()
    idx = np.arange(n)
    x, y, d = agent_pose(g)
    fx, fy = x + DIR_VEC[d, 0], y + DIR_VEC[d, 1]
    front = g[idx, fx, fy].astype(np.int64)  # (N, 3) type, colour, state of the cell in front
    ftype = front[:, 0]
    hand_empty = c[:, 1] == EMPTY
    empty_cell = np.array([EMPTY, 0, 0], np.uint8)

    # Turning: only the agent's direction channel changes.
    turn = (actions == LEFT) | (actions == RIGHT)
    new_dir = np.where(actions == LEFT, (d - 1) % 4, (d + 1) % 4)
    g[idx[turn], x[turn], y[turn], 2] = new_dir[turn]

    # Forward onto an overlappable cell: reveal what the agent stood on, cover the front cell.
    move = (actions == FORWARD) & _WALKABLE[ftype]
    m = idx[move]
    g[m, x[move], y[move]] = empty_cell if under is None else np.asarray(under, np.uint8).reshape(n, 3)[move]
    g[m, fx[move], fy[move]] = np.stack([np.full(len(m), AGENT), np.zeros(len(m), np.int64), d[move]], 1)

    # Pickup: front pickable and hand empty.
    pick = (actions == PICKUP) & _PICKABLE[ftype] & hand_empty
    c[pick] = front[pick][:, [1, 0]]
    g[idx[pick], fx[pick], fy[pick]] = empty_cell

    # Drop: front empty and hand full.
    drop = (actions == DROP) & (ftype == EMPTY) & ~hand_empty
    dm = idx[drop]
    g[dm, fx[drop], fy[drop]] = np.stack([c[drop, 1], c[drop, 0], np.zeros(len(dm), np.int64)], 1)
    c[drop] = EMPTY_CARRIED

    # Toggle: keys and balls flip colour; a box either swaps the hand with its contents or flips colour.
    tog = actions == TOGGLE
    flip = tog & ((ftype == KEY) | (ftype == BALL) | ((ftype == BOX) & (box_toggle == "recolor")))
    g[idx[flip], fx[flip], fy[flip], 1] = flip_colour(front[flip, 1])
    if box_toggle == "swap":
        boxed = tog & (ftype == BOX)
        inside = np.tile(EMPTY_CARRIED, (n, 1)) if box_contents is None else np.asarray(box_contents, np.int64).reshape(n, 2)
        c[boxed] = inside[boxed]

    # Swap: hand full and front pickable -> exchange them.
    sw = (actions == SWAP) & _PICKABLE[ftype] & ~hand_empty
    sm = idx[sw]
    g[sm, fx[sw], fy[sw]] = np.stack([c[sw, 1], c[sw, 0], np.zeros(len(sm), np.int64)], 1)
    c[sw] = front[sw][:, [1, 0]]
    return g, c


def successors(grids: np.ndarray, carried: np.ndarray, box_toggle: str = "swap") -> tuple[np.ndarray, np.ndarray]:
    """All 7 one-step successors of each state: ((N, 7, W, H, 3), (N, 7, 2))."""
    n = len(grids)
    reps = np.repeat(np.arange(n), 7)  # (N*7,)
    acts = np.tile(np.arange(7), n)
    ng, nc = step_batch(grids[reps], np.asarray(carried)[reps], acts, box_toggle)
    return ng.reshape(n, 7, *grids.shape[1:]), nc.reshape(n, 7, 2)
