"""Is a refit that breaks one action type a divergence or an unlucky end point?

Replays one (strategy, seed) run of the acquisition protocol exactly as `wav reproduce acquisition`
runs it, records the inputs of its last world-model refit (the labelled set and the model it continues
from), and repeats that refit with other refit seeds (batch order and dropout draws) and other learning
rates. It reports the test error per action and the last training losses of each. The default case is
the capped-oracle run of seed 7 in the 10-seed sweep, whose forward error jumped to 61 in its last refit.

    python benchmarks/refit_breakdown.py --official $WAV_OFFICIAL_DATA --subgoal runs/subgoal-paper.pt \
        --test runs/acq/generic-overlap/data/test_overlap.npz --out benchmarks/results/refit_breakdown.md
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

POOL = "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"
SEED = "random_selected_data.npz"
AFS = "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--subgoal", required=True, help="trained subgoal checkpoint (only read when the strategy needs it)")
    ap.add_argument("--test", required=True, help="the sweep's test set (<sweep out>/data/test_overlap.npz)")
    ap.add_argument("--strategy", default="oracle-capped")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", default="runs/bench-refit-breakdown")
    ap.add_argument("--out", default="benchmarks/results/refit_breakdown.md")
    args = ap.parse_args()

    import wav.domains.minigrid as minigrid
    from wav.data.io import load_transitions
    from wav.experiments.acquisition import AcquisitionExperiment, _fit_job, _strategy_job, prepare_data
    from wav.domains.minigrid import test_metrics
    from wav.runtime import cpu_description, set_threads

    set_threads(1)
    work = Path(args.work)
    shutil.rmtree(work / "runs", ignore_errors=True)
    exp = AcquisitionExperiment(out=str(work), seeds=(args.seed,), strategies=(args.strategy,), models="generic", test_overlap=True,
                                pool=os.path.join(args.official, POOL), seed_data=os.path.join(args.official, SEED),
                                afs_data=os.path.join(args.official, AFS), subgoal=args.subgoal, test_data=args.test)
    paths = prepare_data(exp)
    calls = []
    fit = minigrid.train_world_model

    def recording(labelled, cfg, train, seed, model=None):  # the run's refits, with the model each continues from
        calls.append((labelled, cfg, train, seed, copy.deepcopy(model)))
        return fit(labelled, cfg, train, seed, model)

    minigrid.train_world_model = recording
    try:
        f = _fit_job(exp, paths, args.seed, "world_model")
        _strategy_job(exp, paths, args.seed, args.strategy, {"world_model": f["model"]}, f["start"])
    finally:
        minigrid.train_world_model = fit
    test = load_transitions(args.test)
    labelled, cfg, train, refit_seed, base = calls[-1]
    acts = list(test_metrics(base, test)["per_action_error"])
    lines = ["# A refit that breaks one action type (benchmarks/refit_breakdown.py)", "",
             f"Command: `python benchmarks/refit_breakdown.py --official $WAV_OFFICIAL_DATA --subgoal {args.subgoal} --test {args.test} "
             f"--strategy {args.strategy} --seed {args.seed} --out {args.out}`  ",
             f"Machine: {cpu_description()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             f"The last refit of the `{args.strategy}` run of seed {args.seed}: {len(labelled)} labels, continued from the round-1 model. "
             "Test error (the sweep's test set) overall and per action, and the mean training loss of the last three epochs:", "",
             "| refit | error | " + " | ".join(acts) + " | last training losses |", "|---|---|" + "---|" * len(acts) + "---|"]

    def row(name, model, losses="—"):
        r = test_metrics(model, test)
        lines.append(f"| {name} | {r['pred_error']:.3f} | " + " | ".join(f"{r['per_action_error'][a]:.1f}" for a in acts) + f" | {losses} |")

    row("before (the round-1 model)", base)
    variants = [("as run (refit seed %d)" % refit_seed, train, refit_seed)]
    variants += [(f"refit seed {refit_seed + d}", train, refit_seed + d) for d in (100, 200, 300)]
    variants += [("lr 1e-3", replace(train, lr=1e-3), refit_seed), ("lr 1e-3, 60 epochs", replace(train, lr=1e-3, epochs=60), refit_seed)]
    for name, tc, fs in variants:
        m, h = fit(labelled, cfg, tc, fs, copy.deepcopy(base))
        row(name, m, ", ".join(f"{x:.3f}" for x in h.train_loss[-3:]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
