"""The three delivery/matching tasks of the paper and the multi-task env that picks one per episode.

Each task env overrides one hook of InteractEnv (`_place_objects`: one key, one ball, one box, colours
red/blue at random) and defines when the task is done; reaching the goal ends the episode, and the
reward (MiniGrid's 1 - 0.9 t/T) is paid only if the task is done then (`info["success"]`).

Key Delivery: the key goes into a box of its colour, the ball ends next to the box in the box's colour.
Ball Delivery: the same with ball and key exchanged.
Object Matching: key and ball both end next to the box, both in the box's colour.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wav.envs.minigrid.env import InteractEnv, ToggleBall, ToggleBox, ToggleKey, OBJECT_COLOURS

TASKS = ("key_delivery", "ball_delivery", "object_matching")


class TaskEnv(InteractEnv):
    """One key, one ball, one box; `task` is the task of the current episode.

    `distractors` extra objects (kind and colour at random) and `noise_floors` noise floor tiles make a
    harder world for the same tasks (the published task envs have neither)."""

    task: str = "key_delivery"

    def __init__(self, box_toggle: str = "swap", distractors: int = 0, noise_floors: int = 0, **kwargs: Any):
        if int(distractors) < 0:
            raise ValueError(f"distractors must be >= 0, got {distractors}")
        self.n_distractors = int(distractors)
        super().__init__(objects=3 + self.n_distractors, noise_floors=noise_floors, box_toggle=box_toggle, **kwargs)

    def _choose_task(self) -> str:
        return self.task

    def _place_objects(self) -> None:
        self.task = self._choose_task()
        self.key = ToggleKey(self._rand_elem(OBJECT_COLOURS))
        self.ball = ToggleBall(self._rand_elem(OBJECT_COLOURS))
        self.box = ToggleBox(self._rand_elem(OBJECT_COLOURS))
        for obj in (self.key, self.ball, self.box):
            self.place_obj(obj)
        self.distractors = []
        for _ in range(self.n_distractors):
            kind = self._rand_elem(("key", "ball", "box"))
            self.distractors.append({"key": ToggleKey, "ball": ToggleBall, "box": ToggleBox}[kind](self._rand_elem(OBJECT_COLOURS)))
            self.place_obj(self.distractors[-1])

    # -- task predicates -------------------------------------------------------------------------
    def _on_grid_next_to_box(self, obj) -> bool:
        if obj is self.carrying or self.box is self.carrying or obj.cur_pos is None or self.box.cur_pos is None:
            return False
        if self.grid.get(*obj.cur_pos) is not obj or self.grid.get(*self.box.cur_pos) is not self.box:
            return False
        return int(np.abs(np.subtract(obj.cur_pos, self.box.cur_pos)).sum()) == 1

    def _delivered(self, inside, outside) -> bool:
        return (
            self.box.contains is inside
            and inside.color == self.box.color
            and self._on_grid_next_to_box(outside)
            and outside.color == self.box.color
        )

    def task_done(self) -> bool:
        if self.task == "key_delivery":
            return self._delivered(self.key, self.ball)
        if self.task == "ball_delivery":
            return self._delivered(self.ball, self.key)
        return all(self._on_grid_next_to_box(o) and o.color == self.box.color for o in (self.key, self.ball))

    def _reward(self) -> float:
        return super()._reward() if self.task_done() else 0.0

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info = dict(info, task=self.task, success=bool(terminated and self.task_done()))
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return obs, dict(info, task=self.task)


class KeyDeliveryEnv(TaskEnv):
    task = "key_delivery"


class BallDeliveryEnv(TaskEnv):
    task = "ball_delivery"


class ObjectMatchingEnv(TaskEnv):
    task = "object_matching"


class MultiTaskEnv(TaskEnv):
    """Draws the task of each episode uniformly from `tasks` (default: all three)."""

    def __init__(self, tasks: tuple[str, ...] = TASKS, **kwargs: Any):
        bad = [t for t in tasks if t not in TASKS]
        if bad or not tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tasks}")
        self.tasks = tuple(tasks)
        super().__init__(**kwargs)

    def _choose_task(self) -> str:
        return self._rand_elem(self.tasks)
