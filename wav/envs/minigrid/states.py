"""Random encoded states: any layout of objects, floors, agent pose and hand (for tests and probes)."""

from __future__ import annotations

import numpy as np

from wav.envs.minigrid.encoding import AGENT, BALL, BLUE, BOX, EMPTY, EMPTY_CARRIED, FLOOR, GOAL, GREEN, GRID_SIZE, KEY, RED, WALL, GREY

INTERIOR = [(x, y) for x in range(1, GRID_SIZE - 1) for y in range(1, GRID_SIZE - 1) if (x, y) != (4, 4)]


def random_states(rng: np.random.Generator, n: int, objects=(2, 14), noise_floors=(0, 4)) -> tuple[np.ndarray, np.ndarray]:
    """n random encoded states ((n, 6, 6, 3) uint8, (n, 2) int64), each with walls, the goal at (4, 4),
    a random number of red/blue keys, balls and boxes, noise floors, the agent, and a random hand."""
    grids = np.zeros((n, GRID_SIZE, GRID_SIZE, 3), np.uint8)
    grids[..., 0] = EMPTY
    grids[:, [0, -1], :, :] = (WALL, GREY, 0)
    grids[:, :, [0, -1], :] = (WALL, GREY, 0)
    grids[:, 4, 4] = (GOAL, GREEN, 0)
    carried = np.tile(np.array(EMPTY_CARRIED, np.int64), (n, 1))
    for i in range(n):
        k = int(rng.integers(noise_floors[0], noise_floors[1] + 1))
        m = int(rng.integers(objects[0], min(objects[1], len(INTERIOR) - 1 - k) + 1))
        cells = rng.permutation(len(INTERIOR))[: m + k + 1]
        for j, c in enumerate(cells):
            x, y = INTERIOR[c]
            if j == 0:
                grids[i, x, y] = (AGENT, 0, rng.integers(4))
            elif j <= m:
                grids[i, x, y] = (rng.choice([KEY, BALL, BOX]), rng.choice([RED, BLUE]), 0)
            else:
                grids[i, x, y] = (FLOOR, rng.integers(6), 0)
        if rng.random() < 0.5:
            carried[i] = (rng.choice([RED, BLUE]), rng.choice([KEY, BALL, BOX]))
    return grids, carried
