"""Where the time of the acquisition protocol goes, and what the world model's refit recipe buys.

Part 1 times every component of one seed of the published protocol (5 strategies, 200 seed + 2 x 50
labels, ~28k pool, ~10k test set) on the published files: the shared seed-set fits, each strategy's
scoring pass, one per-round refit, one evaluation. Part 2 is the accuracy-vs-time trade-off of the refit
recipe: seed-set world model + 100 random pool labels, refit with E epochs, error on a DEVELOPMENT test
set (make-testset with another seed, never the reported one), for the pointer and the generic world model.

    python benchmarks/acquisition.py --official $WAV_OFFICIAL_DATA --subgoal runs/subgoal-paper.pt --out benchmarks/results/acquisition.md
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

POOL = "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"
SEED = "random_selected_data.npz"
AFS = "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--subgoal", required=True, help="trained subgoal checkpoint (wav train subgoal --data <video file>)")
    ap.add_argument("--out", default="benchmarks/results/acquisition.md")
    ap.add_argument("--work", default="runs/bench-acquisition")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the trade-off part")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from wav.acquire import Models, make_strategy
    from wav.config import TrainConfig, model_preset
    from wav.data.collect import make_testset
    from wav.experiments.common import cached_transitions
    from wav.loop import ACQUISITION_PRESETS, PoolData, _tensors, evaluate_round, train_shared
    from wav.metrics import afs_states
    from wav.runtime import set_threads
    from wav.train import load_checkpoint, train_world_model
    from wav.types import Transitions
    from wav.data.io import load_transitions

    set_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    pool = load_transitions(os.path.join(args.official, POOL))
    seed_set = load_transitions(os.path.join(args.official, SEED))
    test = cached_transitions(work / "test.npz", lambda: make_testset(1500, pool, 30_000, progress=False)[0])
    dev = cached_transitions(work / "dev.npz", lambda: make_testset(1500, pool, 7, progress=False)[0])
    afs = afs_states(load_transitions(os.path.join(args.official, AFS)).features()[0], 200, np.random.default_rng(50_000))
    subgoal = load_checkpoint(args.subgoal, "subgoal")
    cfg = ACQUISITION_PRESETS["paper"]

    # ---- part 1: components of one seed (pointer world model, the default)
    from wav.train import train_inverse

    data = PoolData(seed_set, pool, test, afs)
    shared, t_shared = timed(lambda: train_shared(data, subgoal, cfg, 0, {"previous"}))
    cand = _tensors(pool)
    gen = torch.Generator().manual_seed(0)
    models = Models(world_model=shared.world_model, subgoal=shared.subgoal, inverse=shared.inverse, round=1, k=cfg.k,
                    mc_passes=cfg.mc_passes, reduce=cfg.reduce, score_cap=cfg.score_cap)
    score = {name: timed(lambda: make_strategy(name).score(cand, models, gen))[1] for name in ("random", "uncertainty", "progress", "wav", "oracle")}
    score_wav_again = timed(lambda: make_strategy("wav").score(cand, models, gen))[1]
    lab = Transitions.concat([seed_set, pool.subset(np.arange(100))])
    t_refit = timed(lambda: train_world_model(lab, model_preset(cfg.models).world_model, cfg.refit, 1, copy.deepcopy(shared.world_model)))[1]
    t_inv = timed(lambda: train_inverse(lab, shared.inverse.cfg, cfg.inverse_round_train, 1, copy.deepcopy(shared.inverse)))[1]
    t_eval = timed(lambda: evaluate_round(shared.world_model, data, cfg.box_toggle))[1]
    rows = [("seed-set fits (world model + sparse inverse model), once per seed", t_shared)]
    rows += [(f"scoring pass `{n}` over the {len(pool):,}-transition pool", t) for n, t in score.items()]
    rows += [("scoring pass `wav`, second round (the generator's proposals are memoised)", score_wav_again),
             (f"one world-model refit (300 labels, {cfg.refit.epochs} epochs, batch {cfg.refit.batch_size})", t_refit),
             (f"one inverse refit (warm start, {cfg.inverse_round_train.epochs} epochs; `wav` only)", t_inv),
             (f"one evaluation ({len(test):,} test transitions + AFS)", t_eval)]
    # one seed = shared fits; per strategy 2 rounds of scoring, refit and evaluation; the oracle error
    # (for the rank correlations) in the 8 non-oracle rounds; wav's 2 inverse refits; one shared round-0 evaluation
    per_seed = (t_shared + sum(2 * t for n, t in score.items() if n != "wav") + score["wav"] + score_wav_again
                + 8 * score["oracle"] + 10 * t_refit + 2 * t_inv + 11 * t_eval)

    # ---- part 2: refit recipe trade-off on the development set
    trade = []
    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = ((15, 64), (40, 32), (100, 32))
    dev_data = PoolData(seed_set, pool, dev, afs)
    for models_name in ("paper", "generic"):
        wcfg = model_preset(models_name).world_model
        errs, secs = {r: [] for r in recipes}, {r: [] for r in recipes}
        for s in seeds:  # one seed-set model and one labelled set per seed, refit with each recipe
            wm, _ = train_world_model(seed_set, wcfg, model_preset(models_name).world_model_train, s)
            rng = np.random.default_rng(s)
            lab = Transitions.concat([seed_set, pool.subset(rng.choice(len(pool), 100, replace=False))])
            for epochs, batch in recipes:
                refit = replace(cfg.refit, epochs=epochs, batch_size=batch)
                (w2, _), t = timed(lambda: train_world_model(lab, wcfg, refit, s + 1, copy.deepcopy(wm)))
                errs[epochs, batch].append(evaluate_round(w2, dev_data, cfg.box_toggle)["pred_error"])
                secs[epochs, batch].append(t)
        trade += [(models_name, e, b, float(np.mean(errs[e, b])), float(np.std(errs[e, b])), float(np.mean(secs[e, b]))) for e, b in recipes]

    lines = [
        "# Acquisition protocol: where the time goes (benchmarks/acquisition.py)", "",
        f"Command: `python benchmarks/acquisition.py --official $WAV_OFFICIAL_DATA --subgoal {args.subgoal} --out {args.out}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} torch thread(s); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the end {os.getloadavg()[0]:.1f} (other jobs share the machine).", "",
        "## One seed of the published protocol, by component (pointer world model)", "",
        "| component | seconds |", "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in rows], "",
        f"One seed of the five strategies from these parts (shared fits; per strategy 2 scoring passes, 2 refits, 2 evaluations; the oracle "
        f"error of 8 non-oracle rounds for the rank correlations; 2 inverse refits): **{per_seed:.0f} s** on one core (target <= 60 s on 2 cores).", "",
        "## Refit recipe: accuracy vs time (development test set, seed set + 100 random pool labels)", "",
        "| world model | refit epochs | batch | dev prediction error (mean ± sd over seeds " + args.seeds + ") | refit seconds |", "|---|---|---|---|---|",
        *[f"| {m} | {e} | {b} | {mu:.3f} ± {sd:.3f} | {t:.1f} |" for m, e, b, mu, sd, t in trade],
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
