"""Fitting loops for the verifier's models (plain functions) and their checkpoints.

`fit` runs Adam over minibatches with a validation split and early stopping (restoring the best weights);
every random draw (split, batch order, dropout, mask noise) comes from one seeded torch.Generator.
Checkpoints are dicts {kind, config, state_dict, versions, meta} and refuse to load into a model of
another kind or config.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from wav.config import InverseConfig, SubgoalConfig, TrainConfig, WorldModelConfig
from wav.data.io import atomic_write
from wav.models import MODEL_KINDS, GridWorldModel, MixtureSubgoalGenerator, SparseInverseModel
from wav.runtime import package_versions, torch_generator
from wav.types import Transitions


@dataclass
class History:
    """What one fit did: per-epoch mean training and validation losses."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0
    stopped_early: bool = False


def fit(model: nn.Module, tensors: tuple[Tensor, ...], cfg: TrainConfig, seed: int = 0, log=None) -> History:
    """Minimise `model.training_loss(*batch, generator=g)` over rows of `tensors` (all length N).

    The validation split (cfg.val_fraction of N, at least 1 row when N >= 2) is scored with
    `model.training_loss(*val)` without a generator, i.e. deterministic (no dropout, hard mask).
    """
    g = torch_generator(seed)
    n = len(tensors[0])
    perm = torch.randperm(n, generator=g)
    n_val = int(round(cfg.val_fraction * n)) if cfg.val_fraction > 0 and n >= 2 else 0
    n_val = min(max(n_val, 1 if cfg.val_fraction > 0 and n >= 2 else 0), n - 1)
    val = tuple(t[perm[:n_val]] for t in tensors)
    train = tuple(t[perm[n_val:]] for t in tensors)
    n_train = n - n_val
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hist, best, best_state, bad = History(), float("inf"), None, 0
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n_train, generator=g)
        total = 0.0
        for i in range(0, n_train, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = model.training_loss(*(t[idx] for t in train), generator=g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        hist.train_loss.append(total / max(n_train, 1))
        if n_val:
            model.eval()
            with torch.no_grad():
                v = sum(float(model.training_loss(*(t[j : j + 1024] for t in val))) * len(val[0][j : j + 1024]) for j in range(0, n_val, 1024)) / n_val
            hist.val_loss.append(v)
            if v < best - 1e-6:
                best, best_state, bad, hist.best_epoch = v, copy.deepcopy(model.state_dict()), 0, epoch
            else:
                bad += 1
        if log is not None:
            log(epoch, hist)
        if (n_val and bad >= cfg.patience) or time.perf_counter() - start > cfg.max_seconds:
            hist.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        hist.best_epoch = len(hist.train_loss) - 1
    model.eval()
    hist.seconds = time.perf_counter() - start
    return hist


def build(cls, cfg, seed: int) -> nn.Module:
    """`cls(cfg)` with parameters initialised from `seed`, leaving the global torch RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(cfg)


def _features(tr: Transitions) -> tuple[Tensor, Tensor, Tensor]:
    s, sn = tr.features()
    return torch.from_numpy(s), torch.from_numpy(tr.actions), torch.from_numpy(sn)


def train_world_model(
    tr: Transitions, cfg: WorldModelConfig = WorldModelConfig(), train: TrainConfig = TrainConfig(), seed: int = 0, model: GridWorldModel | None = None
) -> tuple[GridWorldModel, History]:
    """Fit (or, given `model`, continue fitting) the grid world model on labelled transitions."""
    model = build(GridWorldModel, cfg, seed) if model is None else model
    return model, fit(model, _features(tr), train, seed)


def train_subgoal(
    tr: Transitions, cfg: SubgoalConfig = SubgoalConfig(), train: TrainConfig = TrainConfig(), seed: int = 0, finetune: TrainConfig | None = None
) -> tuple[MixtureSubgoalGenerator, History]:
    """Fit the subgoal generator on (s, s') pairs; `tr.actions` is never read. `finetune`, if given, is a
    second stage (typically a lower learning rate) that continues from the first stage's best weights."""
    model = build(MixtureSubgoalGenerator, cfg, seed)
    s, sn = tr.features()
    data = (torch.from_numpy(s), torch.from_numpy(sn))
    hist = fit(model, data, train, seed)
    if finetune is not None:
        second = fit(model, data, finetune, seed + 1)
        hist.train_loss += second.train_loss
        hist.val_loss += second.val_loss
        hist.seconds += second.seconds
        hist.best_epoch = len(hist.train_loss) - len(second.train_loss) + second.best_epoch
    return model, hist


def train_inverse(
    tr: Transitions, cfg: InverseConfig = InverseConfig(), train: TrainConfig = TrainConfig(), seed: int = 0, model: SparseInverseModel | None = None
) -> tuple[SparseInverseModel, History]:
    """Fit (or, given `model`, continue fitting) the sparse (or, with cfg.dense, vanilla) inverse model."""
    model = build(SparseInverseModel, cfg, seed) if model is None else model
    s, a, sn = _features(tr)
    return model, fit(model, (s, a, sn), train, seed)


def kind_of(model: nn.Module) -> str:
    for kind, (cls, _) in MODEL_KINDS.items():
        if type(model) is cls:
            return kind
    raise ValueError(f"{type(model).__name__} is not a registered model kind ({sorted(MODEL_KINDS)})")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict | None = None) -> Path:
    """torch.save {kind, config, state_dict, versions, meta} atomically."""
    blob = dict(
        kind=kind_of(model),
        config=dataclasses.asdict(model.cfg),
        state_dict=model.state_dict(),
        versions=package_versions(),
        meta=meta or {},
    )
    return atomic_write(path, lambda tmp: torch.save(blob, tmp))


def _read(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(blob, dict) or not {"kind", "config", "state_dict"} <= set(blob):
        raise ValueError(f"{path}: not a wav checkpoint (expected a dict with kind, config, state_dict)")
    return blob


def load_checkpoint(path: str | Path, kind: str | None = None) -> nn.Module:
    """Rebuild the model a checkpoint describes; `kind` (e.g. "inverse") must match if given."""
    blob = _read(path)
    if kind is not None and blob["kind"] != kind:
        raise ValueError(f"{path}: checkpoint holds a '{blob['kind']}' model, not a '{kind}' model")
    if blob["kind"] not in MODEL_KINDS:
        raise ValueError(f"{path}: unknown model kind '{blob['kind']}' (known: {sorted(MODEL_KINDS)})")
    cls, cfg_cls = MODEL_KINDS[blob["kind"]]
    config = dict(blob["config"])
    if blob["kind"] in ("world-model", "subgoal"):
        config.setdefault("pointer", False)  # saved before pointer heads existed: the generic heads
    try:
        cfg = cfg_cls(**config)
    except TypeError as e:
        raise ValueError(f"{path}: config does not fit {cfg_cls.__name__} ({e}); saved with {blob.get('versions')}") from None
    model = cls(cfg)
    _load_state(model, blob, path)
    return model


def load_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint's weights into an existing model; refuses a different kind or config."""
    blob = _read(path)
    kind = kind_of(model)
    if blob["kind"] != kind:
        raise ValueError(f"{path}: checkpoint holds a '{blob['kind']}' model; cannot load it into a '{kind}' model")
    mine = dataclasses.asdict(model.cfg)
    diff = {k: (blob["config"].get(k), v) for k, v in mine.items() if blob["config"].get(k) != v}
    if diff or set(blob["config"]) != set(mine):
        shown = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{path}: config mismatch ({shown or 'different fields'}); build the model from the checkpoint with load_checkpoint")
    _load_state(model, blob, path)
    return model


def _load_state(model: nn.Module, blob: dict, path) -> None:
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ValueError(f"{path}: weights do not fit the model ({first}); saved with {blob.get('versions')}") from None
    model.eval()


def checkpoint_meta(path: str | Path) -> dict:
    """kind, config, versions and meta of a checkpoint, without building the model."""
    blob = _read(path)
    return {k: blob.get(k) for k in ("kind", "config", "versions", "meta")}
