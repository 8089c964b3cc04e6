"""How WAV turns the verification cycle into one score per candidate: the choice behind the defaults.

On a DEVELOPMENT pool (28k multi-task transitions collected by our env with another seed, not the
published pool), with the published 200 seed transitions and the subgoal generator trained on the video
file, this compares the reductions of `CycleResult.action_scores` (min / expected / conditional) and the
score cap, for the pointer and the generic world model: Spearman and Kendall against the oracle error,
and the mean oracle error of the 50 and 100 top-scored candidates (what one acquisition round takes),
next to the oracle's own top 50.

    python benchmarks/wav_scoring.py --official $WAV_OFFICIAL_DATA --subgoal runs/subgoal-paper.pt --out benchmarks/results/wav_scoring.md
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--subgoal", required=True)
    ap.add_argument("--out", default="benchmarks/results/wav_scoring.md")
    ap.add_argument("--work", default="runs/bench-wav-scoring")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--caps", default="none,50,20")
    args = ap.parse_args()

    from wav.acquire import Models
    from wav.acquire.baselines import true_error
    from wav.config import model_preset
    from wav.cycle import action_table, distinct_rows, verify
    from wav.data.collect import collect
    from wav.data.io import load_transitions
    from wav.experiments.common import cached_transitions
    from wav.domains.minigrid import SPACE, batch, train_inverse, train_world_model
    from wav.metrics import rank_correlation
    from wav.domains.minigrid import FrozenSubgoals
    from wav.runtime import cpu_description, set_threads
    from wav.train import load_checkpoint

    set_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pool = cached_transitions(work / "devpool.npz", lambda: collect("WAV/MultiTask-v0", None, "scripted", 28_000, 123, progress=False)[0])
    seed_set = load_transitions(os.path.join(args.official, "random_selected_data.npz"))
    subgoal = FrozenSubgoals(load_checkpoint(args.subgoal, "subgoal"))
    cand = batch(pool)
    first, where = distinct_rows(cand.states)
    uniq = cand.states[first]
    caps = [None if c == "none" else float(c) for c in args.caps.split(",")]
    lines = []
    for models_name in ("paper", "generic"):
        p = model_preset(models_name)
        for seed in (int(s) for s in args.seeds.split(",")):
            wm, _ = train_world_model(seed_set, p.world_model, p.world_model_train, seed)
            inv, _ = train_inverse(seed_set, p.inverse, p.inverse_train, seed)
            oracle = true_error(cand, Models(world_model=wm)).double().numpy()
            top = np.sort(oracle)[::-1]
            lines.append(f"| {models_name} | {seed} | oracle | — | 1 | 1 | {top[:50].mean():.2f} | {top[:100].mean():.2f} | |")
            results = [verify(uniq[i : i + 4096], subgoal, inv, wm, None) for i in range(0, len(uniq), 4096)]
            for cap in caps:
                for reduce in ("min", "expected", "conditional"):
                    scores = torch.cat([action_table(r, SPACE, reduce, cap) for r in results])[where, cand.actions.long()].double().numpy()
                    order = np.argsort(-scores, kind="stable")
                    rc = rank_correlation(scores, oracle)
                    acts = np.bincount(pool.actions[order[:50]], minlength=7).tolist()
                    lines.append(f"| {models_name} | {seed} | {reduce} | {'none' if cap is None else f'{cap:g}'} | {rc['spearman']:.3f} | {rc['kendall']:.3f} | "
                                 f"{oracle[order[:50]].mean():.2f} | {oracle[order[:100]].mean():.2f} | {acts} |")
    out = [
        "# WAV's candidate score: reductions and cap (benchmarks/wav_scoring.py)", "",
        f"Command: `python benchmarks/wav_scoring.py --official $WAV_OFFICIAL_DATA --subgoal {args.subgoal} --out {args.out}`  ",
        f"Machine: {cpu_description()}, torch {torch.__version__}, 1 thread; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{time.perf_counter() - t0:.0f} s in all.", "",
        f"Development pool: {len(pool):,} multi-task transitions of our env (collection seed 123); models trained on the published 200 seed "
        "transitions; weighted modes of the generator (`verify(..., k=None)`). Top-50/100 = mean oracle error of the candidates a round would take "
        "(the oracle row: the largest errors there are).", "",
        "| world model | seed | reduction | cap | Spearman | Kendall | top-50 error | top-100 error | actions of the top 50 (L R F P D T S) |",
        "|---|---|---|---|---|---|---|---|---|",
        *lines,
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
