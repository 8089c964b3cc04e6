"""`wav train world-model|subgoal|inverse` and `wav eval world-model|inverse|subgoal`: parse, call
wav.train / wav.evaluate, print. With --json the last stdout line is one JSON object of the metrics."""

from __future__ import annotations

import json
import re

from wav.cli.checks import add_parser, guard, output_file, positive_int
from wav.config import MODEL_PRESETS, model_preset

TRAINERS = {
    "world-model": ("world_model", "train_world_model", "the world model f(s, a) -> s'"),
    "subgoal": ("subgoal", "train_subgoal", "the action-free subgoal generator p(s' | s) (ignores actions)"),
    "inverse": ("inverse", "train_inverse", "the sparse inverse model h(M*s, M*s') -> a (--dense: vanilla)"),
}


@guard
def _train(args) -> int:
    import dataclasses

    from wav import train
    from wav.data.io import load_transitions
    from wav.domains import minigrid
    from wav.runtime import set_threads

    set_threads(args.threads)
    preset = model_preset(args.preset)
    field, fn, _ = TRAINERS[args.model]
    cfg, tcfg = getattr(preset, field), getattr(preset, f"{field}_train")
    if args.model == "inverse" and args.dense:
        cfg = dataclasses.replace(cfg, dense=True)
    if args.model == "subgoal" and args.seen_changes:
        if not cfg.local:
            raise ValueError(f"--seen-changes needs an agent-centred generator; preset {args.preset!r} has the grid decoder")
        cfg = dataclasses.replace(cfg, seen_changes=True)
    if args.epochs is not None:
        tcfg = dataclasses.replace(tcfg, epochs=args.epochs)
    data = _rows(load_transitions(args.data), args.data, args.rows)
    extra = {"finetune": preset.subgoal_finetune} if args.model == "subgoal" else {}
    model, hist = getattr(minigrid, fn)(data, cfg, tcfg, seed=args.seed, **extra)
    meta = {"data": str(args.data), "rows": args.rows, "n": len(data), "preset": args.preset, "seed": args.seed, "train": dataclasses.asdict(tcfg),
            "epochs_run": len(hist.train_loss), "best_epoch": hist.best_epoch, "seconds": round(hist.seconds, 2)}
    train.save_checkpoint(args.out, model, meta)
    summary = {"out": str(args.out), "model": args.model, "epochs_run": len(hist.train_loss), "best_epoch": hist.best_epoch,
               "train_loss": hist.train_loss[-1] if hist.train_loss else None, "val_loss": min(hist.val_loss) if hist.val_loss else None,
               "seconds": round(hist.seconds, 2)}
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def _rows(data, path, rows: str | None):
    """The rows START:STOP (python slice syntax, either end optional) of a transition set; refuses an empty
    set or selection before any work."""
    if not len(data):
        raise ValueError(f"{path}: holds no transitions")
    if not rows:
        return data
    m = re.fullmatch(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*", rows)
    if not m:
        raise ValueError(f"--rows must look like START:STOP (e.g. 22500: or :1000), got {rows!r}")
    part = data.subset(slice(*(int(x) if x else None for x in m.groups())))
    if not len(part):
        raise ValueError(f"--rows {rows!r} selects none of the {len(data)} transitions of {path}")
    return part


def _load_checkpoint(path, kind: str):
    """wav.train.load_checkpoint, with torch's whole state-dict complaint (missing, unexpected and
    mis-shaped keys) in the one-line message instead of only its first line."""
    from wav.train import load_checkpoint

    try:
        return load_checkpoint(path, kind=kind)
    except ValueError as e:
        cause, msg = e.__context__, str(e)
        first = str(cause).splitlines()[0] if isinstance(cause, RuntimeError) and str(cause).strip() else None
        if first is None or first not in msg:
            raise
        whole = " ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        raise ValueError(msg.replace(first, whole, 1)) from None


def _print(metrics: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(metrics))
        return
    for k, v in metrics.items():
        if isinstance(v, dict):
            print(f"{k}: " + ", ".join(f"{a}={x:.4f}" for a, x in v.items()))
        else:
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")


@guard
def _eval(args) -> int:
    from wav import evaluate
    from wav.data.io import load_transitions
    from wav.runtime import set_threads

    set_threads(args.threads)
    data = _rows(load_transitions(args.data), args.data, args.rows)
    kind = args.model
    model = _load_checkpoint(args.ckpt, kind)
    if kind == "world-model":
        metrics = evaluate.world_model_metrics(model, data)
    elif kind == "inverse":
        metrics = evaluate.inverse_metrics(model, data, box_toggle=args.box_toggle)
    else:
        import dataclasses

        overrides = {k: v for k, v in (("min_prior", args.min_prior), ("min_class_prob", args.min_class_prob)) if v is not None}
        model.cfg = dataclasses.replace(model.cfg, **overrides)  # sampling settings only; the weights do not depend on them
        states, _ = data.features()
        metrics = evaluate.subgoal_metrics(model, states, k=args.k, box_toggle=args.box_toggle, seed=args.seed, exclude_goal=args.exclude_goal)
    _print(metrics, args.json)
    return 0


def register(top, groups) -> None:
    for name, (_, _, help_) in TRAINERS.items():
        p = add_parser(groups["train"], name, help=f"train {help_}", description=f"Train {help_}.")
        p.add_argument("--data", required=True, help="transition file (.npz, published schema)")
        p.add_argument("--out", required=True, type=output_file, help="checkpoint path to write (checked before training)")
        p.add_argument("--rows", default=None, help="use only rows START:STOP of the file (e.g. :22500 to hold out the tail)")
        p.add_argument("--preset", default="paper", choices=sorted(MODEL_PRESETS),
                       help="model/training preset: paper, generic (world model without pointer heads) or debug")
        p.add_argument("--seed", type=int, default=0, help="seed of initialisation, split, batches, dropout, mask noise")
        p.add_argument("--epochs", type=positive_int, default=None, help="override the preset's maximum epochs")
        p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default WAV_THREADS or min(cores, 2))")
        p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
        if name == "inverse":
            p.add_argument("--dense", action="store_true", help="vanilla inverse model: no feature mask")
        if name == "subgoal":
            p.add_argument("--seen-changes", action="store_true",
                           help="propose every code whose change occurs in the training pairs, and no other (SubgoalConfig.seen_changes; "
                                "agent-centred presets only): better validity and coverage, but a worse WAV acquisition (README)")
        p.set_defaults(func=_train, model=name)

    for name, help_ in (("world-model", "prediction error, dynamic accuracy, per-action dynamic accuracy"),
                        ("inverse", "per-action accuracy, dynamic accuracy (inferred action executed), mask size"),
                        ("subgoal", "validity and coverage of K samples against the true successor sets")):
        p = add_parser(groups["eval"], name, help=help_, description=f"Evaluate a {name} checkpoint: {help_}.")
        p.add_argument("--ckpt", required=True, help="checkpoint written by `wav train`")
        p.add_argument("--data", required=True, help="transition file (.npz)")
        p.add_argument("--json", action="store_true", help="last stdout line: one JSON object of the metrics")
        p.add_argument("--rows", default=None, help="evaluate only rows START:STOP of the file (e.g. 22500:)")
        p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default WAV_THREADS or min(cores, 2))")
        if name in ("inverse", "subgoal"):
            p.add_argument("--box-toggle", choices=("swap", "recolor"), default="swap",
                           help="box toggle of the true dynamics (o6 random-play and noise sets: recolor)")
        if name == "subgoal":
            p.add_argument("--k", type=positive_int, default=16, help="samples per state")
            p.add_argument("--seed", type=int, default=0, help="sampling seed")
            p.add_argument("--exclude-goal", action="store_true", help="drop terminal moves onto the goal from the successor sets")
            p.add_argument("--min-prior", type=float, default=None, help="override the checkpoint's min_prior (codes below it are not proposed)")
            p.add_argument("--min-class-prob", type=float, default=None, help="override the checkpoint's min_class_prob (>= 1: argmax decoding)")
        p.set_defaults(func=_eval, model=name)
