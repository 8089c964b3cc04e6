"""The MiniGrid domain (REFERENCE §2-4): the interactive 6x6 grid, its three models and its metrics,
plugged into the shared verification core through the `wav.domains.base.Domain` protocol.

States are flat int64 features (36 cells x (type, colour, state) + carried (colour, type)); actions are
the 7 discrete ids of `wav.envs.minigrid.encoding.ACTION_NAMES`. The fitting functions here are the
MiniGrid entry points of `wav.train.fit` (used by the CLI, the experiments and the benchmarks too).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from wav.config import InverseConfig, ModelsPreset, SubgoalConfig, TrainConfig, WorldModelConfig, model_preset
from wav.cycle import Discrete, distinct_rows, predict_and_loss
from wav.data.io import Transitions
from wav.domains.base import PARTS, PoolData
from wav.envs.minigrid.encoding import ACTION_NAMES, EMPTY_CARRIED, N_ACTIONS, to_features
from wav.metrics import per_action_error
from wav.models import GridWorldModel, MixtureSubgoalGenerator, SparseInverseModel
from wav.train import History, Rows, build, fit
from wav.types import TransitionBatch

SPACE = Discrete(N_ACTIONS, ACTION_NAMES)


def batch(tr: Transitions) -> TransitionBatch:
    """A transition set as flat feature tensors: states (N, D) int64, actions (N,), next states (N, D)."""
    s, sn = tr.features()
    return TransitionBatch(torch.from_numpy(s), torch.from_numpy(tr.actions), torch.from_numpy(sn))


# --------------------------------------------------------------------------- fitting


def train_world_model(
    tr: Transitions, cfg: WorldModelConfig = WorldModelConfig(), train: TrainConfig = TrainConfig(), seed: int = 0, model: GridWorldModel | None = None
) -> tuple[GridWorldModel, History]:
    """Fit (or, given `model`, continue fitting) the grid world model on labelled transitions."""
    model = build(GridWorldModel, cfg, seed) if model is None else model
    return model, fit(model, Rows(*batch(tr).tensors()), train, seed)


def train_subgoal(
    tr: Transitions, cfg: SubgoalConfig = SubgoalConfig(), train: TrainConfig = TrainConfig(), seed: int = 0, finetune: TrainConfig | None = None
) -> tuple[MixtureSubgoalGenerator, History]:
    """Fit the subgoal generator on (s, s') pairs; `tr.actions` is never read. `finetune`, if given, is a
    second stage (typically a lower learning rate) that continues from the first stage's best weights."""
    model = build(MixtureSubgoalGenerator, cfg, seed)
    s, sn = tr.features()
    data = Rows(torch.from_numpy(s), torch.from_numpy(sn))
    hist = fit(model, data, train, seed)
    if finetune is not None:
        second = fit(model, data, finetune, seed + 1)
        hist.train_loss += second.train_loss
        hist.val_loss += second.val_loss
        hist.seconds += second.seconds
        hist.best_epoch = len(hist.train_loss) - len(second.train_loss) + second.best_epoch
    if cfg.seen_changes:
        model.remember_changes(data.tensors[0], data.tensors[1])
    return model, hist


def train_inverse(
    tr: Transitions, cfg: InverseConfig = InverseConfig(), train: TrainConfig = TrainConfig(), seed: int = 0, model: SparseInverseModel | None = None
) -> tuple[SparseInverseModel, History]:
    """Fit (or, given `model`, continue fitting) the sparse (or, with cfg.dense, vanilla) inverse model."""
    model = build(SparseInverseModel, cfg, seed) if model is None else model
    return model, fit(model, Rows(*batch(tr).tensors()), train, seed)


PRETRAIN_LABELS = ("recorded", "inferred")


def pretrain_world_model(
    corpus: Transitions, cfg: WorldModelConfig, train: TrainConfig, labels: str = "recorded", seed_set: Transitions | None = None,
    inverse: InverseConfig = InverseConfig(), inverse_train: TrainConfig = TrainConfig(), seed: int = 0,
) -> tuple[GridWorldModel, dict]:
    """Pre-train the world model on a large transition corpus before it ever sees the labelled set
    (REFERENCE §4: the published world models start from a model trained on the 25k video file).

    labels="recorded" trains on the corpus's own actions (what the authors' code does, although it calls
    the corpus action-free); labels="inferred" never reads them: a sparse inverse model fit on `seed_set`
    (the labelled seed transitions) labels every corpus transition, and the world model trains on those
    labels (the strictly action-free variant). Returns the model and what the pre-training did."""
    if labels not in PRETRAIN_LABELS:
        raise ValueError(f"pretraining labels must be one of {PRETRAIN_LABELS}, got {labels!r}")
    info: dict = {"labels": labels, "transitions": len(corpus)}
    if labels == "inferred":
        if seed_set is None:
            raise ValueError("inferred pretraining labels need the labelled seed set (seed_set)")
        idm, hist = train_inverse(seed_set, inverse, inverse_train, seed)
        b = batch(corpus)
        with torch.no_grad():
            guess = torch.cat([idm.infer(b.states[i : i + 4096], b.next_states[i : i + 4096]) for i in range(0, len(corpus), 4096)]).numpy()
        info["inverse_seconds"] = hist.seconds
        info["label_agreement"] = float((guess == corpus.actions).mean())  # a diagnostic only: training never reads the recorded actions
        corpus = replace(corpus, actions=guess.astype(corpus.actions.dtype))
    model, hist = train_world_model(corpus, cfg, train, seed)
    info.update(seconds=hist.seconds, epochs=len(hist.train_loss), final_loss=hist.train_loss[-1])
    return model, info


def start_world_model(path: str, cfg: WorldModelConfig) -> GridWorldModel:
    """A world model of config `cfg` with the weights of the single-member checkpoint at `path`; an
    ensemble (cfg.members = M) gets them in every member (the members then differ only by their dropout
    draws, not by their initialisation)."""
    from wav.train import load_checkpoint

    single = load_checkpoint(path, "world-model")
    if replace(single.cfg, members=cfg.members) != cfg or single.cfg.members != 1:
        raise ValueError(f"{path}: pretrained world model has config {single.cfg}, the run needs {cfg} (one member)")
    model = GridWorldModel(cfg)
    state = {k: v.repeat(cfg.members, *([1] * (v.ndim - 1))) if v.shape != model.state_dict()[k].shape else v for k, v in single.state_dict().items()}
    model.load_state_dict(state)
    return model


def frozen_subgoals(subgoal):
    """The cycle's view of the generator (`FrozenSubgoals`): its weighted modes (memoised, as the pool's
    states recur every round) or K i.i.d. draws from p(s'|s), never the distinct-code mode (for coverage)."""
    return FrozenSubgoals(subgoal) if isinstance(subgoal, MixtureSubgoalGenerator) else subgoal


class FrozenSubgoals:
    """The verification cycle's view of a trained (frozen) generator.

    `sample` proposes i.i.d. samples of p(s' | s) (repeats allowed): the cycle scores candidate actions
    by the subgoals mapped to them, and enumerating every code once would propose a rare (often
    implausible) outcome as often as the likely one. `propose` returns the weighted modes and memoises
    them per state, since the generator does not change while the pool's states recur every round.
    """

    def __init__(self, model: MixtureSubgoalGenerator):
        self.model = model
        self._modes: dict[bytes, int] = {}  # state key -> its row in the memo (insertion order)
        self._parts: list[tuple[Tensor, Tensor, Tensor]] = []  # (subgoals (S, D), weights (S,), modes per row) as added
        self._table: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def sample(self, states: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
        return self.model.sample(states, k, generator, distinct=False)

    def _add(self, keys: list[bytes], subgoals: Tensor, weights: Tensor, counts: Tensor) -> None:
        """Memoise the flat modes of new states: row i owns the next counts[i] entries of subgoals/weights."""
        base = len(self._modes)
        self._modes.update((key, base + i) for i, key in enumerate(keys))
        self._parts.append((subgoals, weights, counts))
        self._table = None

    def _tables(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The memo as flat tensors: subgoals (S, D), weights (S,), first entry and modes of each row."""
        if self._table is None:
            sg, w, counts = (torch.cat(x) for x in zip(*self._parts))
            self._parts = [(sg, w, counts)]
            self._table = (sg, w, torch.cumsum(counts, 0) - counts, counts)
        return self._table

    def _memoise(self, states: Tensor) -> list[bytes]:
        """Ask the generator for the states not memoised yet; returns every state's key."""
        keys = [row.tobytes() for row in states.numpy().astype(np.uint8)]
        new = list({key: i for i, key in enumerate(keys) if key not in self._modes}.values())
        if new:
            subgoals, weights = self.model.propose(states[new])
            kept = weights > 0  # the kept modes come first in each row (most probable first), padding after
            self._add([keys[i] for i in new], subgoals[kept], weights[kept], kept.sum(1))
        return keys

    def propose(self, states: Tensor) -> tuple[Tensor, Tensor]:
        keys = self._memoise(states)
        sg, w, starts, counts = self._tables()
        rows = torch.tensor([self._modes[key] for key in keys], dtype=torch.long)
        n = counts[rows]
        j = torch.arange(int(n.max()))
        real = j < n[:, None]  # (B, K); the rest pads with weight-0 copies of s
        at = (starts[rows, None] + j).clamp(max=len(w) - 1)
        return torch.where(real[..., None], sg[at], states[:, None]), torch.where(real, w[at], 0.0)

    def warm(self, states: Tensor, chunk: int = 512) -> None:
        """Memoise the proposals of every state in `states` (e.g. a whole pool, once per experiment)."""
        for i in range(0, len(states), chunk):
            self._memoise(states[i : i + chunk])  # the flat table is joined once, when next read

    def export_modes(self) -> dict[str, np.ndarray]:
        """The memo as arrays: state keys (U, D) uint8, modes per state (U,), subgoals (S, D) uint8, weights (S,)."""
        keys = list(self._modes)
        if not keys:
            return {"keys": np.zeros((0, 0), np.uint8), "counts": np.zeros(0, np.int64), "subgoals": np.zeros((0, 0), np.uint8), "weights": np.zeros(0, np.float32)}
        sg, w, _, counts = self._tables()
        return {
            "keys": np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), -1),
            "counts": counts.numpy().astype(np.int64),
            "subgoals": sg.numpy().astype(np.uint8),
            "weights": w.numpy().astype(np.float32),
        }

    def import_modes(self, table: dict[str, np.ndarray]) -> None:
        """Add the modes of `export_modes` (of the same generator) to the memo; known states keep theirs."""
        keys = [key.tobytes() for key in table["keys"]]
        counts = torch.from_numpy(table["counts"].astype(np.int64))
        fresh = torch.tensor([key not in self._modes for key in keys], dtype=torch.bool)
        entries = fresh.repeat_interleave(counts)
        sg = torch.from_numpy(table["subgoals"].astype(np.int64))[entries]
        w = torch.from_numpy(table["weights"].astype(np.float32))[entries]
        self._add([key for key, f in zip(keys, fresh.tolist()) if f], sg, w, counts[fresh])


# --------------------------------------------------------------------------- evaluation


def test_metrics(world_model, test: Transitions) -> dict:
    """Prediction error, dynamic accuracy and per-action error of one test set, from one pass."""
    from wav.evaluate import dynamic_accuracy

    b = batch(test)
    rows = [x.contiguous() for x in b.tensors()]
    first, where = distinct_rows(*rows)  # a policy test set repeats transitions: each distinct one runs once
    preds, errs = [], []
    with torch.no_grad():
        for i in range(0, len(first), 512):  # small chunks run ~1.5x faster on CPU (cache)
            p, e = predict_and_loss(world_model, *(x[first[i : i + 512]] for x in rows))
            preds.append(p.numpy())
            errs.append(e.numpy())
    err, pred = np.concatenate(errs)[where.numpy()], np.concatenate(preds)[where.numpy()]
    return {"pred_error": float(err.mean()), "dynamic_accuracy": dynamic_accuracy(b.states.numpy(), b.next_states.numpy(), pred),
            "per_action_error": per_action_error(err, test.actions, ACTION_NAMES)}


def _hidden_state(env) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Encoded state plus the facts the encoding hides (cell under the agent, contents of the front box)."""
    grid, carried = env.encode_state()
    here = env.grid.get(*env.agent_pos)
    under = np.array((1, 0, 0) if here is None else here.encode())
    fwd = env.grid.get(*env.front_pos)
    contents = np.array(EMPTY_CARRIED)
    if fwd is not None and fwd.type == "box" and fwd.contains is not None:
        contents = np.array(fwd.contains.encode()[1::-1])
    return grid, carried, under, contents


# --------------------------------------------------------------------------- the domain


@dataclass(frozen=True)
class MiniGridDomain:
    """The interactive grid of the paper's MiniGrid suite as a `wav.domains.base.Domain`."""

    models: str = "paper"
    """model preset (wav.config.MODEL_PRESETS): paper or pointer (pointer world model) | generic | debug"""
    box_toggle: str = "swap"
    """box semantics of the data, the env and the action following score: swap | recolor"""
    env_id: str = "WAV/MultiTask-v0"
    """the environment the online loop explores"""
    afs_states: int = 200
    """start states of the action following score"""
    world_init: str | None = None
    """a pretrained world-model checkpoint (`pretrain_world_model`) that every fresh world model starts
    from: the seed-set fit, the ensemble's members, and a refit from scratch; None: random initialisation"""
    space: Discrete = field(default=SPACE)

    @property
    def preset(self) -> ModelsPreset:
        return model_preset(self.models)

    def batch(self, data: Transitions) -> TransitionBatch:
        return batch(data)

    def concat(self, parts: list[Transitions]) -> Transitions:
        return Transitions.concat(parts)

    def subset(self, data: Transitions, index: np.ndarray) -> Transitions:
        return data.subset(index)

    def fit(self, part: str, data: Transitions, seed: int, train: TrainConfig | None = None, model=None, members: int = 1):
        p = self.preset
        if part in ("world_model", "ensemble"):
            cfg = replace(p.world_model, members=members) if part == "ensemble" else p.world_model
            if model is None and self.world_init is not None:
                model = start_world_model(self.world_init, cfg)
            return train_world_model(data, cfg, train or p.world_model_train, seed, model)[0]
        if part in ("inverse", "dense_inverse"):
            cfg = replace(p.inverse, dense=True) if part == "dense_inverse" else p.inverse
            return train_inverse(data, cfg, train or p.inverse_train, seed, model)[0]
        raise ValueError(f"unknown model part {part!r}; known: {', '.join(PARTS)}")

    def probes(self, source: Transitions) -> np.ndarray:
        """The action following score's start states, drawn once from `source` (fixed stream)."""
        from wav.evaluate import afs_states

        return afs_states(source.features()[0], self.afs_states, np.random.default_rng(50_000))

    def evaluate(self, world_model, data: PoolData) -> dict:
        """`test_metrics` of the test set (and, prefixed `<name>/`, of every extra test set) and the AFS."""
        from wav.evaluate import action_following_score

        out = {**test_metrics(world_model, data.test), "afs": action_following_score(world_model, data.probes, self.box_toggle)}
        for name, test in data.extra_tests.items():
            out.update({f"{name}/{k}": v for k, v in test_metrics(world_model, test).items()})
        return out

    # ---- online

    def make_env(self, seed: int):
        import gymnasium as gym

        import wav.envs  # noqa: F401  (registers the env ids)

        env = gym.make(self.env_id, box_toggle=self.box_toggle).unwrapped
        env.reset(seed=seed)
        return env

    def reset(self, env, seed: int) -> None:
        env.reset(seed=seed)

    def observe(self, env):
        from wav.envs.minigrid.dynamics import step_batch

        grid, carried, under, contents = _hidden_state(env)
        state = torch.from_numpy(to_features(grid[None], carried[None]))

        def outcomes(actions: Tensor) -> TransitionBatch:
            n = len(actions)
            rep = lambda x: np.repeat(x[None], n, 0)  # noqa: E731
            ng, nc = step_batch(rep(grid), rep(carried), actions.numpy(), self.box_toggle, under=rep(under), box_contents=rep(contents))
            return TransitionBatch(state.repeat(n, 1), actions, torch.from_numpy(to_features(ng, nc)))

        return state, outcomes

    def step(self, env, action) -> tuple[tuple, bool]:
        grid, carried = env.encode_state()
        obs, _, term, trunc, _ = env.step(int(action))
        return (grid, carried, int(action), obs["grid"], obs["carried"]), bool(term or trunc)

    def transitions(self, records: list[tuple]) -> Transitions:
        return Transitions.from_arrays(*(np.stack(col) for col in zip(*records)))


DOMAIN_PRESETS: dict[str, MiniGridDomain] = {
    # the experiments' world model is the generic conv net (the pointer one: `models="pointer"`)
    "paper": MiniGridDomain(models="generic"),
    "debug": MiniGridDomain(models="debug", afs_states=20),
}


def domain_preset(preset: str, models: str | None = None) -> MiniGridDomain:
    """The named domain preset, with another model preset when `models` is given."""
    from wav.config import preset as lookup

    d = lookup(DOMAIN_PRESETS, preset)
    return replace(d, models=models) if models else d
