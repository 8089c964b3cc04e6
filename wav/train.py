"""The fitting loop of every model (one plain function over a batch sampler) and their checkpoints.

`fit` runs Adam over the minibatches of a sampler (rows of transitions, or windows of sequences) with a
validation split and early stopping (restoring the best weights); every random draw (split, batch order,
dropout, mask noise) comes from one seeded torch.Generator. Which model a domain fits on which data is
the domain's business (wav.domains).
Checkpoints are dicts {kind, config, state_dict, versions, meta} and refuse to load into a model of
another kind or config.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

from wav.config import TrainConfig
from wav.data.io import atomic_write
from wav.models import MODEL_KINDS
from wav.runtime import Progress, one_thread, package_versions, torch_generator


@dataclass
class History:
    """What one fit did: per-epoch mean training and validation losses."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    """the epoch whose weights the fit ended with (-1: a tail average, `TrainConfig.average_last`)"""
    seconds: float = 0.0
    stopped_early: bool = False


class Rows:
    """A batch sampler over the rows of equal-length tensors (one-step models: (s, a, s') or (s, s')).

    The contract `fit` relies on (a sequence sampler, wav.data.sequences.Windows, keeps it too):
    `len` = items; `split(n_val, g)` -> (train, val) from one permutation; `epoch(batch_size, g)` yields
    one pass of shuffled minibatches, each the positional arguments of `model.training_loss`;
    `chunks(size)` yields a deterministic pass (validation)."""

    def __init__(self, *tensors: Tensor, weights: Tensor | None = None):
        self.tensors = tensors
        self.weights = weights
        """None: an epoch visits every row once; else it draws len rows with these probabilities (with replacement)"""

    def __len__(self) -> int:
        return len(self.tensors[0])

    def balanced(self) -> "Rows":
        """The same rows drawn with probability 1 / (rows with the same action): rows (state, action, ...)
        with integer actions, so every action present gets an equal share of each epoch."""
        a = self.tensors[1] if len(self.tensors) > 1 else None
        if a is None or a.dim() != 1 or a.is_floating_point():
            raise ValueError("balance_actions needs rows (state, action, ...) with one integer action per row")
        return Rows(*self.tensors, weights=1.0 / torch.bincount(a)[a].double())

    def split(self, n_val: int, generator: torch.Generator) -> tuple["Rows", "Rows"]:
        perm = torch.randperm(len(self), generator=generator)
        w = self.weights
        return (Rows(*(t[perm[n_val:]] for t in self.tensors), weights=None if w is None else w[perm[n_val:]]),
                Rows(*(t[perm[:n_val]] for t in self.tensors)))

    def epoch(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
        if self.weights is not None:
            order = torch.multinomial(self.weights, len(self), replacement=True, generator=generator)
        else:
            order = torch.randperm(len(self), generator=generator)
        for i in range(0, len(self), batch_size):
            idx = order[i : i + batch_size]
            yield tuple(t[idx] for t in self.tensors)

    def chunks(self, size: int) -> Iterator[tuple[Tensor, ...]]:
        for j in range(0, len(self), size):
            yield tuple(t[j : j + size] for t in self.tensors)


def _n_val(n: int, fraction: float) -> int:
    """Rows held out for validation: round(fraction * n), at least 1 when there is a split and n >= 2."""
    if fraction <= 0 or n < 2:
        return 0
    return min(max(int(round(fraction * n)), 1), n - 1)


def fit(model: nn.Module, data, cfg: TrainConfig, seed: int = 0, log=None) -> History:
    """Minimise `model.training_loss(*batch, generator=g)` over the minibatches of a batch sampler (`Rows`
    for one-step models, `wav.data.sequences.Windows` for sequence models; a tuple of tensors is read as
    `Rows`). A model with a `clip_grad` attribute has its gradient norm clipped there.

    The validation split (cfg.val_fraction of the items, at least 1 when there are >= 2) is scored with
    `model.training_loss(*chunk)` without a generator, i.e. deterministic (no dropout, hard mask).
    """
    data = Rows(*data) if isinstance(data, tuple) else data
    if cfg.balance_actions:
        if not isinstance(data, Rows):
            raise ValueError("balance_actions needs a Rows sampler (one-step rows), not a sequence sampler")
        data = data.balanced()
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.soup < 1 or cfg.restarts < 1:
        raise ValueError(f"soup and restarts must be >= 1, got soup {cfg.soup}, restarts {cfg.restarts}")
    if not cfg.anchor >= 0:
        raise ValueError(f"anchor must be >= 0, got {cfg.anchor}")
    if not cfg.distill >= 0:
        raise ValueError(f"distill must be >= 0, got {cfg.distill}")
    if cfg.distill > 0 and not hasattr(model, "distill_loss"):
        raise ValueError(f"distill needs a model with distill_loss(teacher, *batch, generator=...); {type(model).__name__} has none")
    if cfg.soup > 1 and cfg.restarts > 1:
        raise ValueError(f"soup ({cfg.soup}) and restarts ({cfg.restarts}) do not combine: choose one")
    with one_thread():  # the same seed gives the same model whatever the process's thread count
        if cfg.soup > 1 or cfg.restarts > 1:
            return _members(model, data, cfg, seed, log)
        return _fit(model, data, cfg, seed, log)


MEMBER_SEED_STRIDE = 1000
"""member j of a soup or of restarts fits with seed + MEMBER_SEED_STRIDE * j (member 0 is the plain fit of `seed`)"""


def _members(model: nn.Module, data, cfg: TrainConfig, seed: int, log) -> History:
    """N fits from the model's current weights that differ only in the seed. A soup (cfg.soup = N) ends with
    the mean of their weights (history: member 0's, best_epoch -1); restarts (cfg.restarts = N) end with the
    member whose deterministic loss on all of `data` is lowest (history: that member's). Seconds: the total."""
    n = max(cfg.soup, cfg.restarts)
    start, one, states, hists, losses = copy.deepcopy(model.state_dict()), dataclasses.replace(cfg, soup=1, restarts=1), [], [], []
    t0 = time.perf_counter()
    for j in range(n):
        model.load_state_dict(start)
        hists.append(_fit(model, data, one, seed + MEMBER_SEED_STRIDE * j, log))
        states.append(copy.deepcopy(model.state_dict()))
        if cfg.restarts > 1:
            losses.append(_eval_loss(model, data))
    if cfg.soup > 1:
        model.load_state_dict(average_states(states))
        hist = hists[0]
        hist.best_epoch = -1
    else:
        k = min(range(n), key=losses.__getitem__)  # ties: the earliest member
        model.load_state_dict(states[k])
        hist = hists[k]
    model.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


def _fit(model: nn.Module, data, cfg: TrainConfig, seed: int, log) -> History:
    g = torch_generator(seed)
    n_val = _n_val(len(data), cfg.val_fraction)
    train, val = data.split(n_val, g)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    clip = getattr(model, "clip_grad", None)
    hist, best, best_state, bad = History(), float("inf"), None, 0
    tail = collections.deque(maxlen=cfg.average_last) if cfg.average_last > 0 and not n_val else None
    pick = cfg.keep_best_train and not n_val  # the best epoch on the training data (no split to choose on)
    start, progress = time.perf_counter(), Progress(f"fit {type(model).__name__}")  # long fits say where they are, at least every 10 s
    params = [p for p in model.parameters() if p.requires_grad]
    origin = [p.detach().clone() for p in params] if cfg.anchor > 0 else None  # L2-SP: the weights the fit starts from
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if cfg.distill > 0 else None  # the function the fit starts from
    for epoch in range(cfg.epochs):
        model.train()
        total = 0.0
        for batch in train.epoch(cfg.batch_size, g):
            loss = model.training_loss(*batch, generator=g)
            opt.zero_grad(set_to_none=True)
            objective = loss  # the data loss plus the penalties; the history records the data loss
            if origin is not None:
                objective = objective + cfg.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, origin))
            if teacher is not None:
                objective = objective + cfg.distill * model.distill_loss(teacher, *batch, generator=g)
            objective.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            total += float(loss.detach()) * len(batch[0])
            progress(lambda: f"epoch {epoch + 1}/{cfg.epochs}, batch loss {float(loss.detach()):.4g}"
                     + (f", last validation {hist.val_loss[-1]:.4g}" if hist.val_loss else ""))
        hist.train_loss.append(total / max(len(train), 1))
        if n_val:
            model.eval()
            with torch.no_grad():
                v = sum(float(model.training_loss(*chunk)) * len(chunk[0]) for chunk in val.chunks(1024)) / n_val
            hist.val_loss.append(v)
            if v < best - 1e-6:
                best, best_state, bad, hist.best_epoch = v, copy.deepcopy(model.state_dict()), 0, epoch
            else:
                bad += 1
        if tail is not None:
            tail.append(copy.deepcopy(model.state_dict()))
        if pick:
            v = _eval_loss(model, train)
            if v < best - 1e-6:
                best, best_state, hist.best_epoch = v, copy.deepcopy(model.state_dict()), epoch
        if log is not None:
            log(epoch, hist)
        if n_val and bad >= cfg.patience:
            hist.stopped_early = True
            break
        if time.perf_counter() - start > cfg.max_seconds and epoch + 1 < cfg.epochs:
            hist.stopped_early = True
            print(f"fit {type(model).__name__}: stopped by the {cfg.max_seconds:.0f} s time guard after epoch {epoch + 1}/{cfg.epochs} "
                  "(the model now depends on this machine's speed)", file=sys.stderr, flush=True)
            break
    if tail:  # the tail average; with keep_best_train it competes with the epochs' end points
        avg = average_states(list(tail))
        if pick:
            model.load_state_dict(avg)
            v = _eval_loss(model, train)
        if not pick or v < best - 1e-6:
            best_state, hist.best_epoch = avg, -1  # -1: the weights are the tail average, no single epoch's
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        hist.best_epoch = len(hist.train_loss) - 1
    model.eval()
    hist.seconds = time.perf_counter() - start
    return hist


def _eval_loss(model: nn.Module, data) -> float:
    """Mean deterministic (eval-mode, no generator) loss over a sampler's items."""
    model.eval()
    with torch.no_grad():
        return sum(float(model.training_loss(*chunk)) * len(chunk[0]) for chunk in data.chunks(1024)) / max(len(data), 1)


def average_states(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The elementwise mean of state dicts (floating tensors); other entries (integer counters) from the last."""
    out = {}
    for k, v in states[-1].items():
        out[k] = torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v.clone()
    return out


def build(cls, cfg, seed: int) -> nn.Module:
    """`cls(cfg)` with parameters initialised from `seed`, leaving the global torch RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(cfg)


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
    if blob["kind"] == "inverse":  # saved before the flags and the what-changed mask existed: the token model
        for k in ("fill_flags", "visible_flags", "changed_only"):
            config.setdefault(k, False)
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
        whole = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise ValueError(f"{path}: weights do not fit the model ({whole}); saved with {blob.get('versions')}") from None
    model.eval()


def checkpoint_meta(path: str | Path) -> dict:
    """kind, config, versions and meta of a checkpoint, without building the model."""
    blob = _read(path)
    return {k: blob.get(k) for k in ("kind", "config", "versions", "meta")}
