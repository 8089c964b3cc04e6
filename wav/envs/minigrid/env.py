"""The interactive 6x6 MiniGrid world of the paper (REFERENCE §2), a subclass of Farama's MiniGridEnv.

Description:
    A walled 6x6 room (4x4 interior) with a green goal at (4, 4), N keys/balls/boxes in red or blue,
    k noise floor tiles, and the agent at a random pose. Reaching the goal ends the episode.
Actions:
    0 left, 1 right, 2 forward, 3 pickup, 4 drop, 5 toggle, 6 swap (hand <-> pickable front object).
    Toggle flips a key's or ball's colour red <-> blue; on a box it swaps the hand with the box's hidden
    contents (`box_toggle="swap"`, the tasks and the policy data) or flips the box colour
    (`box_toggle="recolor"`, the published random-play `o6` and noise sets).
Observation:
    {"grid": uint8 (6, 6, 3) full-grid encoding [x, y, (type, colour, state)] with the agent cell
    (10, 0, dir), "carried": int64 (2,) (colour, type), (5, 1) when empty} — the published encoding.
Stochasticity:
    before every step each noise floor re-draws its colour from the six colours with probability 0.25.
Sparse inverse model:
    an action is identifiable from the agent cell, the cell in front of it and the carried object.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_NAMES, IDX_TO_COLOR, IDX_TO_OBJECT
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Ball, Box, Floor, Goal, Key, WorldObj
from minigrid.minigrid_env import MiniGridEnv

from wav.envs.minigrid.dynamics import BOX_TOGGLES, flip_colour
from wav.envs.minigrid.encoding import (
    AGENT,
    BALL,
    BOX,
    EMPTY,
    EMPTY_CARRIED,
    FLOOR,
    GOAL,
    GRID_SIZE,
    KEY,
    N_COLOURS,
    N_TYPES,
    SWAP,
    WALL,
    agent_pose,
)

GOAL_POS = (4, 4)
MAX_STEPS = 144
OBJECT_COLOURS = ("red", "blue")
NOISE_PROB = 0.25


def _flip(colour: str) -> str:
    from minigrid.core.constants import COLOR_TO_IDX

    return IDX_TO_COLOR[int(flip_colour(np.array(COLOR_TO_IDX[colour])))]


class ToggleKey(Key):
    """A key whose toggle flips its colour red <-> blue."""

    def toggle(self, env, pos):
        self.color = _flip(self.color)
        return True


class ToggleBall(Ball):
    """A ball whose toggle flips its colour red <-> blue."""

    def toggle(self, env, pos):
        self.color = _flip(self.color)
        return True


class ToggleBox(Box):
    """A box whose toggle swaps the agent's hand with its contents, or flips its colour (`recolor`)."""

    def toggle(self, env, pos):
        if env.box_toggle == "recolor":
            self.color = _flip(self.color)
        else:
            env.carrying, self.contains = self.contains, env.carrying
            if env.carrying is not None:
                env.carrying.cur_pos = np.array([-1, -1])
        return True


OBJECT_CLASSES = {KEY: ToggleKey, BALL: ToggleBall, BOX: ToggleBox}
KIND_NAMES = ("key", "ball", "box")


def make_object(type_idx: int, colour_idx: int) -> WorldObj:
    """A world object from its (type, colour) encoding (keys, balls and boxes get the WAV toggles)."""
    colour = IDX_TO_COLOR[int(colour_idx)]
    if type_idx in OBJECT_CLASSES:
        return OBJECT_CLASSES[type_idx](colour)
    if type_idx == FLOOR:
        return Floor(colour)
    if type_idx == GOAL:
        return Goal()
    obj = WorldObj.decode(int(type_idx), int(colour_idx), 0)
    if obj is None and type_idx != EMPTY:
        raise ValueError(f"cannot build an object of type {type_idx} ({IDX_TO_OBJECT.get(int(type_idx))})")
    return obj


class InteractEnv(MiniGridEnv):
    """N objects, k noise floors, one goal; see the module docstring.

    Args:
        objects: number of keys/balls/boxes (2..14), kind and colour drawn at random.
        noise_floors: number of noise floor tiles (0..4).
        box_toggle: "swap" (hand <-> box contents) or "recolor" (box colour red <-> blue).
        max_steps: episode length limit (truncation).
    """

    def __init__(self, objects: int = 3, noise_floors: int = 0, box_toggle: str = "swap", max_steps: int = MAX_STEPS, **kwargs: Any):
        if not 2 <= int(objects) <= 14:
            raise ValueError(f"objects must be in 2..14, got {objects}")
        if not 0 <= int(noise_floors) <= 4:
            raise ValueError(f"noise_floors must be in 0..4, got {noise_floors}")
        if int(objects) + int(noise_floors) > 14:
            raise ValueError(f"objects + noise_floors must fit in the 14 free cells, got {objects} + {noise_floors}")
        if box_toggle not in BOX_TOGGLES:
            raise ValueError(f"box_toggle must be one of {BOX_TOGGLES}, got {box_toggle!r}")
        self.n_objects = int(objects)
        self.n_noise_floors = int(noise_floors)
        self.box_toggle = box_toggle
        self.noise_floors: list[Floor] = []
        super().__init__(
            mission_space=MissionSpace(mission_func=self._mission),
            grid_size=GRID_SIZE,
            max_steps=max_steps,
            see_through_walls=True,
            **kwargs,
        )
        self.observation_space = spaces.Dict(
            {
                "grid": spaces.Box(0, 255, (GRID_SIZE, GRID_SIZE, 3), dtype=np.uint8),
                "carried": spaces.Box(0, max(N_TYPES, N_COLOURS), (2,), dtype=np.int64),
            }
        )

    @staticmethod
    def _mission() -> str:
        return "interact with the objects, then reach the goal"

    # -- world generation -------------------------------------------------------------------
    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        self.grid.wall_rect(0, 0, width, height)
        self.put_obj(Goal(), *GOAL_POS)
        self._place_objects()
        self.noise_floors = []
        for _ in range(self.n_noise_floors):
            tile = Floor(self._rand_elem(COLOR_NAMES))
            self.place_obj(tile)
            self.noise_floors.append(tile)
        self.place_agent()

    def _place_objects(self) -> None:
        """Hook for task envs: the default draws N objects of random kind and colour."""
        for _ in range(self.n_objects):
            kind = self._rand_elem(KIND_NAMES)
            colour = self._rand_elem(OBJECT_COLOURS)
            self.place_obj({"key": ToggleKey, "ball": ToggleBall, "box": ToggleBox}[kind](colour))

    # -- dynamics ------------------------------------------------------------------------------
    def step(self, action):
        action = int(action)
        if not 0 <= action <= SWAP:
            raise ValueError(f"action must be in 0..{SWAP}, got {action}")
        for tile in self.noise_floors:
            if self.np_random.random() < NOISE_PROB:
                tile.color = COLOR_NAMES[int(self.np_random.integers(len(COLOR_NAMES)))]
        if action == SWAP:
            fwd = self.grid.get(*self.front_pos)
            if self.carrying is not None and fwd is not None and fwd.can_pickup():
                self.grid.set(*self.front_pos, self.carrying)
                self.carrying.cur_pos = self.front_pos
                self.carrying, fwd.cur_pos = fwd, np.array([-1, -1])
        return super().step(action)  # action 6 is MiniGrid's no-op `done`: bookkeeping only

    # -- observation ---------------------------------------------------------------------------
    def encode_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The published encoding of the current state: ((6, 6, 3) uint8 grid, (2,) int64 carried)."""
        grid = self.grid.encode()
        x, y = self.agent_pos
        grid[x, y] = (AGENT, 0, self.agent_dir)
        carried = np.array(EMPTY_CARRIED if self.carrying is None else self.carrying.encode()[1::-1], dtype=np.int64)
        return grid, carried

    def gen_obs(self):
        grid, carried = self.encode_state()
        return {"grid": grid, "carried": carried}

    # -- put the world in any encoded state ----------------------------------------------------
    def set_state(self, grid: np.ndarray, carried: np.ndarray, under: np.ndarray | None = None, box_contents: dict | None = None):
        """Put the world in the encoded state (grid, carried) and return its observation.

        under: (3,) encoding of the cell beneath the agent (default empty); box_contents maps a box
        position (x, y) to the (colour, type) it holds (default: every box is empty). Floor cells
        become this env's noise floors. The step counter restarts at 0.
        """
        grid = np.asarray(grid)
        if grid.shape != (GRID_SIZE, GRID_SIZE, 3):
            raise ValueError(f"grid must have shape (6, 6, 3), got {grid.shape}")
        x, y, d = (int(v[0]) for v in agent_pose(grid[None]))
        if self.grid is None or self.np_random is None:
            self.reset()
        g = Grid(GRID_SIZE, GRID_SIZE)
        self.noise_floors = []
        for i in range(GRID_SIZE):
            for j in range(GRID_SIZE):
                t, col, _ = (int(v) for v in grid[i, j])
                if t == AGENT:
                    t, col = (EMPTY, 0) if under is None else (int(under[0]), int(under[1]))
                obj = None if t == EMPTY else make_object(t, col)
                if t == WALL:
                    obj = WorldObj.decode(t, col, 0)
                if obj is not None:
                    g.set(i, j, obj)
                    obj.cur_pos = (i, j)
                    if t == FLOOR:
                        self.noise_floors.append(obj)
                    if t == BOX and box_contents and (i, j) in box_contents:
                        cc, ct = box_contents[(i, j)]
                        obj.contains = make_object(int(ct), int(cc))
        self.grid = g
        self.agent_pos, self.agent_dir = (x, y), d
        col, typ = (int(v) for v in np.asarray(carried).reshape(2))
        self.carrying = None if typ == EMPTY else make_object(typ, col)
        self.step_count = 0
        return self.gen_obs()
