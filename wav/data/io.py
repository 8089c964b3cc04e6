"""Read and write transition sets in the published npz schema, with validation and atomic writes.

Written files use the schema of the authors' release: states/next_states uint8 (N, 1, 1, 6, 6, 3),
carried/next_carried int64 (N, 2), actions int64 (N,), rewards and dones int64 (N,). The loader also
reads the float32 variant of `random_selected_data.npz` (states (N, 6, 6, 3), carried (N, 2, 1)).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from wav.envs.minigrid.encoding import GRID_SIZE, N_ACTIONS, N_CHANNELS, N_COLOURS, N_STATES, N_TYPES, to_features

@dataclass(frozen=True)
class Transitions:
    """A labelled MiniGrid transition set in the published npz schema (squeezed).

    states, next_states: uint8 (N, W, H, C); carried, next_carried: int64 (N, 2) = (colour, type);
    actions: int64 (N,); rewards: float32 (N,); dones: bool (N,).
    """

    states: np.ndarray
    carried: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    next_carried: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def subset(self, index) -> "Transitions":
        """Rows selected by an index array, slice or boolean mask."""
        return Transitions(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: "list[Transitions]") -> "Transitions":
        return Transitions(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Transitions)})

    @staticmethod
    def from_arrays(states, carried, actions, next_states, next_carried, rewards=None, dones=None) -> "Transitions":
        n = len(actions)
        return Transitions(
            states=np.asarray(states, dtype=np.uint8),
            carried=np.asarray(carried, dtype=np.int64).reshape(n, 2),
            actions=np.asarray(actions, dtype=np.int64),
            next_states=np.asarray(next_states, dtype=np.uint8),
            next_carried=np.asarray(next_carried, dtype=np.int64).reshape(n, 2),
            rewards=np.zeros(n, np.float32) if rewards is None else np.asarray(rewards, dtype=np.float32),
            dones=np.zeros(n, bool) if dones is None else np.asarray(dones, dtype=bool),
        )

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat (N, D) int64 features of start and next states (see wav.envs.minigrid.encoding)."""
        return to_features(self.states, self.carried), to_features(self.next_states, self.next_carried)


REQUIRED_KEYS = ("states", "carried", "actions", "next_states", "next_carried")
OPTIONAL_KEYS = ("rewards", "dones")


class DataError(ValueError):
    """A transition file that cannot be used; the message names the file and the field."""


def _fail(path, field, msg) -> DataError:
    return DataError(f"{path}: field '{field}': {msg}" if field else f"{path}: {msg}")


def _as_int(path, field, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise _fail(path, field, f"contains NaN ({int(np.isnan(arr).sum())} entries)")
        if not np.all(np.isfinite(arr)):
            raise _fail(path, field, "contains infinite values")
        if not np.all(arr == np.round(arr)):
            raise _fail(path, field, "contains non-integer values")
        return arr.astype(np.int64)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    raise _fail(path, field, f"has dtype {arr.dtype}; expected an integer or float array")


def _grid(path, field, arr: np.ndarray, n: int) -> np.ndarray:
    shape_ok = arr.shape in ((n, 1, 1, GRID_SIZE, GRID_SIZE, N_CHANNELS), (n, GRID_SIZE, GRID_SIZE, N_CHANNELS))
    if not shape_ok:
        raise _fail(path, field, f"has shape {arr.shape}; expected ({n}, 1, 1, 6, 6, 3) or ({n}, 6, 6, 3)")
    arr = _as_int(path, field, arr).reshape(n, GRID_SIZE, GRID_SIZE, N_CHANNELS)
    for c, (name, hi) in enumerate((("type", N_TYPES), ("colour", N_COLOURS), ("state", N_STATES))):
        ch = arr[..., c]
        if ch.size and (ch.min() < 0 or ch.max() >= hi):
            bad = np.argwhere((ch < 0) | (ch >= hi))[0]
            raise _fail(path, field, f"{name} channel out of range [0, {hi}) at transition {bad[0]}, cell ({bad[1]}, {bad[2]}): {ch[tuple(bad)]}")
    return arr.astype(np.uint8)


def _carried(path, field, arr: np.ndarray, n: int) -> np.ndarray:
    if arr.shape not in ((n, 2), (n, 2, 1)):
        raise _fail(path, field, f"has shape {arr.shape}; expected ({n}, 2) or ({n}, 2, 1)")
    arr = _as_int(path, field, arr).reshape(n, 2)
    for c, (name, hi) in enumerate((("colour", N_COLOURS), ("type", N_TYPES))):
        if arr.size and (arr[:, c].min() < 0 or arr[:, c].max() >= hi):
            i = int(np.flatnonzero((arr[:, c] < 0) | (arr[:, c] >= hi))[0])
            raise _fail(path, field, f"carried {name} out of range [0, {hi}) at transition {i}: {arr[i, c]}")
    return arr


def load_transitions(path: str | os.PathLike) -> Transitions:
    """Load and validate a transition file; raises DataError with the file and field on any defect."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an npz file")
    if not zipfile.is_zipfile(path):  # np.load would try to unpickle it
        raise DataError(f"{path}: not a valid npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in REQUIRED_KEYS if k not in keys]
            if missing:
                raise _fail(path, missing[0], f"missing (file has {sorted(keys)}; required {list(REQUIRED_KEYS)})")
            raw = {k: z[k] for k in REQUIRED_KEYS + OPTIONAL_KEYS if k in keys}
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: not a readable npz archive ({type(e).__name__}: {e})") from None
    actions = raw["actions"]
    if actions.ndim != 1:
        raise _fail(path, "actions", f"has shape {actions.shape}; expected (N,)")
    n = actions.shape[0]
    actions = _as_int(path, "actions", actions)
    if n and (actions.min() < 0 or actions.max() >= N_ACTIONS):
        i = int(np.flatnonzero((actions < 0) | (actions >= N_ACTIONS))[0])
        raise _fail(path, "actions", f"out of range [0, {N_ACTIONS}) at transition {i}: {actions[i]}")
    out = dict(
        states=_grid(path, "states", raw["states"], n),
        carried=_carried(path, "carried", raw["carried"], n),
        actions=actions,
        next_states=_grid(path, "next_states", raw["next_states"], n),
        next_carried=_carried(path, "next_carried", raw["next_carried"], n),
    )
    for k in OPTIONAL_KEYS:
        if k in raw:
            v = raw[k]
            if v.shape != (n,):
                raise _fail(path, k, f"has shape {v.shape}; expected ({n},)")
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                bad = int(np.flatnonzero(~np.isfinite(v))[0])
                raise _fail(path, k, f"contains non-finite values ({int((~np.isfinite(v)).sum())} of {n}; the first at transition {bad}: {v[bad]})")
    rewards = raw["rewards"].astype(np.float32) if "rewards" in raw else None
    dones = raw["dones"].astype(bool) if "dones" in raw else None
    return Transitions.from_arrays(rewards=rewards, dones=dones, **out)


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call write(tmp_path) on a temporary file in the target folder, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_transitions(path: str | os.PathLike, tr: Transitions, **extra: np.ndarray) -> Path:
    """Write `tr` in the published schema (plus any `extra` arrays, e.g. episode ids) atomically."""
    n = len(tr)
    arrays = dict(
        states=tr.states.reshape(n, 1, 1, GRID_SIZE, GRID_SIZE, N_CHANNELS).astype(np.uint8),
        carried=tr.carried.astype(np.int64),
        actions=tr.actions.astype(np.int64),
        next_states=tr.next_states.reshape(n, 1, 1, GRID_SIZE, GRID_SIZE, N_CHANNELS).astype(np.uint8),
        next_carried=tr.next_carried.astype(np.int64),
        rewards=tr.rewards.astype(np.int64),
        dones=tr.dones.astype(np.int64),
        **extra,
    )

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, write)
