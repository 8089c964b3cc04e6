"""Trajectories of the robot setting in robomimic's HDF5 layout, with validation and atomic writes.

Layout (robomimic): data/demo_i/{obs/<key>, next_obs/<key>, actions, rewards, dones} with attrs
num_samples; `data` carries env_args (JSON: task, backend, horizon, state layout) and total; partitions
are robomimic filter keys, mask/<name> = array of demo names. Users may bring their own robomimic files:
pass `obs_keys` to choose and order the low-dim keys that make the flat state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wav.data.io import DataError, atomic_write

FORMAT = "wav-robot-1"
IMAGE_KEY = "image"


@dataclass
class Trajectory:
    """One episode. states (T+1, D) float32, actions (T, A) float32, rewards (T,) float32, dones (T,) bool;
    images (T+1, 64, 64, 3) uint8 or None; `source` names what produced it ("expert", "ckpt3", ...)."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    success: bool
    source: str = "unknown"
    seed: int = -1
    images: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def _require_h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError("robot HDF5 files need h5py: pip install -e '.[robot]'") from e
    return h5py


def save_trajectories(path, trajectories: list[Trajectory], env_args: dict, masks: dict[str, list[int]] | None = None) -> Path:
    """Write `trajectories` as data/demo_<i> atomically; `masks` maps a filter key to demo indices.

    env_args must hold "layout" (StateLayout.to_dict()) so the flat state can be split into obs keys.
    """
    h5py = _require_h5py()
    layout = env_args.get("layout")
    if not layout:
        raise ValueError("env_args needs a 'layout' entry (StateLayout.to_dict())")
    names, sizes = layout["names"], layout["sizes"]
    bounds = np.cumsum([0, *sizes])

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            data.attrs["env_args"] = json.dumps(env_args)
            data.attrs["format"] = FORMAT
            data.attrs["total"] = int(sum(len(t) for t in trajectories))
            for i, tr in enumerate(trajectories):
                g = data.create_group(f"demo_{i}")
                g.attrs.update(num_samples=len(tr), success=bool(tr.success), source=tr.source, seed=int(tr.seed))
                for k, v in tr.attrs.items():
                    g.attrs[k] = v
                for grp_name, rows in (("obs", slice(0, -1)), ("next_obs", slice(1, None))):
                    grp = g.create_group(grp_name)
                    for j, name in enumerate(names):
                        grp.create_dataset(name, data=tr.states[rows, bounds[j] : bounds[j + 1]].astype(np.float32))
                    if tr.images is not None:
                        grp.create_dataset(IMAGE_KEY, data=tr.images[rows], compression="gzip", compression_opts=4)
                g.create_dataset("actions", data=tr.actions.astype(np.float32))
                g.create_dataset("rewards", data=tr.rewards.astype(np.float32))
                g.create_dataset("dones", data=tr.dones.astype(np.int64))
            if masks:
                m = f.create_group("mask")
                for key, idx in masks.items():
                    m.create_dataset(key, data=np.array([f"demo_{i}" for i in idx], dtype="S"))

    return atomic_write(path, write)


def _demo_sort_key(name: str):
    tail = name.rsplit("_", 1)[-1]
    return (0, int(tail)) if tail.isdigit() else (1, name)


def list_masks(path) -> dict[str, list[str]]:
    """Filter keys (partitions) of a file: name -> demo names."""
    h5py = _require_h5py()
    with h5py.File(path, "r") as f:
        if "mask" not in f:
            return {}
        return {k: [x.decode() for x in f["mask"][k][()]] for k in f["mask"]}


def load_trajectories(path, obs_keys: list[str] | None = None, filter_key: str | None = None, images: bool = False) -> tuple[list[Trajectory], dict]:
    """Load and validate trajectories; returns (trajectories, env_args). Raises DataError naming the file,
    demo and field on any defect. `obs_keys` defaults to the layout recorded in env_args."""
    h5py = _require_h5py()
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        if "data" not in f:
            raise DataError(f"{path}: no 'data' group (expected robomimic layout data/demo_i/...)")
        data = f["data"]
        try:
            env_args = json.loads(data.attrs.get("env_args", "{}"))
        except (TypeError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: data.attrs['env_args'] is not JSON ({e})") from None
        keys = list(obs_keys) if obs_keys else list(env_args.get("layout", {}).get("names", []))
        if not keys:
            raise DataError(f"{path}: env_args has no state layout; pass obs_keys (e.g. robot0_eef_pos,object)")
        if filter_key is not None:
            if "mask" not in f or filter_key not in f["mask"]:
                have = sorted(f["mask"]) if "mask" in f else []
                raise DataError(f"{path}: no filter key '{filter_key}' (file has {have})")
            demos = [x.decode() for x in f["mask"][filter_key][()]]
        else:
            demos = sorted(data.keys(), key=_demo_sort_key)
        out = []
        for name in demos:
            if name not in data:
                raise DataError(f"{path}: mask '{filter_key}' names missing demo '{name}'")
            out.append(_load_demo(path, data[name], name, keys, images))
    return out, env_args


def _load_demo(path, g, name: str, keys: list[str], images: bool) -> Trajectory:
    def fail(field_, msg):
        return DataError(f"{path}: {name}/{field_}: {msg}")

    for req in ("actions", "obs"):
        if req not in g:
            raise fail(req, "missing")
    actions = np.asarray(g["actions"][()], dtype=np.float32)
    if actions.ndim != 2:
        raise fail("actions", f"has shape {actions.shape}; expected (T, A)")
    t = actions.shape[0]
    if t == 0:
        raise fail("actions", "is empty")
    if not np.all(np.isfinite(actions)):
        raise fail("actions", "contains NaN or infinite values")
    if np.abs(actions).max() > 1.0 + 1e-5:
        raise fail("actions", f"outside [-1, 1] (max |a| = {np.abs(actions).max():.3g}); normalise them first")
    if "num_samples" in g.attrs and int(g.attrs["num_samples"]) != t:
        raise fail("actions", f"has {t} rows but attrs num_samples = {int(g.attrs['num_samples'])}")

    def flat(group_name):
        grp = g[group_name]
        parts = []
        for k in keys:
            if k not in grp:
                raise fail(f"{group_name}/{k}", f"missing (has {sorted(grp.keys())})")
            v = np.asarray(grp[k][()], dtype=np.float32).reshape(grp[k].shape[0], -1)
            if v.shape[0] != t:
                raise fail(f"{group_name}/{k}", f"has {v.shape[0]} rows; actions have {t}")
            if not np.all(np.isfinite(v)):
                raise fail(f"{group_name}/{k}", "contains NaN or infinite values")
            parts.append(v)
        return np.concatenate(parts, axis=1)

    obs = flat("obs")
    last = flat("next_obs")[-1:] if "next_obs" in g else obs[-1:]  # robomimic files may omit next_obs
    states = np.concatenate([obs, last])  # (T+1, D)
    vectors = {}
    for k in ("rewards", "dones"):
        if k in g:
            v = np.asarray(g[k][()]).reshape(-1)
            if v.shape[0] != t:
                raise fail(k, f"has {v.shape[0]} entries; actions have {t}")
            vectors[k] = v
    imgs = None
    if images:
        if IMAGE_KEY not in g["obs"]:
            raise fail(f"obs/{IMAGE_KEY}", "missing (file was written without camera observations: build it with `wav robot build --camera`, or run without images)")
        nxt = g["next_obs"][IMAGE_KEY][-1:] if "next_obs" in g and IMAGE_KEY in g["next_obs"] else g["obs"][IMAGE_KEY][-1:]
        imgs = np.concatenate([g["obs"][IMAGE_KEY][()], nxt]).astype(np.uint8)
    rewards = vectors.get("rewards", np.zeros(t)).astype(np.float32)
    return Trajectory(
        states=states,
        actions=actions,
        rewards=rewards,
        dones=vectors.get("dones", np.zeros(t)).astype(bool),
        success=bool(g.attrs.get("success", rewards.max() > 0)),
        source=str(g.attrs.get("source", "unknown")),
        seed=int(g.attrs.get("seed", -1)),
        images=imgs,
    )


def summary(path) -> dict:
    """Counts per source and partition; used by `wav robot` commands to report what a file holds."""
    trajs, env_args = load_trajectories(path)
    by_source: dict[str, list[bool]] = {}
    for t in trajs:
        by_source.setdefault(t.source, []).append(t.success)
    return {
        "task": env_args.get("task"),
        "trajectories": len(trajs),
        "transitions": int(sum(len(t) for t in trajs)),
        "success_by_source": {k: float(np.mean(v)) for k, v in sorted(by_source.items())},
        "masks": {k: len(v) for k, v in list_masks(path).items()},
    }
