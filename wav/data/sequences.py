"""Trajectories -> the batches that the robot-side models train on (REFERENCE §6, ROBOT.md §4.2, §5.1):
T-step `SequenceBatch` windows for the RSSM (`Windows`) and 2-frame-context triples for the latent inverse
model (`inverse_triples`, fitted through `wav.train.Rows`); `Windows` keeps the shared fitting loop's sampler
contract (`len`, `split`, `epoch`, `chunks`). Also a synthetic linear-Gaussian world for tests and benchmarks.

A trajectory is a pair (states (T_i + 1, D) float32, actions (T_i, A) in [-1, 1]); action t moves
states[t] to states[t + 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from wav.types import SequenceBatch

Trajectory = tuple[np.ndarray, np.ndarray]  # (states (T+1, D), actions (T, A))


@dataclass(frozen=True)
class ImageSequenceBatch(SequenceBatch):
    """A `SequenceBatch` with camera images, for an RSSM with `image_channels`: images (B, T, C, 64, 64) in [0, 1]."""

    images: Tensor


def check_trajectories(trajectories: Sequence[Trajectory]) -> tuple[int, int]:
    """Validate shapes, finiteness and the action range; returns (D, A)."""
    if not trajectories:
        raise ValueError("no trajectories")
    d = a = None
    for i, (s, act) in enumerate(trajectories):
        s, act = np.asarray(s), np.asarray(act)
        if s.ndim != 2 or act.ndim != 2 or len(s) != len(act) + 1 or len(act) < 1:
            raise ValueError(f"trajectory {i}: states must be (T+1, D) and actions (T, A), T >= 1; got {s.shape} and {act.shape}")
        if d is None:
            d, a = s.shape[1], act.shape[1]
        if (s.shape[1], act.shape[1]) != (d, a):
            raise ValueError(f"trajectory {i}: (D, A) = {(s.shape[1], act.shape[1])}, the first trajectory has {(d, a)}")
        if not (np.isfinite(s).all() and np.isfinite(act).all()):
            raise ValueError(f"trajectory {i}: non-finite states or actions")
        if np.abs(act).max() > 1.0 + 1e-6:
            raise ValueError(f"trajectory {i}: actions outside [-1, 1] (max |a| = {np.abs(act).max():.3g})")
    return int(d), int(a)


def stream(trajectories: Sequence[Trajectory]) -> tuple[Tensor, Tensor, Tensor]:
    """All trajectories end to end as one step stream: states (N, D), actions (N, A), is_first (N,) bool,
    N = sum(T_i + 1). A trajectory's last state gets a zero action; it never conditions anything, because
    the next step is an episode start, where the model resets and zeroes the previous action."""
    check_trajectories(trajectories)
    states = torch.cat([torch.as_tensor(np.asarray(s), dtype=torch.float32) for s, _ in trajectories])
    actions = torch.cat([torch.cat([torch.as_tensor(np.asarray(a), dtype=torch.float32), torch.zeros(1, np.shape(a)[1])]) for _, a in trajectories])
    is_first = torch.zeros(len(states), dtype=torch.bool)
    is_first[np.cumsum([0] + [len(s) for s, _ in trajectories[:-1]])] = True
    return states, actions, is_first


def stream_images(trajectories: Sequence[Trajectory], images: Sequence[np.ndarray]) -> Tensor:
    """The trajectories' camera frames end to end, aligned with `stream`'s steps: (N, H, W, C) uint8."""
    if len(images) != len(trajectories):
        raise ValueError(f"{len(images)} image sequences for {len(trajectories)} trajectories")
    for i, ((s, _), im) in enumerate(zip(trajectories, images)):
        im = np.asarray(im)
        if im.ndim != 4 or len(im) != len(s) or im.dtype != np.uint8:
            raise ValueError(f"trajectory {i}: images must be (T+1, H, W, C) uint8 with T+1 = {len(s)}; got {im.shape} {im.dtype}")
    return torch.from_numpy(np.concatenate([np.asarray(im) for im in images]))


def frames_to_float(frames: Tensor) -> Tensor:
    """uint8 frames (..., H, W, C) -> float (..., C, H, W) in [0, 1], the RSSM's image input."""
    return frames.movedim(-1, -3).float() / 255.0


class Windows:
    """T-step windows of a step stream, as `SequenceBatch`es, with the shared fitting loop's sampler contract.

    The items are the windows that tile the stream (starts 0, T, 2T, ..., and one more ending at the
    stream's last step when T does not divide it), so `len` counts windows and `chunks` visits each once.
    `split` deals whole windows to validation; a training epoch draws len(self) windows (in minibatches)
    whose starts are uniform over every offset that stays inside the sampler's own windows, so a training
    window never reads steps dealt only to validation (the tail window may overlap its neighbour). Windows
    may span episodes: `is_first` marks the episode starts, and a model starts every window from its
    initial state.
    """

    def __init__(self, trajectories: Sequence[Trajectory] | None = None, length: int = 32, *, images: Sequence[np.ndarray] | None = None,
                 _stream=None, _starts=None, _images=None):
        self.length = int(length)
        self.states, self.actions, self.is_first = _stream if _stream is not None else stream(trajectories)
        # camera frames (T+1, H, W, C) uint8 per trajectory, streamed like the states; batches then carry them
        self.images = _images if _images is not None else (None if images is None else stream_images(trajectories, images))
        n = len(self.states)
        if n < self.length:
            raise ValueError(f"{n} steps in all, fewer than one window of {self.length}")
        if _starts is None:
            _starts = torch.arange(0, n - self.length + 1, self.length)
            if int(_starts[-1]) + self.length < n:
                _starts = torch.cat([_starts, torch.tensor([n - self.length])])
        self.starts = torch.as_tensor(_starts, dtype=torch.long).sort().values  # (items,)
        self._offsets = self._valid_offsets()

    def _valid_offsets(self) -> Tensor:
        """Every window start inside a run of this sampler's own overlapping or adjacent windows."""
        t, runs, out = self.length, [], []
        for s in self.starts.tolist():
            if runs and s <= runs[-1][1]:
                runs[-1][1] = s + t
            else:
                runs.append([s, s + t])
        for a, b in runs:
            out.append(torch.arange(a, b - t + 1))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.starts)

    def _child(self, starts: Tensor) -> "Windows":
        return Windows(length=self.length, _stream=(self.states, self.actions, self.is_first), _starts=starts, _images=self.images)

    def batch(self, starts: Tensor) -> SequenceBatch:
        """Windows beginning at the given stream positions (B,) -> SequenceBatch of (B, T, ...) (an
        `ImageSequenceBatch` with images (B, T, C, H, W) in [0, 1] when the sampler streams camera frames)."""
        idx = starts[:, None] + torch.arange(self.length)  # (B, T)
        if self.images is not None:
            return ImageSequenceBatch(self.states[idx], self.actions[idx], self.is_first[idx], frames_to_float(self.images[idx]))
        return SequenceBatch(self.states[idx], self.actions[idx], self.is_first[idx])

    def split(self, n_val: int, generator: torch.Generator) -> tuple["Windows", "Windows"]:
        """(train, val): `n_val` windows chosen by ONE permutation drawn from `generator` go to validation."""
        perm = torch.randperm(len(self), generator=generator)
        if not 0 <= n_val <= len(self):
            raise ValueError(f"n_val = {n_val} must lie in [0, {len(self)}]")
        return self._child(self.starts[perm[n_val:]]), self._child(self.starts[perm[:n_val]])

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[SequenceBatch]]:
        """len(self) random windows in minibatches of `batch_size` (the last one smaller), each `(SequenceBatch,)`."""
        for i in range(0, len(self), batch_size):
            pick = torch.randint(len(self._offsets), (min(batch_size, len(self) - i),), generator=generator)
            yield (self.batch(self._offsets[pick]),)

    def chunks(self, size: int) -> Iterator[tuple[SequenceBatch]]:
        """Every item window once, in stream order, `size` windows per `(SequenceBatch,)`."""
        for i in range(0, len(self), size):
            yield (self.batch(self.starts[i : i + size]),)


def eval_windows(trajectories: Sequence[Trajectory], length: int = 32) -> SequenceBatch:
    """Each trajectory cut into non-overlapping `length`-step chunks (ROBOT.md §4.4), `is_first` at each
    chunk start; a tail shorter than `length` is dropped (a batch needs one T). (B, T, ...)."""
    d, a = check_trajectories(trajectories)
    parts = []
    for s, act in trajectories:
        s = torch.as_tensor(np.asarray(s), dtype=torch.float32)
        act = torch.cat([torch.as_tensor(np.asarray(act), dtype=torch.float32), torch.zeros(1, a)])
        for k in range(0, len(s) - length + 1, length):
            parts.append((s[k : k + length], act[k : k + length]))
    if not parts:
        raise ValueError(f"no trajectory has {length} states")
    states, actions = torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])
    is_first = torch.zeros(states.shape[:2], dtype=torch.bool)
    is_first[:, 0] = True
    return SequenceBatch(states, actions, is_first)


def inverse_triples(trajectories: Sequence[Trajectory]) -> tuple[Tensor, Tensor, Tensor]:
    """Every transition with its 2-frame context: states (N, 2, D) = (s_{t-1}, s_t), actions (N, A) = a_t,
    next_states (N, D) = s_{t+1}. At t = 0 the missing s_{-1} repeats s_0 (no motion before the start)."""
    check_trajectories(trajectories)
    ctx, acts, nxt = [], [], []
    for s, a in trajectories:
        s = torch.as_tensor(np.asarray(s), dtype=torch.float32)
        prev = torch.cat([s[:1], s[:-2]])  # (T, D): s_{t-1}, with s_{-1} := s_0
        ctx.append(torch.stack([prev, s[:-1]], 1))  # (T, 2, D)
        acts.append(torch.as_tensor(np.asarray(a), dtype=torch.float32))
        nxt.append(s[1:])
    return torch.cat(ctx), torch.cat(acts), torch.cat(nxt)


def linear_world(
    n: int, steps: int, rng: np.random.Generator, action_dim: int = 7, distractors: int = 36, noise: float = 0.01
) -> tuple[list[Trajectory], dict[str, slice]]:
    """Synthetic linear-Gaussian manipulation stand-in: `n` trajectories of `steps` actions.

    State = [position (A), velocity (A), distractors]: v' = 0.8 v + 0.5 a, p' = 0.95 p + 0.2 v' (the action
    moves this block only); the distractors rotate in 2-D pairs by a fixed per-pair angle with decay 0.98
    and are driven by noise, never by the action. Actions are smooth random walks clipped to [-1, 1].
    Returns the trajectories and the layout {"ee": slice, "object": slice} of the two blocks.
    """
    a_dim, d_dim = action_dim, distractors + distractors % 2
    angles = np.linspace(0.1, 0.6, d_dim // 2)
    rot = np.zeros((d_dim, d_dim))
    for i, th in enumerate(angles):
        c, s = 0.98 * np.cos(th), 0.98 * np.sin(th)
        rot[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, -s], [s, c]]
    trajs = []
    for _ in range(n):
        p, v, x = rng.normal(0, 0.5, a_dim), np.zeros(a_dim), rng.normal(0, 1.0, d_dim)
        a = rng.uniform(-1, 1, a_dim)
        states, actions = [np.concatenate([p, v, x])], []
        for _ in range(steps):
            a = np.clip(0.5 * a + rng.uniform(-1, 1, a_dim), -1, 1)
            v = 0.8 * v + 0.5 * a + noise * rng.normal(size=a_dim)
            p = 0.95 * p + 0.2 * v
            x = rot @ x + 0.2 * rng.normal(size=d_dim)
            states.append(np.concatenate([p, v, x]))
            actions.append(a)
        trajs.append((np.asarray(states, np.float32), np.asarray(actions, np.float32)))
    return trajs, {"ee": slice(0, 2 * a_dim), "object": slice(2 * a_dim, 2 * a_dim + d_dim)}
