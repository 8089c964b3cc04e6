"""Why some refits break under every recipe (issue 15, part 3): the oracle's first batch, on a development set.

For each seed: the `generic` world model fit on the 200 published seed transitions (from scratch), the oracle's
first batch (the `--budget` pool transitions with the largest true error), one refit on seed set + batch (the
loop's schedule), and the same refit without the batch's toggles. Reported: the batch's action counts, each
action's error on the development policy set (make-testset seed 31,000) before and after, and, among the
development toggles, how many are predicted wrongly before and after (the break is in the size of the errors
or in their number).

    WAV_THREADS=1 python benchmarks/refit_interference.py --official $WAV_OFFICIAL_DATA --seeds 16,17 \
        --out benchmarks/results/refit_interference.md
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import numpy as np
import torch

POOL = "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"
SEED = "random_selected_data.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--seeds", default="16,17")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--work", default="runs/bench-refit-recipes", help="where the development set is cached")
    ap.add_argument("--out", default="benchmarks/results/refit_interference.md")
    args = ap.parse_args()
    if args.budget < 1:
        raise SystemExit("refit_interference: --budget must be >= 1")

    from wav.config import ROUND_PRESETS, model_preset
    from wav.data.io import Transitions, load_transitions
    from wav.domains.minigrid import MiniGridDomain, batch, test_metrics, train_world_model
    from wav.envs.minigrid.encoding import ACTION_NAMES
    from wav.experiments.common import development_set
    from wav.loop import pool_oracle
    from wav.runtime import set_threads
    from wav.stats import parse_seeds


    set_threads(1)
    seed_set = load_transitions(os.path.join(args.official, SEED))
    pool = load_transitions(os.path.join(args.official, POOL))
    dev = development_set(Path(args.work))
    dev_batch = batch(dev)
    p, refit = model_preset("generic"), ROUND_PRESETS["paper"].refit
    toggle = ACTION_NAMES.index("toggle")
    dev_toggles = [x[torch.from_numpy(np.flatnonzero(dev.actions == toggle))] for x in dev_batch.tensors()]

    def wrong_toggles(model) -> int:
        s, a, n = dev_toggles
        with torch.no_grad():
            return int((model.predict(s, a) != n).any(1).sum())

    def errors(model) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in test_metrics(model, dev)["per_action_error"].items())

    L = ["# What the oracle's first batch teaches (`benchmarks/refit_interference.py`)", "",
         f"`generic` world model fit on the 200 seed transitions, refit once on them plus the oracle's first batch ({args.budget} pool "
         f"transitions of largest true error), and once without that batch's toggles. Development policy set: make-testset seed 31,000, "
         f"{len(dev)} transitions ({len(dev_toggles[0])} toggles). Per-action Prediction Error on it:", ""]
    for seed in parse_seeds(args.seeds):
        base, _ = train_world_model(seed_set, p.world_model, p.world_model_train, seed)
        pick = np.argsort(-pool_oracle(MiniGridDomain(models="generic"), base, pool), kind="stable")[: args.budget]
        after, _ = train_world_model(Transitions.concat([seed_set, pool.subset(pick)]), p.world_model, refit, seed + 1, copy.deepcopy(base))
        keep = pick[pool.actions[pick] != toggle]
        without, _ = train_world_model(Transitions.concat([seed_set, pool.subset(keep)]), p.world_model, refit, seed + 1, copy.deepcopy(base))
        counts = ", ".join(f"{n} {c}" for n, c in zip(ACTION_NAMES, np.bincount(pool.actions[pick], minlength=len(ACTION_NAMES))) if c)
        L += [f"## Seed {seed}", "", f"- the batch: {counts}",
              f"- before the refit: {errors(base)}", f"- after: {errors(after)}", f"- after, without the batch's toggles: {errors(without)}",
              f"- development toggles predicted wrongly: {wrong_toggles(base)} before, {wrong_toggles(after)} after, of {len(dev_toggles[0])}", ""]
        print("\n".join(L[-7:]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(L))


if __name__ == "__main__":
    main()
