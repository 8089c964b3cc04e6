"""`wav train rssm|robot-inverse` and `wav eval rssm|robot-inverse`: the manipulation domain's models (issue 13,
item 7) fit on one partition (filter key) of a pool file, saved as checkpoints, evaluated on another partition.

Every bad input (a missing filter key, NaN states, actions outside [-1, 1], a checkpoint of another task, model
kind or state layout) is refused in one line naming the file and the field, exit code 2, before any training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from wav.cli.checks import CheckError, add_parser, guard, input_file, non_negative_float, output_file, positive_int
from wav.experiments.common import file_sha1

PRESETS = ("debug", "cpu", "paper")
CHECKPOINT_KIND = {"rssm": "rssm", "robot-inverse": "latent-inverse"}
"""the registered model kind (wav.models.MODEL_KINDS) each command writes and reads"""
MODEL = {"rssm": ("rssm",), "robot-inverse": ("inverse", "dense_inverse")}
"""what `meta.model` of a checkpoint of each command may be"""


class BadInput(ValueError):
    """A file the command cannot use; the message names the file and the field."""


def _pool(text: str) -> str:
    """A pool file, or a folder holding pool.hdf5 (checked at parse time)."""
    from wav.experiments.robot_acquisition import pool_file

    f = pool_file(os.path.expanduser(str(text)))
    if not f.is_file():
        raise CheckError(f"{text}: no pool file (expected a pool.hdf5 file or a folder holding one, as `wav robot build --out` writes)")
    if not os.access(f, os.R_OK):
        raise CheckError(f"{f}: not readable")
    return str(f)


def _horizon(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise CheckError(f"must be >= 2 (a window needs a first frame and one predicted step), got {value}")
    return value


def load_partition(path: str, key: str, images: bool = False):
    """The trajectories of filter key `key` as a TrajectorySet, and the file's env_args; BadInput names the file
    and the field (missing key, with the keys the file has; an empty partition; no state layout; NaN states or
    actions outside [-1, 1] in a demo)."""
    from wav.data.io import DataError
    from wav.data.robot_io import list_masks, load_trajectories
    from wav.data.sequences import check_trajectories
    from wav.domains.manipulation import TrajectorySet

    try:
        masks = list_masks(path)
    except OSError as e:
        raise BadInput(f"{path}: not a readable HDF5 file ({e})") from None
    if key not in masks:
        raise BadInput(f"{path}: field 'mask/{key}': no such filter key (the file has: {', '.join(sorted(masks)) or 'no filter keys'})")
    if not masks[key]:
        raise BadInput(f"{path}: field 'mask/{key}': is empty")
    try:
        trajs, env_args = load_trajectories(path, filter_key=key, images=images)  # NaN, action range, shapes: named per demo and field
    except DataError as e:
        raise BadInput(str(e)) from None
    layout = env_args.get("layout") or {}
    if not all(layout.get(k) for k in ("names", "sizes", "groups")):
        raise BadInput(f"{path}: field \"data.attrs['env_args'].layout\": missing names, sizes or groups of the flat state")
    try:
        check_trajectories([(t.states, t.actions) for t in trajs])
    except ValueError as e:
        raise BadInput(f"{path}: field 'mask/{key}': {e}") from None
    return TrajectorySet.of(trajs, layout), env_args


def _layout_key(layout: dict) -> list:
    return [[str(n), int(s)] for n, s in zip(layout.get("names", []), layout.get("sizes", []))]


def _read_checkpoint(path: str, command: str) -> dict:
    """The checkpoint's kind, config and meta, refused unless `wav train <command>` wrote it."""
    from wav.train import checkpoint_meta

    try:
        blob = checkpoint_meta(path)
    except (ValueError, FileNotFoundError) as e:
        raise BadInput(str(e)) from None
    kind, want = blob["kind"], CHECKPOINT_KIND[command]
    if kind != want:
        raise BadInput(f"{path}: field 'kind': the checkpoint holds a '{kind}' model, not a '{want}' one (write one with `wav train {command}`)")
    meta = blob.get("meta") or {}
    need = ("task", "layout", "model") + (("scale",) if command == "rssm" else ())
    missing = [k for k in need if k not in meta]
    if missing:
        raise BadInput(f"{path}: field 'meta.{missing[0]}': missing (not written by `wav train {command}`)")
    if meta["model"] not in MODEL[command]:
        raise BadInput(f"{path}: field 'meta.model': is {meta['model']!r}, not one of {list(MODEL[command])}")
    return blob


def _check_match(ckpt: str, meta: dict, data: str, env_args: dict) -> None:
    """The data must come from the checkpoint's task and have its state layout (names and sizes, in order)."""
    task = env_args.get("task")
    if str(task).lower() != str(meta["task"]).lower():
        raise BadInput(f"{data}: field \"data.attrs['env_args'].task\": is {task!r}, but {ckpt} was trained on task {meta['task']!r}")
    mine, theirs = _layout_key(env_args.get("layout") or {}), _layout_key(meta["layout"])
    if mine != theirs:
        mine, theirs = (", ".join(f"{n}:{s}" for n, s in x) for x in (mine, theirs))
        raise BadInput(f"{data}: field \"data.attrs['env_args'].layout\": state layout [{mine}] differs from the one {ckpt} was trained on [{theirs}]")


def _refused(e: Exception) -> int:
    print(f"wav: error: {e}", file=sys.stderr)
    return 2


def _print(metrics: dict, as_json: bool) -> None:
    from wav.experiments.common import finite_or_none

    if as_json:
        print(json.dumps(finite_or_none(metrics)))
        return

    def fmt(x):
        return "nan" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)

    for k, v in metrics.items():
        if isinstance(v, dict):
            print(f"{k}: " + ", ".join(f"{a}={fmt(x)}" for a, x in v.items()))
        elif isinstance(v, (list, tuple)):
            print(f"{k}: " + " ".join(fmt(x) for x in v))
        else:
            print(f"{k}: {fmt(v)}")


# --------------------------------------------------------------------------- train


@guard
def cmd_train(args) -> int:
    from wav.domains.manipulation import DOMAIN_PRESETS
    from wav.runtime import set_threads
    from wav.train import save_checkpoint

    set_threads(args.threads)
    domain = dataclasses.replace(DOMAIN_PRESETS[args.preset], images=False)  # states only here; camera frames: robot-acquisition --images
    part = "world_model" if args.command_name == "rssm" else "dense_inverse" if args.dense else "inverse"
    if part == "world_model":
        domain = dataclasses.replace(domain, rssm_openloop=args.openloop_scale)
    train = domain.world_model_train if part == "world_model" else domain.inverse_train
    if args.epochs is not None:
        train = dataclasses.replace(train, epochs=args.epochs)
    try:
        data, env_args = load_partition(args.data, args.filter)
        steps = sum(len(s) for s, _ in data.trajectories)
        if part == "world_model" and steps < domain.window:
            raise BadInput(f"{args.data}: field 'mask/{args.filter}': {steps} states in all, fewer than one {domain.window}-step window")
    except BadInput as e:
        return _refused(e)

    t0 = time.perf_counter()
    model = domain.fit(part, data, args.seed, train=train)  # progress lines on stderr (wav.train.fit)
    seconds = time.perf_counter() - t0
    net = model.rssm if part == "world_model" else model.model
    meta = {"task": env_args.get("task"), "preset": args.preset, "model": "rssm" if part == "world_model" else part,
            "layout": env_args["layout"], "filter": args.filter, "data": os.path.abspath(args.data), "data_sha1": file_sha1(args.data),
            "trajectories": len(data), "transitions": sum(len(a) for _, a in data.trajectories), "seed": args.seed,
            "train": dataclasses.asdict(train), "seconds": round(seconds, 2)}
    if part == "world_model":
        meta.update(window=domain.window, scale=[float(x) for x in model.scale])  # the standardiser eval rebuilds RSSMWorldModel with
    save_checkpoint(args.out, net, meta)
    summary = {"out": str(args.out), "model": meta["model"], "task": meta["task"], "filter": args.filter, "trajectories": len(data),
               "transitions": meta["transitions"], "epochs": train.epochs, "seconds": meta["seconds"]}
    _print(summary, args.json)
    return 0


# --------------------------------------------------------------------------- eval


def _eval_inputs(args):
    blob = _read_checkpoint(args.ckpt, args.command_name)
    data, env_args = load_partition(args.data, args.filter, images=bool(blob["config"].get("image_channels")))
    _check_match(args.ckpt, blob["meta"], args.data, env_args)
    a, want = data.dims[1], blob["config"].get("action_dim")
    if a != want:
        raise BadInput(f"{args.data}: field 'mask/{args.filter}' actions: {a} dims, but {args.ckpt} was trained on {want}-dim actions")
    return blob["meta"], data


@guard
def cmd_eval(args) -> int:
    import torch

    from wav.domains.base import PoolData
    from wav.domains.manipulation import ManipulationDomain, RSSMWorldModel, TrajectoryInverse
    from wav.runtime import set_threads
    from wav.train import load_checkpoint

    set_threads(args.threads)
    try:
        meta, data = _eval_inputs(args)
        net = load_checkpoint(args.ckpt, kind=CHECKPOINT_KIND[args.command_name])  # weights that do not fit: one line
    except ValueError as e:  # BadInput, or weights that do not fit the config
        return _refused(e)

    head = {"ckpt": str(args.ckpt), "model": meta["model"], "task": meta["task"], "filter": args.filter, "trajectories": len(data)}
    if args.command_name == "rssm":
        world_model = RSSMWorldModel(net, torch.tensor(meta["scale"], dtype=torch.float32), window=args.horizon).eval()
        domain = ManipulationDomain(window=args.horizon)
        metrics = {**head, "horizon": args.horizon, **domain.evaluate(world_model, PoolData(seed_set=data, pool=data, test=data))}
    else:
        from wav.experiments.robot_acquisition import inverse_diagnostics

        metrics = {**head, **inverse_diagnostics(TrajectoryInverse(net).eval(), data)}
    _print(metrics, args.json)
    return 0


# --------------------------------------------------------------------------- parsers


def register(top, groups) -> None:
    for name, what in (("rssm", "the RSSM world model"), ("robot-inverse", "the latent sparse inverse model (--dense: no mask)")):
        p = add_parser(groups["train"], name, help=f"train {what} on one partition of a robot pool file",
                       description=f"Train {what} on the trajectories of one filter key of a pool file (`wav robot build`).")
        p.add_argument("--data", type=_pool, required=True, help="the pool file of `wav robot build` (or its folder)")
        p.add_argument("--filter", default="warmup_50", help="the filter key (partition) to train on, e.g. warmup_50")
        p.add_argument("--preset", default="cpu", choices=PRESETS, help="model sizes and schedule (wav.domains.manipulation.DOMAIN_PRESETS)")
        p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batches")
        p.add_argument("--out", type=output_file, required=True, help="checkpoint path to write (checked before training; written atomically)")
        p.add_argument("--epochs", type=positive_int, default=None, help="override the preset's maximum epochs")
        p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default WAV_THREADS or min(cores, 2))")
        p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
        if name == "robot-inverse":
            p.add_argument("--dense", action="store_true", help="vanilla (dense) inverse model: no feature mask")
        else:
            p.add_argument("--openloop-scale", type=non_negative_float, default=0.0,
                           help="weight of the open-loop loss (the prior rolled over each training window under the recorded "
                                "actions; 0 = DreamerV3's objective)")
        p.set_defaults(func=cmd_train, command_name=name)

    for name, what in (("rssm", "open-loop prediction error of an RSSM checkpoint: overall, by step, by layout group"),
                       ("robot-inverse", "action MSE, per-dimension R^2 and the share of each layout group the mask keeps")):
        p = add_parser(groups["eval"], name, help=what, description=f"Evaluate on one partition of a robot pool file: {what}.")
        p.add_argument("--ckpt", type=input_file, required=True, help=f"checkpoint written by `wav train {name}`")
        p.add_argument("--data", type=_pool, required=True, help="the pool file of `wav robot build` (or its folder)")
        p.add_argument("--filter", default="eval", help="the filter key (partition) to evaluate on")
        if name == "rssm":
            p.add_argument("--horizon", type=_horizon, default=32, help="steps of an open-loop window (the first frame is observed)")
        p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default WAV_THREADS or min(cores, 2))")
        p.add_argument("--json", action="store_true", help="last stdout line: one JSON object of the metrics")
        p.set_defaults(func=cmd_eval, command_name=name)
