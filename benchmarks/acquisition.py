"""Where the time of the acquisition protocol goes, and what the world model's refit recipe buys.

Part 1 runs the published protocol for one seed exactly as `wav reproduce acquisition` does (5
strategies, 200 seed + 2 x 50 labels, the published 28k pool, the 10,500-transition overlapping test set,
the generic world model of the main result) with `--jobs` parallel workers, and reports the wall time,
the two waves of jobs and every run's time per round (scoring, training, evaluation). Part 2 is the
accuracy-vs-time trade-off of the refit recipe: seed-set world model + 100 random pool labels, refit
with each (epochs, lr, batch), error on a DEVELOPMENT test set (make-testset with another seed, never
the reported one).

    python benchmarks/acquisition.py --official $WAV_OFFICIAL_DATA --subgoal runs/subgoal-paper.pt --out benchmarks/results/acquisition.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

POOL = "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"
SEED = "random_selected_data.npz"
AFS = "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz"
STRATEGIES = ("random", "uncertainty", "progress", "wav", "oracle")
RECIPES = ((40, 1e-3, 32), (30, 2e-3, 64), (20, 1e-3, 32), (15, 3e-3, 32), (40, 2e-3, 64), (60, 3e-3, 128), (100, 1e-3, 32))


def one_seed(args) -> list[str]:
    from wav.experiments.acquisition import AcquisitionExperiment, run, run_dir

    out = Path(args.work) / "one-seed"
    shutil.rmtree(out, ignore_errors=True)
    exp = AcquisitionExperiment(out=str(out), seeds=(0,), strategies=STRATEGIES, models="generic", test_overlap=True, jobs=args.jobs,
                                pool=os.path.join(args.official, POOL), seed_data=os.path.join(args.official, SEED),
                                afs_data=os.path.join(args.official, AFS), subgoal=args.subgoal)
    t0 = time.perf_counter()
    res = run(exp)
    total = time.perf_counter() - t0
    lines = [f"## One seed of the published protocol, end to end ({args.jobs} workers)", "",
             f"`run()` took **{total:.1f} s** wall (data, the two waves of jobs, the report and figure); the jobs "
             f"{res['wall_seconds']:.1f} s: fits {res['wave_seconds']['fits']:.1f} s, runs {res['wave_seconds']['runs']:.1f} s. "
             f"CPU time of the jobs: {res['cpu_seconds_per_seed']:.1f} s. Target: 60 s on 2 cores.", "",
             "| job | seconds |", "|---|---|"]
    for j in res["job_seconds"]:
        name = {"proposals": "generator proposals over the pool (once per experiment)", "fit": f"seed-set fit: {j.get('part')} (+ round-0 evaluation, pool oracle)"}.get(j["kind"], f"run `{j.get('strategy')}`")
        lines.append(f"| {name} | {j['seconds']:.1f} |")
    lines += ["", "Inside each run, per round (seconds): scoring the pool / training (world model; `wav` also refits its inverse model) / evaluation:", "",
              "| strategy | round 1 | round 2 |", "|---|---|---|"]
    for s in STRATEGIES:
        rows = [json.loads(x) for x in (run_dir(exp, s, 0) / "timing.jsonl").read_text().splitlines()]
        lines.append(f"| {s} | " + " | ".join(f"{r['score']:.1f} / {r['train']:.1f} / {r['eval']:.1f}" for r in rows) + " |")
    return lines


def trade_off(args) -> list[str]:
    from dataclasses import replace

    from wav.config import model_preset
    from wav.data.collect import make_testset
    from wav.data.io import load_transitions
    from wav.experiments.common import cached_transitions
    from wav.config import ROUND_PRESETS
    from wav.domains.minigrid import test_metrics, train_world_model
    from wav.data.io import Transitions

    pool = load_transitions(os.path.join(args.official, POOL))
    seed_set = load_transitions(os.path.join(args.official, SEED))
    dev = cached_transitions(Path(args.work) / "dev.npz", lambda: make_testset(1500, pool, 7, progress=False)[0])
    p = model_preset("generic")
    errs, secs = {r: [] for r in RECIPES}, {r: [] for r in RECIPES}
    seeds = [int(s) for s in args.seeds.split(",")]
    for s in seeds:  # one seed-set model and one labelled set per seed, refit with each recipe
        wm, _ = train_world_model(seed_set, p.world_model, p.world_model_train, s)
        lab = Transitions.concat([seed_set, pool.subset(np.random.default_rng(s).choice(len(pool), 100, replace=False))])
        for r in RECIPES:
            refit = replace(ROUND_PRESETS["paper"].refit, epochs=r[0], lr=r[1], batch_size=r[2])
            t = time.perf_counter()
            w2, _ = train_world_model(lab, p.world_model, refit, s + 1, copy.deepcopy(wm))
            secs[r].append(time.perf_counter() - t)
            errs[r].append(test_metrics(w2, dev)["pred_error"])
    default = ROUND_PRESETS["paper"].refit
    lines = ["## Refit recipe: accuracy vs time (generic world model; development test set; seed set + 100 random pool labels)", "",
             f"| refit epochs | lr | batch | dev prediction error (mean ± sd over seeds {args.seeds}) | refit seconds |", "|---|---|---|---|---|"]
    for r in RECIPES:
        mark = " (default)" if (r[0], r[1], r[2]) == (default.epochs, default.lr, default.batch_size) else ""
        lines.append(f"| {r[0]}{mark} | {r[1]:g} | {r[2]} | {np.mean(errs[r]):.3f} ± {np.std(errs[r]):.3f} | {np.mean(secs[r]):.1f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--subgoal", required=True, help="trained subgoal checkpoint (wav train subgoal --data <video file>)")
    ap.add_argument("--out", default="benchmarks/results/acquisition.md")
    ap.add_argument("--work", default="runs/bench-acquisition")
    ap.add_argument("--jobs", type=int, default=2, help="parallel workers of part 1")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the trade-off part")
    ap.add_argument("--skip", choices=("none", "one-seed", "trade-off"), default="none")
    args = ap.parse_args()

    from wav.runtime import cpu_description, set_threads

    set_threads(1)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    lines = ["# Acquisition protocol: where the time goes (benchmarks/acquisition.py)", "",
             f"Command: `python benchmarks/acquisition.py --official $WAV_OFFICIAL_DATA --subgoal {args.subgoal} --out {args.out}`  ",
             f"Machine: {cpu_description()}, torch {torch.__version__}, 1 torch thread per worker; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average at the start {os.getloadavg()[0]:.1f}.", ""]
    if args.skip != "one-seed":
        lines += one_seed(args) + [""]
    if args.skip != "trade-off":
        lines += trade_off(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
