"""Why error-seeking acquisition picks outliers on the robot pools, and what the score space changes (issue 13).

Per seed: fit the warm-up world model and sparse inverse model exactly as `wav reproduce robot-acquisition` does
(same seeds, same fits), then score the explore pool with the oracle (true 32-step error, state units), with WAV in
state units (`--score-space state`, the default) and with WAV in the RSSM's latent features (`--score-space latent`,
the authors' `idm_wm_latent_mismatch_mse`). Reported: each score's Spearman with the oracle, and what its top-B
(the round-1 batch, B = 25% of the warm-up) holds: how many outliers (a trajectory with any state more than 3
warm-up stds outside the warm-up range) and their mean oracle error. Reads only the warm-up and explore
partitions, never the eval partition.

    python benchmarks/robot_score_space.py --data runs/robot-PullCube-cpu --seeds 0-1 --out benchmarks/results/robot_score_space.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robot_pool_outliers import append_section, out_of_range  # noqa: E402

from wav.acquire import Models, make_strategy  # noqa: E402
from wav.config import ScoringConfig  # noqa: E402
from wav.data.robot_io import summary  # noqa: E402
from wav.domains.manipulation import RecordedFuture, RSSMWorldModel  # noqa: E402
from wav.experiments.robot_acquisition import RobotAcquisitionExperiment, load_data, pool_file  # noqa: E402
from wav.loop import pool_oracle  # noqa: E402
from wav.runtime import set_threads  # noqa: E402


def outliers(seed_set, pool, stds: float = 3.0) -> np.ndarray:
    """(N,) bool: pool trajectories with any state feature more than `stds` warm-up stds outside the warm-up range."""
    return out_of_range(seed_set, pool, stds).any(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="pool file or build folder (`wav robot build`)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seeds", default="0-1")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--out", required=True, help="markdown file; an existing one gets this task's section appended")
    args = ap.parse_args()
    set_threads(1)
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    task = summary(pool_file(args.data))["task"]
    exp = RobotAcquisitionExperiment(task=task, data=args.data, warmup=args.warmup, preset=args.preset)
    data, domain = load_data(exp), exp.domain
    cand = domain.batch(data.pool)
    out = outliers(data.seed_set, data.pool)
    budget = exp.protocol.budget
    wav = make_strategy("wav")
    rows = []
    for seed in seeds:
        t = time.perf_counter()
        wm = domain.fit("world_model", data.seed_set, seed)
        inv = domain.fit("inverse", data.seed_set, seed)
        oracle = pool_oracle(domain, wm, data.pool)
        models = Models(world_model=wm, space=domain.space, subgoal=RecordedFuture(), inverse=inv)
        scores = {"oracle": oracle}
        for space in ("state", "latent"):
            scored = replace(models, world_model=RSSMWorldModel(wm.rssm, wm.scale, wm.window, score_space=space).eval())
            scores[f"wav ({space})"] = wav.score(cand, scored, ScoringConfig(), torch.Generator().manual_seed(seed)).double().numpy()
        for name, s in scores.items():
            top = np.argsort(-s, kind="stable")[:budget]
            rows.append({"seed": seed, "score": name, "spearman": float(spearmanr(s, oracle)[0]), "outliers": int(out[top].sum()),
                         "oracle_of_top": float(oracle[top].mean()), "oracle_of_top_inliers": float(oracle[top][~out[top]].mean()) if (~out[top]).any() else float("nan")})
        print(f"{task} seed {seed}: " + ", ".join(f"{r['score']} rho {r['spearman']:.3f} outliers {r['outliers']}/{budget}" for r in rows[-3:])
              + f" ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    lines = [f"## {task} (warm-up {args.warmup}, preset `{args.preset}`, seeds {args.seeds})", "",
             f"Command: `python benchmarks/robot_score_space.py --data {args.data} --warmup {args.warmup} --seeds {args.seeds} --preset {args.preset} --out {args.out}`  ",
             f"Machine: {platform.processor() or platform.machine()}, shared 2 cores, one torch thread; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.  ",
             f"Explore pool: {len(out)} trajectories, {int(out.sum())} outliers (any state > 3 warm-up stds outside the warm-up range); "
             f"mean oracle error of the pool {float(np.mean(oracle)):.2f} (last seed); top-B = {budget}.", "",
             "| seed | score | Spearman with oracle | outliers in top-B | mean oracle error of top-B | of its inliers |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['score']} | {r['spearman']:.3f} | {r['outliers']}/{budget} | {r['oracle_of_top']:.2f} | {r['oracle_of_top_inliers']:.2f} |" for r in rows]
    append_section(args.out, "Robot verification score: state units vs latent features", "robot_score_space.py", lines)


if __name__ == "__main__":
    main()
