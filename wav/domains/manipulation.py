"""The manipulation domain (REFERENCE §6, ROBOT.md §4-6): recorded robot trajectories, the RSSM world model and
the CLAM-style latent sparse inverse model, plugged into the shared verification core through the
`wav.domains.base.Domain` protocol for the pool protocol (a candidate is a whole trajectory).

A dataset is a `TrajectorySet` (trajectories (states (T+1, D), actions (T, A)) and the state layout). One row
of `batch` is one trajectory: states = its recorded states flattened and NaN-padded to (N, (Tmax+1) D);
actions = its recorded actions flattened and NaN-padded to (N, Tmax A); next_states = the same recorded
states (the recorded future is action-free data; the actions are the label that acquiring a trajectory
buys, read only by the privileged strategies). The models here work on those flat rows:

* `RSSMWorldModel` cuts each row into non-overlapping 32-step windows (ROBOT.md §4.4; the last one >= 2
  steps), builds the posterior on each window's first frame and rolls the prior open-loop under the given
  actions; `loss` is the squared error in state units standardised by the warm-up set, averaged over the
  valid steps of all windows of a row. With >= 2 members, `uncertainty`/`disagreement` are the variance of
  the members' open-loop predictions. So `oracle` (true actions), `progress` and `ensemble` work unchanged.
* `TrajectoryInverse.infer(states, next_states)` infers the whole action sequence of a row from consecutive
  recorded frames (2-frame context) with the latent sparse (or dense) inverse model.
* `RecordedFuture` is the pool protocol's subgoal "generator" (ROBOT.md §6.2): a candidate's subgoals are
  its own recorded states, so `wav` and `wav-dense` run through `wav.cycle.verify` unchanged: inferred
  actions from the recorded states, the RSSM rolled under them, score = mismatch to the recorded states.
  In this continuous space the WAV strategies never read the candidate's actions.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from wav.config import TrainConfig
from wav.cycle import Box
from wav.domains.base import PARTS, PoolData
from wav.types import SequenceBatch, TransitionBatch

WINDOW = 32
"""steps of an evaluation / scoring window (ROBOT.md §4.4: the 32-frame open-loop horizon)"""
GROUP_NAMES = ("ee", "robot", "object")
CHUNK = 256  # windows per RSSM call when scoring
SCORE_SPACES = ("state", "latent")
"""where the verification score compares a rollout with the recorded frames: standardised state units, or the
RSSM's latent features (the release's `idm_wm_latent_mismatch_mse`)"""
GUARD_SECONDS = 3600.0
"""time guard of every robot fit: far above what a preset's epochs take, so the epochs (not the machine's load)
decide when a fit stops, and the same seed gives the same model on a busy machine (a guard that does stop a
fit says so on stderr)"""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TrajectorySet:
    """Trajectories (states (T+1, D) float32, actions (T, A) float32) and the state layout
    (`StateLayout.to_dict()`: names, sizes, groups); `images`, when the pool was built with a camera, holds each
    trajectory's frames (T+1, 64, 64, C) uint8 in the same order."""

    trajectories: tuple
    layout: dict
    images: tuple | None = None

    def __len__(self) -> int:
        return len(self.trajectories)

    @staticmethod
    def of(trajectories: Sequence[Any], layout: dict) -> "TrajectorySet":
        """From `wav.data.robot_io.Trajectory` objects or (states, actions) pairs; quaternion features are made
        sign-continuous (`continuous_quaternions`)."""
        pairs = []
        for t in trajectories:
            s, a = (t.states, t.actions) if hasattr(t, "states") else t
            pairs.append((continuous_quaternions(np.asarray(s, np.float32), layout), np.asarray(a, np.float32)))
        images = [getattr(t, "images", None) for t in trajectories]
        has = bool(images) and all(im is not None for im in images)
        return TrajectorySet(tuple(pairs), dict(layout), tuple(np.asarray(im, np.uint8) for im in images) if has else None)

    @property
    def dims(self) -> tuple[int, int]:
        s, a = self.trajectories[0]
        return int(s.shape[1]), int(a.shape[1])

    def group_masks(self) -> dict[str, np.ndarray]:
        """Boolean (D,) mask of each layout group that occurs."""
        groups = np.repeat(np.asarray(self.layout["groups"]), np.asarray(self.layout["sizes"], int))
        return {g: groups == g for g in GROUP_NAMES if (groups == g).any()}


def quaternion_slices(layout: dict) -> list[slice]:
    """The quaternion features of a state layout: a field named `*quat` (4 values) or the last 4 values of a
    7-value `*pose` field (position + quaternion, ManiSkill's `tcp_pose` / `obj_pose`)."""
    out, start = [], 0
    for name, size in zip(layout.get("names", ()), layout.get("sizes", ())):
        size = int(size)
        if (name.endswith("quat") and size == 4) or (name.endswith("pose") and size == 7):
            out.append(slice(start + size - 4, start + size))
        start += size
    return out


def continuous_quaternions(states: np.ndarray, layout: dict) -> np.ndarray:
    """q and -q are the same rotation, and simulators pick the sign by a convention (w >= 0) that flips a
    quaternion's every component when w crosses 0 (PullCube's gripper points down, w ~ 0: 62 flips in the
    `cpu` pool). A world model must then predict a jump of 2 in four features that nothing caused. Here the
    first frame's largest component is made positive and every later frame takes the sign closer to the one
    before, so the features move continuously; the rotation they encode is unchanged."""
    slices = quaternion_slices(layout)
    if not slices or len(states) == 0:
        return states
    out = np.array(states, dtype=np.float32, copy=True)
    for sl in slices:
        q = out[:, sl]  # (T, 4) view
        if q[0, np.argmax(np.abs(q[0]))] < 0:
            q[0] *= -1
        for t in range(1, len(q)):
            if float(q[t] @ q[t - 1]) < 0:
                q[t] *= -1
    return out


_IMAGES: dict[bytes, np.ndarray] = {}
"""camera frames of every trajectory this process has turned into rows (`flat_rows` of a `TrajectorySet` with
images), keyed by the bytes of its states: the verification core hands a world model state rows only, and an
RSSM that reads images finds each row's frames here"""


def _state_key(states: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(states, dtype=np.float32).tobytes()).digest()


def register_images(data: TrajectorySet) -> None:
    """Make `data`'s camera frames findable from its state rows (`row_images`)."""
    for (s, _), im in zip(data.trajectories, data.images or ()):
        _IMAGES[_state_key(s)] = im


def row_images(states: Tensor, state_dim: int) -> list[np.ndarray]:
    """The camera frames (T+1, H, W, C) of each flat state row (N, (Tmax+1) D), NaN padding stripped; a row whose
    trajectory was never registered is refused in one line."""
    out = []
    for i, row in enumerate(states.detach().float().reshape(len(states), -1, state_dim).numpy()):
        s = row[np.isfinite(row).all(-1)]
        im = _IMAGES.get(_state_key(s))
        if im is None or len(im) < len(s):
            raise ValueError(f"this world model reads camera images, and row {i} ({len(s)} states) is not a trajectory of a pool "
                             "read with images (build the pool with `wav robot build --camera`)")
        out.append(im)
    return out


def window_frames(images: list[np.ndarray], rows: Tensor, starts: Tensor, length: int) -> Tensor:
    """Each window's frames from its row's images: (B, length, C, H, W) floats in [0, 1], zero past the row's end."""
    from wav.data.sequences import frames_to_float

    h, w, c = images[0].shape[1:]
    out = np.zeros((len(rows), length, h, w, c), np.uint8)
    for k, (r, t0) in enumerate(zip(rows.tolist(), starts.tolist())):
        part = images[r][t0 : t0 + length]
        out[k, : len(part)] = part
    return frames_to_float(torch.from_numpy(out))


def flat_rows(data: TrajectorySet) -> TransitionBatch:
    """One NaN-padded row per trajectory: states (N, (Tmax+1) D), actions (N, Tmax A), next_states = states.
    With images, the trajectories' frames are registered for the RSSM to find (`row_images`)."""
    if data.images is not None:
        register_images(data)
    if len(data) == 0:
        return TransitionBatch(torch.zeros(0, 0), torch.zeros(0, 0), torch.zeros(0, 0))
    d, a = data.dims
    tmax = max(len(act) for _, act in data.trajectories)
    n = len(data)
    states = np.full((n, tmax + 1, d), np.nan, np.float32)
    actions = np.full((n, tmax, a), np.nan, np.float32)
    for i, (s, act) in enumerate(data.trajectories):
        states[i, : len(s)] = s
        actions[i, : len(act)] = act
    s = torch.from_numpy(states.reshape(n, -1))
    return TransitionBatch(s, torch.from_numpy(actions.reshape(n, -1)), s)


@dataclass(frozen=True)
class Windows32:
    """The non-overlapping windows of flat rows: states (B, W, D) and actions (B, W, A) with NaN padding,
    `row` (B,) the row of each window, `valid` (B, W) which states exist, `start` (B,) the row's frame each
    window starts at."""

    states: Tensor
    actions: Tensor
    row: Tensor
    valid: Tensor
    start: Tensor


def cut_windows(states: Tensor, actions: Tensor, state_dim: int, action_dim: int, length: int = WINDOW) -> Windows32:
    """Cut flat rows into non-overlapping `length`-step windows; a window needs >= 2 recorded states."""
    n = states.shape[0]
    s = states.float().reshape(n, -1, state_dim)  # (N, T+1, D)
    t1 = s.shape[1]
    a = actions.float().reshape(n, -1, action_dim)  # (N, T', A)
    chunks = max(1, math.ceil(t1 / length))
    pad = chunks * length
    sp = torch.full((n, pad, state_dim), float("nan"))
    sp[:, :t1] = s
    ap = torch.full((n, pad, action_dim), float("nan"))
    ap[:, : min(a.shape[1], pad)] = a[:, :pad]
    sp, ap = sp.reshape(n * chunks, length, state_dim), ap.reshape(n * chunks, length, action_dim)
    valid = torch.isfinite(sp).all(-1)  # (N*C, W)
    keep = valid.sum(1) >= 2
    row = torch.arange(n).repeat_interleave(chunks)
    start = torch.arange(chunks).repeat(n) * length
    return Windows32(sp[keep], ap[keep], row[keep], valid[keep], start[keep])


def _row_mean(values: Tensor, mask: Tensor, row: Tensor, n: int) -> Tensor:
    """Mean of `values` (B, H) over the masked entries of each row's windows: (n,) float64 (NaN for none)."""
    v = torch.where(mask, values, torch.zeros_like(values)).double().sum(1)
    c = mask.double().sum(1)
    tot = torch.zeros(n, dtype=torch.float64).index_add_(0, row, v)
    cnt = torch.zeros(n, dtype=torch.float64).index_add_(0, row, c)
    return tot / cnt


# --------------------------------------------------------------------------- models on flat rows


class RSSMWorldModel(nn.Module):
    """The RSSM (`wav.models.rssm.RSSM`) as a world model on flat trajectory rows (`wav.types.WorldModel`,
    `UncertainWorldModel` with >= 2 members). `scale` (D,) standardises the errors (std of the warm-up set)."""

    def __init__(self, rssm: nn.Module, scale: Tensor, window: int = WINDOW, score_space: str = "state"):
        super().__init__()
        if score_space not in SCORE_SPACES:
            raise ValueError(f"score_space must be one of {', '.join(SCORE_SPACES)}, got {score_space!r}")
        self.rssm = rssm
        self.window = int(window)
        self.score_space = score_space
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).clone())

    @property
    def members(self) -> int:
        return int(self.rssm.cfg.members)

    @property
    def dims(self) -> tuple[int, int]:
        return int(self.rssm.cfg.state_dim), int(self.rssm.cfg.action_dim)

    @property
    def reads_images(self) -> bool:
        """Whether the RSSM's encoder reads camera frames (found per row with `row_images`)."""
        return bool(self.rssm.cfg.image_channels)

    def _frames(self, states: Tensor) -> list[np.ndarray] | None:
        return row_images(states, self.dims[0]) if self.reads_images else None

    @staticmethod
    def _context(states: Tensor, actions: Tensor, is_first: Tensor, frames: list[np.ndarray] | None, w: Windows32, sl: slice) -> SequenceBatch:
        """The windows `sl` of `w` as a posterior context (states, actions, is_first), with their camera frames when
        the RSSM reads them."""
        if frames is None:
            return SequenceBatch(states, actions, is_first)
        from wav.data.sequences import ImageSequenceBatch

        return ImageSequenceBatch(states, actions, is_first, window_frames(frames, w.row[sl], w.start[sl], states.shape[1]))

    @torch.no_grad()
    def rollouts(self, states: Tensor, actions: Tensor, features: bool = False) -> tuple[Windows32, Tensor]:
        """Windows of the rows and each member's open-loop prediction of frames 1..W-1 from the posterior
        on frame 0 under `actions` (NaN padding read as 0; those steps are masked): (B, W-1, M, D), or the
        rollout's latent features (B, W-1, M, F) with `features`."""
        d, a = self.dims
        w = cut_windows(states, actions, d, a, self.window)
        frames = self._frames(states)
        preds = []
        for i in range(0, len(w.row), CHUNK):
            s0 = w.states[i : i + CHUNK, :1]
            b = s0.shape[0]
            ctx = self._context(s0, torch.zeros(b, 1, a), torch.ones(b, 1, dtype=torch.bool), frames, w, slice(i, i + CHUNK))
            acts = torch.nan_to_num(w.actions[i : i + CHUNK, :-1]).clamp(-1, 1)
            roll = self.rssm.imagine_features if features else self.rssm.imagine_members
            preds.append(roll(self.rssm.observe(ctx), acts))
        width = self.rssm.cfg.feat if features else d
        pred = torch.cat(preds) if preds else torch.zeros(0, self.window - 1, self.members, width)
        return w, pred

    def _errors(self, w: Windows32, pred: Tensor) -> tuple[Tensor, Tensor]:
        """Standardised squared error per window, step and feature (B, W-1, D), and the step mask (B, W-1)."""
        target = torch.nan_to_num(w.states[:, 1:])
        err = ((pred.mean(-2) - target) / self.scale) ** 2
        return err, w.valid[:, 1:]

    @torch.no_grad()
    def latent_mismatch(self, states: Tensor, actions: Tensor) -> tuple[Windows32, Tensor, Tensor]:
        """The release's WAV score (`idm_wm_latent_mismatch_mse`, ../shared/ROBOT.md 6.3) per window step:
        the prior's features rolled open-loop from the posterior on frame 0 under `actions` against the
        posterior features of the recorded frames filtered under the same actions, squared error averaged
        over features and members: (windows, (B, W-1) mismatch, (B, W-1, M, D) decoded predictions)."""
        d, a = self.dims
        w = cut_windows(states, actions, d, a, self.window)
        frames = self._frames(states)
        gaps, preds = [], []
        for i in range(0, len(w.row), CHUNK):
            s = torch.nan_to_num(w.states[i : i + CHUNK])
            acts = torch.nan_to_num(w.actions[i : i + CHUNK]).clamp(-1, 1)
            h, z, _ = self.rssm.posterior(self._context(s, acts, torch.zeros(s.shape[:2], dtype=torch.bool), frames, w, slice(i, i + CHUNK)))
            post = self.rssm.features(h[:, 1:], z[:, 1:])  # (B, W-1, M, F)
            prior = self.rssm.imagine_features((h[:, 0], z[:, 0]), acts[:, :-1])  # (B, W-1, M, F)
            gaps.append(((prior - post) ** 2).mean((-2, -1)))
            preds.append(self.rssm.decode(prior))
        gap = torch.cat(gaps) if gaps else torch.zeros(0, self.window - 1)
        pred = torch.cat(preds) if preds else torch.zeros(0, self.window - 1, self.members, d)
        return w, gap, pred

    @torch.no_grad()
    def predict_and_loss(self, states: Tensor, actions: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Open-loop predictions as flat rows (frame 0 of each window is the recorded one; NaN where padded)
        and the verification loss of `targets` (their recorded frames replace `states`' where they differ),
        (N,): the standardised state error (`score_space` 'state'), or the release's latent mismatch
        ('latent'). `loss` (the oracle's true error) is always in state units."""
        return self._predict_and_loss(actions, targets, self.score_space)

    def _predict_and_loss(self, actions: Tensor, targets: Tensor, space: str) -> tuple[Tensor, Tensor]:
        n = targets.shape[0]
        d, _ = self.dims
        if space == "latent":
            w, gap, pred = self.latent_mismatch(targets, actions)
            mask = w.valid[:, 1:]
        else:
            w, pred = self.rollouts(targets, actions)
            err, mask = self._errors(w, pred)
            gap = err.mean(-1)
        loss = _row_mean(gap, mask, w.row, n).float()
        # flat predictions, as long as the targets (a one-frame state row scored on H-frame subgoal rows
        # gets H-frame predictions)
        t1 = targets.shape[1] // d
        chunks = max(1, math.ceil(t1 / self.window))
        full = torch.full((n * chunks, self.window, d), float("nan"))
        keep = cut_index(targets, d, self.window)
        frames = torch.cat([w.states[:, :1], pred.mean(-2)], 1)
        frames[~w.valid] = float("nan")
        full[keep] = frames
        return full.reshape(n, chunks * self.window, d)[:, :t1].reshape(n, -1), loss

    @torch.no_grad()
    def predict(self, states: Tensor, actions: Tensor) -> Tensor:
        return self._predict_and_loss(actions, states, "state")[0]

    @torch.no_grad()
    def loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> Tensor:
        """Open-loop error per row (N,): the recorded states (`next_states`) against the RSSM rolled from
        the posterior at each window start under `actions`, standardised squared error, mean over the valid
        steps of all windows (whatever the `score_space`)."""
        return self._predict_and_loss(actions, next_states, "state")[1]

    def _need_members(self, what: str) -> None:
        if self.members < 2:
            raise ValueError(f"{what} needs an ensemble RSSM (members >= 2); this one has {self.members} "
                             "(use the 'ensemble' strategy, whose ensemble the domain fits with RoundConfig.ensemble_members)")

    @torch.no_grad()
    def disagreement(self, states: Tensor, actions: Tensor) -> Tensor:
        """Variance across members of the open-loop predictions (standardised), mean over features and the
        valid steps of all windows of a row: (N,)."""
        self._need_members("disagreement")
        if self.score_space == "latent":  # the release's uncertainty_latent_prior_feat_var_mean
            w, feat = self.rollouts(states, actions, features=True)
            var = feat.var(-2, unbiased=False).mean(-1)  # (B, W-1)
        else:
            w, pred = self.rollouts(states, actions)
            var = (pred / self.scale).var(-2, unbiased=False).mean(-1)  # (B, W-1)
        return _row_mean(var, w.valid[:, 1:], w.row, states.shape[0]).float()

    def uncertainty(self, states: Tensor, actions: Tensor, passes: int, generator: torch.Generator | None = None) -> Tensor:
        """The members' disagreement (deterministic; `passes` and `generator` are not used)."""
        self._need_members("uncertainty")
        return self.disagreement(states, actions)

    @torch.no_grad()
    def step_errors(self, data: TrajectorySet) -> tuple[Tensor, Tensor]:
        """Standardised squared error (B, W-1, D) and step mask (B, W-1) of every window of `data` under its
        recorded actions."""
        b = flat_rows(data)
        w, pred = self.rollouts(b.states, b.actions)
        return self._errors(w, pred)


def cut_index(states: Tensor, state_dim: int, length: int = WINDOW) -> Tensor:
    """Which of the N x C padded windows `cut_windows` keeps (bool (N*C,))."""
    n = states.shape[0]
    s = states.reshape(n, -1, state_dim)
    t1 = s.shape[1]
    chunks = max(1, math.ceil(t1 / length))
    valid = torch.zeros(n, chunks * length, dtype=torch.bool)
    valid[:, :t1] = torch.isfinite(s).all(-1)
    return valid.reshape(n * chunks, length).sum(1) >= 2


class TrajectoryInverse(nn.Module):
    """The latent inverse model (`wav.models.latent_inverse`) on flat rows: `infer(states, next_states)`
    reads the recorded frames of `next_states` (the subgoal rows) and returns the inferred action
    sequence (N, Tmax A), each a_t from ((s_{t-1}, s_t), s_{t+1}) (s_{-1} := s_0), NaN where padded."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @torch.no_grad()
    def infer(self, states: Tensor, next_states: Tensor) -> Tensor:
        d, a = int(self.model.cfg.state_dim), int(self.model.cfg.action_dim)
        n = next_states.shape[0]
        s = next_states.float().reshape(n, -1, d)  # (N, T+1, D)
        prev = torch.cat([s[:, :1], s[:, :-2]], 1)  # (N, T, D)
        cur, nxt = s[:, :-1], s[:, 1:]
        ok = torch.isfinite(cur).all(-1) & torch.isfinite(nxt).all(-1)  # (N, T)
        out = torch.full((n, s.shape[1] - 1, a), float("nan"))
        idx = ok.nonzero(as_tuple=True)
        ctx, tgt = torch.stack([prev[idx], cur[idx]], 1), nxt[idx]
        res = [self.model.infer(ctx[i : i + 4096], tgt[i : i + 4096]) for i in range(0, len(tgt), 4096)]
        if res:
            out[idx] = torch.cat(res).clamp(-1, 1)
        return out.reshape(n, -1)

    @torch.no_grad()
    def kept_groups(self, data: TrajectorySet) -> dict[str, float]:
        """Share of each layout group's features the (deterministic) mask keeps, over every transition."""
        from wav.data.sequences import inverse_triples

        ctx, _, nxt = inverse_triples(list(data.trajectories))
        m = torch.cat([self.model.infer_with_mask(ctx[i : i + 4096], nxt[i : i + 4096])[1] for i in range(0, len(nxt), 4096)]).mean(0).numpy()
        return {g: float(m[mask].mean()) for g, mask in data.group_masks().items()}


class RecordedFuture:
    """The pool protocol's subgoals (ROBOT.md §6.2): a candidate's own recorded states. `sample` returns each
    row k times; `propose` once, with probability 1."""

    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        return states[:, None].expand(-1, k, -1)

    def propose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        return states[:, None], torch.ones(states.shape[0], 1)


# --------------------------------------------------------------------------- the domain


def standardiser(data: TrajectorySet) -> Tensor:
    """Per-feature std of every recorded state of `data` (features that barely move get a floor of 10% of the
    mean std, so a near-constant feature (a quaternion component that flips sign) does not dominate the error)."""
    s = np.concatenate([st for st, _ in data.trajectories]).astype(np.float64)
    std = s.std(0)
    floor = max(0.1 * float(std.mean()), 1e-6)
    return torch.from_numpy(np.maximum(std, floor).astype(np.float32))


@dataclass(frozen=True)
class ManipulationDomain:
    """Recorded manipulation trajectories (pool protocol) as a `wav.domains.base.Domain`."""

    rssm_preset: str = "cpu"
    """RSSM size (wav.models.rssm.RSSM_PRESETS)"""
    rssm_openloop: float = 0.0
    """weight of the RSSM's open-loop loss (`RSSMConfig.openloop_scale`; 0: the preset's DreamerV3 objective)"""
    inverse_preset: str = "cpu"
    """latent inverse model size (wav.models.latent_inverse.LATENT_INVERSE_PRESETS)"""
    window: int = WINDOW
    """steps per training / evaluation / scoring window"""
    world_model_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=200, lr=3e-4, batch_size=16, val_fraction=0.0, max_seconds=GUARD_SECONDS))
    """seed-set schedule of the RSSM (batches of 16 windows x `window` steps)"""
    inverse_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100, lr=3e-4, batch_size=128, val_fraction=0.0, max_seconds=GUARD_SECONDS))
    """seed-set schedule of the latent inverse models (transitions with 2-frame context)"""
    generator_preset: str = "cpu"
    """action-free trajectory generator size (wav.models.trajectory_generator.TRAJECTORY_GENERATOR_PRESETS)"""
    generator_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=40, lr=1e-3, batch_size=256, val_fraction=0.0, max_seconds=GUARD_SECONDS))
    """schedule of the action-free generator (on every state of the action-free trajectories)"""
    task: str | None = None
    """the simulator task of the online loop (None: pool protocol only)"""
    scale: tuple[float, ...] | None = None
    """per-feature error scale of every RSSM built (None: `standardiser` of the data it is built on, the
    warm-up set); an experiment sets it to compare scalings (`RobotAcquisitionExperiment.error_scale`)"""
    score_space: str = "state"
    """verification (and ensemble-disagreement) score space: 'state' (standardised squared error of the decoded
    rollout) or 'latent' (the release's mismatch of the RSSM's latent features); the oracle and the evaluation
    are always in state units"""
    images: bool = False
    """the RSSM also reads the pool's 64x64 camera frames (conv encoder and decoder; `paper`); the pool must have
    been built with `--camera`. Scores and the evaluation stay in state units"""
    space: Box = field(default=Box(7))

    def batch(self, data: TrajectorySet) -> TransitionBatch:
        return flat_rows(data)

    def concat(self, parts: list[TrajectorySet]) -> TrajectorySet:
        parts = [p for p in parts if len(p)] or parts[:1]
        images = tuple(im for p in parts for im in p.images) if all(p.images is not None for p in parts) else None
        return TrajectorySet(tuple(t for p in parts for t in p.trajectories), parts[0].layout, images)

    def subset(self, data: TrajectorySet, index: np.ndarray) -> TrajectorySet:
        index = [int(i) for i in np.asarray(index).reshape(-1)]
        images = None if data.images is None else tuple(data.images[i] for i in index)
        return TrajectorySet(tuple(data.trajectories[i] for i in index), data.layout, images)

    def build(self, part: str, data: TrajectorySet, seed: int, members: int = 1):
        """A new, untrained model `part` sized for `data` from the preset (`members` for an ensemble)."""
        from wav.train import build

        d, a = data.dims
        if part in ("world_model", "ensemble"):
            from wav.models.rssm import RSSM, preset

            cfg = preset(self.rssm_preset, state_dim=d, action_dim=a, members=members if part == "ensemble" else 1)
            if self.images:
                if data.images is None:
                    raise ValueError("the domain reads camera images (images=True) and this data has none; build the pool with "
                                     "`wav robot build --camera`, or run without images")
                cfg = replace(cfg, image_channels=int(data.images[0].shape[-1]))
            if self.rssm_openloop:
                cfg = replace(cfg, openloop_scale=float(self.rssm_openloop))
            scale = torch.tensor(self.scale, dtype=torch.float32) if self.scale is not None else standardiser(data)
            return RSSMWorldModel(build(RSSM, cfg, seed), scale, self.window, self.score_space).eval()
        if part in ("inverse", "dense_inverse"):
            from wav.data.sequences import inverse_triples
            from wav.models.latent_inverse import LatentInverseModel, preset

            model = build(LatentInverseModel, preset(self.inverse_preset, state_dim=d, action_dim=a, dense=part == "dense_inverse"), seed)
            return TrajectoryInverse(model.set_stats(*inverse_triples(list(data.trajectories)))).eval()
        raise ValueError(f"unknown model part {part!r}; known: {', '.join(PARTS)}")

    def fit(self, part: str, data: TrajectorySet, seed: int, train: TrainConfig | None = None, model=None, members: int = 1):
        from wav.data.sequences import Windows, inverse_triples
        from wav.train import Rows, fit

        model = self.build(part, data, seed, members) if model is None else model
        if part in ("world_model", "ensemble"):
            images = list(data.images) if model.reads_images else None
            fit(model.rssm, Windows(list(data.trajectories), self.window, images=images), train or self.world_model_train, seed)
        else:
            fit(model.model, Rows(*inverse_triples(list(data.trajectories))), train or self.inverse_train, seed)
        return model.eval()

    def evaluate(self, world_model: RSSMWorldModel, data: PoolData) -> dict:
        """The `window`-step open-loop error on the test (eval) partition: standardised squared error, mean over
        the valid steps of every window; per step and per layout group too."""
        err, mask = world_model.step_errors(data.test)  # (B, H, D), (B, H)
        m = mask.double()
        per_step = err.mean(-1).double()
        total = float((per_step * m).sum() / m.sum())
        by_step = ((per_step * m).sum(0) / m.sum(0)).tolist()
        groups = {g: float(((err[..., torch.from_numpy(gm)].mean(-1).double() * m).sum() / m.sum())) for g, gm in data.test.group_masks().items()}
        return {"pred_error": total, "pred_error_by_step": [float(x) if np.isfinite(x) else None for x in by_step], "pred_error_by_group": groups}

    def fit_generator(self, data: TrajectorySet, seed: int, train: TrainConfig | None = None, horizon: int | None = None):
        """The action-free subgoal generator p(s_{t+1..t+H} | s_t), fit on the states of `data` (actions unused)."""
        from wav.models.trajectory_generator import TrajectoryGenerator, future_pairs, preset
        from wav.train import Rows, build, fit

        cfg = preset(self.generator_preset, state_dim=data.dims[0], **({"horizon": horizon} if horizon else {}))
        states, futures = future_pairs(list(data.trajectories), cfg.horizon)
        model = build(TrajectoryGenerator, cfg, seed).set_stats(states, futures)
        fit(model, Rows(states, futures), train or self.generator_train, seed)
        return model.eval()

    # ---- online (Algorithm 1) in the task's simulator (wav.domains.manipulation_online)

    def make_env(self, seed: int):
        from wav.domains import manipulation_online as online

        if self.task is None:
            raise ValueError("the online loop needs ManipulationDomain.task (the simulator task), which is None")
        return online.make_env(self.task, seed)

    def reset(self, env, seed: int) -> None:
        from wav.domains.manipulation_online import reset

        reset(env, seed)

    def observe(self, env):
        from wav.domains.manipulation_online import observe

        return observe(env)

    def step(self, env, action):
        from wav.domains.manipulation_online import step

        return step(env, action, self.space.dim)

    def close(self, env) -> None:
        env.env.close()

    def transitions(self, records: list) -> TrajectorySet:
        """The played episodes as trajectories (no layout: `concat` with the seed set takes the seed set's)."""
        from wav.domains.manipulation_online import trajectories

        return TrajectorySet(tuple(trajectories(records)), {})


# An epoch of the RSSM is one pass of windows over the labelled steps (len(Windows) windows, batches of 16): a
# warm-up set of 50 PullCube trajectories (51 states each) is 80 windows, 5 updates per epoch.
DOMAIN_PRESETS: dict[str, ManipulationDomain] = {
    "debug": ManipulationDomain(rssm_preset="debug", inverse_preset="debug",
                                world_model_train=TrainConfig(epochs=60, lr=1e-3, batch_size=16, val_fraction=0.0, max_seconds=GUARD_SECONDS),
                                inverse_train=TrainConfig(epochs=30, lr=1e-3, batch_size=128, val_fraction=0.0, max_seconds=GUARD_SECONDS)),
    "cpu": ManipulationDomain(),
    "paper": ManipulationDomain(rssm_preset="paper", inverse_preset="paper", images=True,
                                world_model_train=TrainConfig(epochs=200, lr=1e-4, batch_size=16, val_fraction=0.0, max_seconds=36000),
                                inverse_train=TrainConfig(epochs=200, lr=3e-4, batch_size=128, val_fraction=0.0, max_seconds=36000)),
}
