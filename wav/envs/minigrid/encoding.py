"""The published MiniGrid state encoding (REFERENCE §2): a full-grid `Grid.encode()` plus the carried object.

A grid is uint8 `(..., W, H, 3)` indexed `[x, y, channel]` with channels (type, colour, state);
carried is int64 `(..., 2)` = (colour, type), `(5, 1)` when the hand is empty. The agent cell is
`(10, 0, dir)` and hides what it stands on. Models see a state as one flat feature vector
`(..., W*H*3 + 2)` (see :func:`to_features`).
"""

from __future__ import annotations

import numpy as np
from minigrid.core.constants import COLOR_TO_IDX, DIR_TO_VEC, OBJECT_TO_IDX

GRID_SIZE = 6
N_CHANNELS = 3
N_CELLS = GRID_SIZE * GRID_SIZE
N_FEATURES = N_CELLS * N_CHANNELS + 2  # grid channels + (carried colour, carried type)

# Index ranges of the three channels and the carried entries (exclusive upper bounds).
N_TYPES = 11  # unseen .. agent
N_COLOURS = 6
N_STATES = 4  # open/closed/locked for doors, 0..3 for the agent direction

EMPTY = OBJECT_TO_IDX["empty"]
WALL = OBJECT_TO_IDX["wall"]
FLOOR = OBJECT_TO_IDX["floor"]
KEY = OBJECT_TO_IDX["key"]
BALL = OBJECT_TO_IDX["ball"]
BOX = OBJECT_TO_IDX["box"]
GOAL = OBJECT_TO_IDX["goal"]
AGENT = OBJECT_TO_IDX["agent"]
RED = COLOR_TO_IDX["red"]
GREEN = COLOR_TO_IDX["green"]
BLUE = COLOR_TO_IDX["blue"]
GREY = COLOR_TO_IDX["grey"]
PICKABLE = (KEY, BALL, BOX)

EMPTY_CARRIED = (GREY, EMPTY)  # (colour, type) of an empty hand
DIR_VEC = np.array(DIR_TO_VEC, dtype=np.int64)  # (4, 2) (dx, dy) per direction

ACTION_NAMES = ("left", "right", "forward", "pickup", "drop", "toggle", "swap")
N_ACTIONS = len(ACTION_NAMES)
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, SWAP = range(N_ACTIONS)


def to_features(grids: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """(N, W, H, 3) grid + (N, 2) carried -> (N, W*H*3 + 2) int64 feature rows."""
    grids = np.asarray(grids)
    n = grids.shape[0]
    flat = grids.reshape(n, -1).astype(np.int64)  # (N, W*H*3), x-major then y then channel
    return np.concatenate([flat, np.asarray(carried, dtype=np.int64).reshape(n, 2)], axis=1)


def from_features(features: np.ndarray, grid_size: int = GRID_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_features`: (N, W*H*3 + 2) -> ((N, W, H, 3) uint8, (N, 2) int64)."""
    features = np.asarray(features)
    n = features.shape[0]
    grids = features[:, :-2].reshape(n, grid_size, grid_size, N_CHANNELS).astype(np.uint8)
    return grids, features[:, -2:].astype(np.int64)


def agent_pose(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agent (x, y, dir) for each grid of a batch (N, W, H, 3); each grid must hold exactly one agent."""
    is_agent = grids[..., 0] == AGENT  # (N, W, H)
    counts = is_agent.reshape(len(grids), -1).sum(1)
    if not np.all(counts == 1):
        bad = int(np.flatnonzero(counts != 1)[0])
        raise ValueError(f"state {bad} has {int(counts[bad])} agent cells; exactly one is required")
    flat = is_agent.reshape(len(grids), -1).argmax(1)  # (N,) index into W*H
    h = grids.shape[2]
    x, y = flat // h, flat % h
    d = grids[np.arange(len(grids)), x, y, 2].astype(np.int64)
    return x, y, d
