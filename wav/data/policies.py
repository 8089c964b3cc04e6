"""Behaviour policies that generate the MiniGrid data (REFERENCE §2): BFS-scripted task policies and
balanced random play.

Policies read the env's true state (`env.unwrapped`: grid, agent pose, carried object, and for the
tasks the `key`, `ball` and `box` attributes) and draw every random choice from the
`np.random.Generator` they are built with. The planner is a breadth-first search over agent poses
(x, y, dir) that ends FACING a target cell; searches are cached by (obstacles, pose), so a policy
step costs a few dictionary look-ups once the cache is warm.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

import numpy as np

from wav.envs.minigrid.encoding import (
    DIR_VEC,
    DROP,
    FORWARD,
    GRID_SIZE,
    LEFT,
    N_ACTIONS,
    PICKUP,
    RIGHT,
    SWAP,
    TOGGLE,
)

GOAL_CELL = (4, 4)
_N_POSES = GRID_SIZE * GRID_SIZE * 4
_DX = tuple(int(v) for v in DIR_VEC[:, 0])
_DY = tuple(int(v) for v in DIR_VEC[:, 1])


class Policy(Protocol):
    """A behaviour policy: `reset` at the start of each episode, then one `act` per step."""

    def reset(self, env) -> None:
        """Start a new episode of `env` (the unwrapped MiniGrid env, already reset)."""

    def act(self, env) -> int:
        """The action (0..6) to take in the env's current state."""


# -- the planner ---------------------------------------------------------------------------------
def _cell(x: int, y: int) -> int:
    return x * GRID_SIZE + y


def _pose(x: int, y: int, d: int) -> int:
    return _cell(x, y) * 4 + d


@lru_cache(maxsize=1 << 17)
def _bfs(blocked: int, x: int, y: int, d: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shortest action sequences from pose (x, y, d) to every pose; bit `_cell(x, y)` of `blocked`
    marks a cell the agent may not enter. Returns (distance, first action) per pose index, -1 when
    the pose is unreachable."""
    start = _pose(x, y, d)
    dist = [-1] * _N_POSES
    first = [-1] * _N_POSES
    dist[start] = 0
    queue = [start]
    for p in queue:  # the list grows while we iterate: a FIFO queue without deque overhead
        cell, dd = divmod(p, 4)
        cx, cy = divmod(cell, GRID_SIZE)
        moves = [(cell * 4 + (dd - 1) % 4, LEFT), (cell * 4 + (dd + 1) % 4, RIGHT)]
        nx, ny = cx + _DX[dd], cy + _DY[dd]
        if 0 <= nx < GRID_SIZE and 0 <= ny < GRID_SIZE and not (blocked >> _cell(nx, ny)) & 1:
            moves.append((_pose(nx, ny, dd), FORWARD))
        for q, a in moves:
            if dist[q] < 0:
                dist[q] = dist[p] + 1
                first[q] = a if p == start else first[p]
                queue.append(q)
    return tuple(dist), tuple(first)


def facing_poses(target: tuple[int, int]) -> list[tuple[int, int, int]]:
    """The (x, y, dir) poses inside the grid whose front cell is `target`."""
    tx, ty = target
    out = []
    for d in range(4):
        x, y = tx - _DX[d], ty - _DY[d]
        if 0 <= x < GRID_SIZE and 0 <= y < GRID_SIZE:
            out.append((x, y, d))
    return out


class Planner:
    """BFS over (pos, dir) on a fixed obstacle mask: how far, and which first action, to face a cell."""

    def __init__(self, blocked: int, pose: tuple[int, int, int]):
        self.blocked, self.pose = blocked, pose
        self.dist, self.first = _bfs(blocked, *pose)

    def face(self, target: tuple[int, int]) -> tuple[int, int, tuple[int, int, int] | None]:
        """(steps, first action, end pose) of the shortest way to face `target`; steps -1 if none.
        The first action is -1 when the agent already faces it."""
        best, best_pose = -1, None
        for x, y, d in facing_poses(target):
            if (self.blocked >> _cell(x, y)) & 1:
                continue
            k = self.dist[_pose(x, y, d)]
            if k >= 0 and (best < 0 or k < best):
                best, best_pose = k, (x, y, d)
        if best_pose is None:
            return -1, -1, None
        return best, self.first[_pose(*best_pose)], best_pose


def blocked_mask(env) -> int:
    """Bit mask of the cells the agent must not walk into: walls, objects, and the goal (entering it
    ends the episode). Noise floors are walkable."""
    mask = 0
    grid = env.grid.grid  # flat list indexed y * width + x
    w = env.grid.width
    for k, obj in enumerate(grid):
        if obj is not None and obj.type != "floor":
            y, x = divmod(k, w)
            mask |= 1 << _cell(x, y)
    return mask


def _pos(obj) -> tuple[int, int]:
    return int(obj.cur_pos[0]), int(obj.cur_pos[1])


def _on_grid(env, obj) -> bool:
    return obj.cur_pos is not None and int(obj.cur_pos[0]) >= 0 and env.grid.get(*_pos(obj)) is obj


def _adjacent(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


# -- the task policies ----------------------------------------------------------------------------
class _TaskPolicy:
    """Shared machinery: the planner on the current state, 'face X then do A', drop-cell choice."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._dir_order: tuple[int, ...] = (0, 1, 2, 3)

    def reset(self, env) -> None:
        # Ties between equally near drop cells are broken in an order drawn once per episode.
        self._dir_order = tuple(int(v) for v in self.rng.permutation(4))

    def _planner(self, env) -> Planner:
        x, y = env.agent_pos
        return Planner(blocked_mask(env), (int(x), int(y), int(env.agent_dir)))

    def _do_at(self, plan: Planner, target: tuple[int, int], action: int) -> int | None:
        """Walk to face `target`, then `action`; None if `target` cannot be faced."""
        steps, first, _ = plan.face(target)
        if steps < 0:
            return None
        return action if steps == 0 else first

    def _go_to_goal(self, env, plan: Planner, movable=()) -> int | None:
        """Walk onto the goal; if objects wall it in, pick up one of `movable` that frees the way
        (the task's drop rule then puts it back next to the box)."""
        a = self._do_at(plan, GOAL_CELL, FORWARD)
        return a if a is not None else self._clear_way(env, plan, GOAL_CELL, movable)

    def _drop_at_best(self, env, plan: Planner, cells, keep_faceable: tuple[int, int] | None = None) -> int | None:
        """Drop the carried object on the nearest of `cells` that is free and faceable, whose filling
        does not cut the agent off from the goal (unless it is cut off already: other objects may
        still move away) nor, when given, from facing `keep_faceable`."""
        goal_now = plan.face(GOAL_CELL)[0] >= 0
        best = None
        for c in cells:
            if env.grid.get(*c) is not None:
                continue
            steps, first, end = plan.face(c)
            if steps < 0 or (best is not None and steps >= best[0]):
                continue
            after = Planner(plan.blocked | (1 << _cell(*c)), end)
            if goal_now and after.face(GOAL_CELL)[0] < 0:
                continue
            if keep_faceable is not None and after.face(keep_faceable)[0] < 0:
                continue
            best = (steps, first)
        if best is None:
            return None
        return DROP if best[0] == 0 else best[1]

    def _drop_next_to(self, env, plan: Planner, anchor: tuple[int, int]) -> int | None:
        """Drop the carried object on the nearest free cell next to `anchor`."""
        cells = [(anchor[0] + _DX[d], anchor[1] + _DY[d]) for d in self._dir_order]
        return self._drop_at_best(env, plan, cells)

    def _relocate(self, env, plan: Planner, target: tuple[int, int]) -> int | None:
        """Drop the carried object (picked up to clear the way) anywhere that leaves `target` faceable."""
        cells = [(x, y) for x in range(1, GRID_SIZE - 1) for y in range(1, GRID_SIZE - 1)]
        return self._drop_at_best(env, plan, cells, keep_faceable=target)

    def _clear_way(self, env, plan: Planner, target: tuple[int, int], movable) -> int | None:
        """`target` cannot be faced: pick up the nearest of the `movable` objects whose removal opens
        a way to it (the hand must be empty)."""
        best = None
        for obj in (*movable, *getattr(env, "distractors", ())):  # distractor objects may always be moved away
            if not _on_grid(env, obj):
                continue
            steps, first, _ = plan.face(_pos(obj))
            if steps < 0 or (best is not None and steps >= best[0]):
                continue
            opened = Planner(plan.blocked & ~(1 << _cell(*_pos(obj))), plan.pose)
            if opened.face(target)[0] >= 0:
                best = (steps, first)
        if best is None:
            return None
        return PICKUP if best[0] == 0 else best[1]

    def _fallback(self, env) -> int:
        """No plan exists (the agent is walled in by objects): turn, at random."""
        return int(self.rng.integers(2))  # LEFT or RIGHT

    def act(self, env) -> int:
        env = env.unwrapped
        plan = self._planner(env)
        if env.carrying is not None and any(env.carrying is d for d in getattr(env, "distractors", ())):
            a = self._relocate(env, plan, GOAL_CELL)  # a distractor picked up to clear the way: put it down again
            a = self._drop_at_best(env, plan, [(x, y) for x in range(1, GRID_SIZE - 1) for y in range(1, GRID_SIZE - 1)]) if a is None else a
        else:
            a = self._act(env, plan)
        return self._fallback(env) if a is None else int(a)

    def _act(self, env, plan: Planner) -> int | None:
        raise NotImplementedError


class DeliveryPolicy(_TaskPolicy):
    """Key Delivery (inside=key, outside=ball) or Ball Delivery (inside=ball, outside=key).

    Toggle `inside` until it has the box's colour -> pick it up -> face the box, toggle (it goes
    into the box) -> pick up the box -> face `outside`, swap (outside to hand, box to grid) -> drop
    `outside` on a free cell next to the box -> if its colour differs from the box's, toggle it ->
    go to the goal.
    """

    def __init__(self, rng: np.random.Generator, inside: str, outside: str):
        super().__init__(rng)
        self.inside, self.outside = inside, outside
        self._swapped = False

    def reset(self, env) -> None:
        super().reset(env)
        self._swapped = False

    def _act(self, env, plan: Planner) -> int | None:
        inside, outside, box = getattr(env, self.inside), getattr(env, self.outside), env.box
        hand = env.carrying
        if box.contains is not inside:  # stage 1: put `inside` into the box
            if hand is inside:
                return self._do_at(plan, _pos(box), TOGGLE)
            if hand is not None:  # an object picked up to clear the way to `inside`
                return self._relocate(env, plan, _pos(inside))
            action = TOGGLE if inside.color != box.color else PICKUP
            a = self._do_at(plan, _pos(inside), action)
            return a if a is not None else self._clear_way(env, plan, _pos(inside), (outside, box))
        if hand is box:  # stage 2: carry the box to `outside` and exchange them
            return self._do_at(plan, _pos(outside), SWAP)
        if hand is outside:
            self._swapped = True
            return self._drop_next_to(env, plan, _pos(box))
        if hand is None and not self._swapped:
            return self._do_at(plan, _pos(box), PICKUP)
        if hand is None and _on_grid(env, outside):  # stage 3: recolour `outside`, then the goal
            if outside.color != box.color:
                return self._do_at(plan, _pos(outside), TOGGLE)
            return self._go_to_goal(env, plan, movable=(outside,))
        return None


class ObjectMatchingPolicy(_TaskPolicy):
    """Object Matching: for key and ball in random order, match its colour to the box's (before the
    pickup or after the drop, at random), carry it next to the box and drop it; then the goal."""

    def __init__(self, rng: np.random.Generator):
        super().__init__(rng)
        self._order: tuple[str, ...] = ("key", "ball")
        self._match_before: dict[str, bool] = {}

    def reset(self, env) -> None:
        super().reset(env)
        self._order = ("key", "ball") if self.rng.random() < 0.5 else ("ball", "key")
        self._match_before = {name: bool(self.rng.random() < 0.5) for name in self._order}

    def _act(self, env, plan: Planner) -> int | None:
        box, hand = env.box, env.carrying
        if hand is not None and hand is not box:
            return self._drop_next_to(env, plan, _pos(box))
        box_pos = _pos(box)
        todo = []  # (object, action) in this episode's order, for the objects not yet matched
        for name in self._order:
            obj = getattr(env, name)
            placed = _on_grid(env, obj) and _adjacent(_pos(obj), box_pos)
            if placed and obj.color == box.color:
                continue
            toggle = placed or (self._match_before[name] and obj.color != box.color)
            todo.append((obj, TOGGLE if toggle else PICKUP))
        if hand is box:  # picked up to clear the way to todo[0]
            return self._relocate(env, plan, _pos(todo[0][0]))
        if not todo:
            return self._go_to_goal(env, plan, movable=(env.key, env.ball))
        for obj, action in todo:  # an object walled in by the other one waits for it
            a = self._do_at(plan, _pos(obj), action)
            if a is not None:
                return a
        return self._clear_way(env, plan, _pos(todo[0][0]), (box,))


class MultiTaskPolicy:
    """The scripted policy of the episode's task (`env.unwrapped.task`)."""

    def __init__(self, rng: np.random.Generator):
        self.policies = {
            "key_delivery": DeliveryPolicy(rng, "key", "ball"),
            "ball_delivery": DeliveryPolicy(rng, "ball", "key"),
            "object_matching": ObjectMatchingPolicy(rng),
        }
        self.current: Policy | None = None

    def reset(self, env) -> None:
        task = getattr(env.unwrapped, "task", None)
        if task not in self.policies:
            raise ValueError(f"the scripted policy needs a task env (WAV/KeyDelivery-v0, ...); this env has task {task!r}")
        self.current = self.policies[task]
        self.current.reset(env.unwrapped)

    def act(self, env) -> int:
        return self.current.act(env)


# -- balanced random play -------------------------------------------------------------------------
# Action multipliers of the balanced sampler: x10 for pickup/drop/toggle, x100 for swap. REFERENCE §2
# words it "x10 for actions 3-6, x100 more for action 6"; the authors' collector multiplies swap by 100
# in all (not 10 x 100), and only that reproduces the published action balance (o6 train: swap 298 of
# 2,000; with x1000 swap takes half of all steps).
RANDOM_PLAY_MULTIPLIERS = np.array([1, 1, 1, 10, 10, 10, 100], dtype=np.float64)
_PICKABLE_TYPES = ("key", "ball", "box")


def allowed_actions(env) -> np.ndarray:
    """(7,) bool: the actions random play may take in the env's current state.

    left, right always; forward if the front cell is empty; pickup if it holds a key/ball/box and the
    hand is empty; drop if it is empty and the hand is full; toggle if it holds a key/ball/box; swap
    if it holds a key/ball/box and the hand is full. "Empty" means no object at all, so random play
    never walks onto noise floors or the goal (an episode ends only by its step limit).
    """
    env = env.unwrapped
    front = env.grid.get(*env.front_pos)
    pickable = front is not None and front.type in _PICKABLE_TYPES
    full = env.carrying is not None
    ok = np.zeros(N_ACTIONS, dtype=bool)
    ok[LEFT] = ok[RIGHT] = True
    ok[FORWARD] = front is None
    ok[PICKUP] = pickable and not full
    ok[DROP] = front is None and full
    ok[TOGGLE] = pickable
    ok[SWAP] = pickable and full
    return ok


class RandomPlayPolicy:
    """Balanced random play: an allowed action with weight `mult_a / (count_a + 1)`, where count_a
    is how often `a` was chosen so far (running over all episodes of this policy object)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.counts = np.zeros(N_ACTIONS, dtype=np.int64)

    def reset(self, env) -> None:
        pass  # the counts run across episodes

    def probabilities(self, env) -> np.ndarray:
        """(7,) sampling probabilities of the actions in the env's current state."""
        w = np.where(allowed_actions(env), RANDOM_PLAY_MULTIPLIERS / (self.counts + 1), 0.0)
        return w / w.sum()

    def act(self, env) -> int:
        cum = np.cumsum(self.probabilities(env))
        a = min(int(np.searchsorted(cum, self.rng.random() * cum[-1], side="right")), N_ACTIONS - 1)
        self.counts[a] += 1
        return a


class UniformPolicy:
    """Every action with probability 1/7 in every state, no-ops included: the action choice of the online
    `random` exploration strategy (unlike `RandomPlayPolicy`, whose object actions always do something)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def reset(self, env) -> None:
        pass

    def act(self, env) -> int:
        return int(self.rng.integers(N_ACTIONS))


POLICIES = {"scripted": MultiTaskPolicy, "random": RandomPlayPolicy, "uniform": UniformPolicy}


def make_policy(name: str, rng: np.random.Generator) -> Policy:
    """A policy by name ("scripted": the task's BFS policy; "random": balanced random play over allowed
    actions; "uniform": any action with probability 1/7)."""
    if name not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {name!r}")
    return POLICIES[name](rng)
