"""The subgoal generator's quality and cost: validity and coverage@K on held-out video rows and on
held-out policy states, training seconds (wall and CPU), for a preset with optional overrides.

Development (choose settings here): train on video rows 0:20000, score video rows 20000:22500 and a policy
set made with another seed (`wav data make-testset --seed 101 --exclude VIDEO`). Final (report once):
train on rows 0:22500 (as benchmarks/models.py), score rows 22500: and a held-out policy set (seed 202).

    python benchmarks/subgoal.py --official $WAV_OFFICIAL_DATA --policy /tmp/policy_dev.npz --dev
    python benchmarks/subgoal.py --official $WAV_OFFICIAL_DATA --policy /tmp/policy_test.npz --save runs/subgoal-paper.pt

`--also-prior-rule` scores a `seen_changes` generator a second time with the min_prior rule (same weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

VIDEO = "MiniGrid-Empty-Interact-6x6-o3-v0_video_pretraing.npz"
PUBLISHED_POLICY = "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def outside_window(states: np.ndarray, next_states: np.ndarray, radius: int = 1) -> float:
    """Share of (s, s') pairs that change a cell farther than `radius` steps (Chebyshev) from the agent."""
    from wav.envs.minigrid.encoding import AGENT, GRID_SIZE, N_CELLS

    c, cn = states[:, : 3 * N_CELLS].reshape(-1, N_CELLS, 3), next_states[:, : 3 * N_CELLS].reshape(-1, N_CELLS, 3)
    agent = (c[..., 0] == AGENT).argmax(1)
    cell = np.arange(N_CELLS)
    far = np.maximum(abs(cell // GRID_SIZE - (agent // GRID_SIZE)[:, None]), abs(cell % GRID_SIZE - (agent % GRID_SIZE)[:, None])) > radius
    return float(((c != cn).any(-1) & far).any(1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--policy", action="append", default=[], help="held-out policy transition file(s) to score (states only)")
    ap.add_argument("--published-policy", action="store_true", help="also score the published OOD policy test set")
    ap.add_argument("--dev", action="store_true", help="development split: train on rows 0:20000, score 20000:22500")
    ap.add_argument("--train-rows", type=int, default=None, help="train on the first N rows (default 22500, or 20000 with --dev)")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--set", default="{}", help='JSON overrides, e.g. {"subgoal": {"codes": 12}, "subgoal_train": {"lr": 0.01}, "subgoal_finetune": null}')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--min-prior", type=float, default=None, help="evaluate with this min_prior (sampling setting only)")
    ap.add_argument("--min-codes", default=None,
                    help="evaluate with each of these min_codes (comma-separated; sampling setting only, one trained model)")
    ap.add_argument("--also-prior-rule", action="store_true",
                    help="a seen_changes generator is also scored with the min_prior rule (same weights)")
    ap.add_argument("--ckpt", default=None, help="score this trained checkpoint instead of training one (the held-out video rows are then not held out)")
    ap.add_argument("--save", default=None, help="write the trained checkpoint here")
    args = ap.parse_args()
    try:
        min_codes = [int(x) for x in args.min_codes.split(",")] if args.min_codes else [None]
    except ValueError:
        raise SystemExit(f"subgoal: --min-codes must be comma-separated integers, got {args.min_codes!r}") from None

    from wav.config import TrainConfig, model_preset
    from wav.data.io import load_transitions
    from wav.domains.minigrid import train_subgoal
    from wav.evaluate import subgoal_metrics
    from wav.runtime import set_threads

    set_threads(1)
    p = model_preset(args.preset)
    over = json.loads(args.set)
    cfg = dataclasses.replace(p.subgoal, **over.get("subgoal", {}))
    tcfg = dataclasses.replace(p.subgoal_train, **over.get("subgoal_train", {}))
    ft = over.get("subgoal_finetune", "keep")
    ft = p.subgoal_finetune if ft == "keep" else (None if ft is None else TrainConfig(**{**dataclasses.asdict(p.subgoal_finetune or TrainConfig()), **ft}))
    video = load_transitions(Path(args.official) / VIDEO)
    n_train = args.train_rows or (20_000 if args.dev else 22_500)
    held = slice(20_000, 22_500) if args.dev else slice(22_500, len(video))
    train = video.subset(slice(0, n_train))
    s, sn = train.features()
    c0, t0 = cpu_seconds(), time.perf_counter()
    if args.ckpt:
        from wav.train import History, load_checkpoint

        model, hist = load_checkpoint(args.ckpt, "subgoal"), History()
    else:
        model, hist = train_subgoal(train, cfg, tcfg, seed=args.seed, finetune=ft)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    if args.min_prior is not None:
        model.cfg = dataclasses.replace(model.cfg, min_prior=args.min_prior)
    out = {"ckpt": args.ckpt, "train_rows": None if args.ckpt else n_train, "epochs": len(hist.train_loss), "train_seconds": round(wall, 1), "train_cpu_seconds": round(cpu, 1),
           "changes_outside_3x3": outside_window(s, sn), "config": dataclasses.asdict(model.cfg), "train": dataclasses.asdict(tcfg),
           "finetune": None if ft is None else dataclasses.asdict(ft)}
    sets = {f"video[{held.start}:{held.stop or len(video)}]": video.subset(held)}
    for f in args.policy:
        sets[Path(f).name] = load_transitions(f)
    if args.published_policy:
        sets["published policy test"] = load_transitions(Path(args.official) / PUBLISHED_POLICY)
    trained = model.cfg
    variants = [(trained if mc is None else dataclasses.replace(trained, min_codes=mc), "" if mc is None else f" (min_codes {mc})") for mc in min_codes]
    if args.also_prior_rule and trained.seen_changes:
        variants.append((dataclasses.replace(trained, seen_changes=False), f" (min_prior {trained.min_prior} rule)"))
    for cfg_v, tag in variants:
        model.cfg = cfg_v
        for name, tr in sets.items():
            st, _ = tr.features()
            m = subgoal_metrics(model, st, k=args.k)
            out[name + tag] = {"validity": round(m["validity"], 4), "coverage": round(m["coverage"], 4), "n": m["n"]}
    model.cfg = trained
    if args.save:
        from wav.train import save_checkpoint

        save_checkpoint(args.save, model, {"train_rows": n_train})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
