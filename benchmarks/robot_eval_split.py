"""Where each strategy's final eval error comes from: eval trajectories inside vs outside the warm-up range (issue 13).

The error-seeking strategies (WAV, the oracle) fill their batches with the explore pool's outliers where it has them
(`benchmarks/robot_score_space.py`), and the pools' partitions differ in how many outliers they hold
(`benchmarks/robot_pool_outliers.py`: the explore pool is the imperfect checkpoints' rollouts, the eval partition a
share of every source). This script takes a finished `wav reproduce robot-acquisition` folder, reloads every
(strategy, seed) run's final world model (`world_model.pt`) and splits its 32-step open-loop error on the eval
partition into the eval trajectories that stay inside the warm-up range (inliers) and those that leave it
(outliers, the same 3-std definition). The two parts are weighted by their valid steps, so they recombine to the
recorded final error: the script checks that against each run's `metrics.jsonl` and stops if it differs.
With `--round0` it also splits each seed's warm-up world model (the seed-set RSSM every strategy of a seed starts
from), checks it against the recorded round-0 error the same way, and reports its split: whether labelling more
trajectories lowers or raises the error on each part. It loads that model from the folder's `fits/` (kept by the
acquisition since 4aa675d) and refits it, with the run's own seed and schedule, only where none was kept; a refit
takes the default settings, so a folder run with other ones (`--openloop-scale`, ...) needs its `fits/`. The
check against the recorded round-0 error catches a model that is not the run's. Otherwise it fits nothing. It
reads the eval partition only to report, after the runs are done.

    python benchmarks/robot_eval_split.py --folder runs/robot-acq-PullCube-xeon --out benchmarks/results/robot_eval_split.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robot_pool_outliers import append_section, finished_results, out_of_range  # noqa: E402

from wav.experiments.robot_acquisition import STRATEGIES, WORLD_MODEL, RobotAcquisitionExperiment, fit_path, load_data, load_world_model  # noqa: E402
from wav.runtime import set_threads  # noqa: E402
from wav.stats import mean_ci, paired_difference  # noqa: E402

ORDER = ("round 0 (warm-up only)",) + STRATEGIES


def split_error(domain, world_model, test, outlier: np.ndarray) -> dict:
    """Step-weighted mean error over all eval windows, over those of inlier and of outlier trajectories."""
    sums = {}
    for name, keep in (("inliers", ~outlier), ("outliers", outlier)):
        if not keep.any():
            sums[name] = (0.0, 0.0)
            continue
        part = domain.subset(test, np.flatnonzero(keep))
        with torch.no_grad():
            err, mask = world_model.step_errors(part)
        m = mask.double()
        sums[name] = (float((err.mean(-1).double() * m).sum()), float(m.sum()))
    total = sum(s for s, _ in sums.values()) / sum(n for _, n in sums.values())
    share = sums["outliers"][0] / sum(s for s, _ in sums.values())
    return {"all": total, **{k: (s / n if n else float("nan")) for k, (s, n) in sums.items()}, "outlier_share": share}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", required=True, help="a finished `wav reproduce robot-acquisition --out` folder")
    ap.add_argument("--out", required=True, help="markdown file; an existing one gets this folder's section appended")
    ap.add_argument("--round0", action="store_true",
                    help="also split every seed's warm-up world model's error (loaded from the folder's fits/, else refit)")
    args = ap.parse_args()
    folder = Path(args.folder)
    res = finished_results(folder)
    runs = sorted((folder / "runs").glob(f"*/seed*/{WORLD_MODEL}"))
    if not runs:
        sys.exit(f"error: {folder}/runs: no */seed*/{WORLD_MODEL} (runs not finished)")
    set_threads(1)
    _, meta = load_world_model(runs[0])
    exp = RobotAcquisitionExperiment(task=res["task"], data=meta["data"], warmup=int(res["warmup"]), preset=res["preset"], out=str(folder))
    data = load_data(exp)
    outlier = out_of_range(data.seed_set, data.test).any(1)
    errors: dict[str, dict[int, dict]] = {}
    for path in runs:
        strategy, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        wm, _ = load_world_model(path)
        e = split_error(exp.domain, wm, data.test, outlier)
        recorded = [json.loads(line) for line in (path.parent / "metrics.jsonl").read_text().splitlines() if line.strip()][-1]["pred_error"]
        if abs(e["all"] - recorded) > 1e-6 * max(1.0, abs(recorded)):
            sys.exit(f"error: {path}: recomputed eval error {e['all']:.6f} differs from the recorded {recorded:.6f}")
        errors.setdefault(strategy, {})[seed] = e
        print(f"{strategy} seed {seed}: all {e['all']:.3f} (recorded {recorded:.3f}), inliers {e['inliers']:.3f}, outliers {e['outliers']:.3f}",
              file=sys.stderr, flush=True)
    if args.round0:
        records = {}
        for path in runs:
            first = json.loads((path.parent / "metrics.jsonl").read_text().splitlines()[0])
            records.setdefault(int(path.parent.name.removeprefix("seed")), set()).add(first["pred_error"])
        for seed, recorded in sorted(records.items()):
            if len(recorded) != 1:
                sys.exit(f"error: {folder}: seed {seed}'s runs record different round-0 errors {sorted(recorded)}")
            t = time.perf_counter()
            kept = fit_path(exp, seed, "world_model")
            how = "loaded" if kept.is_file() else "refit"
            model = torch.load(kept, weights_only=False)["fit"]["model"] if kept.is_file() else exp.domain.fit("world_model", data.seed_set, seed)
            e = split_error(exp.domain, model, data.test, outlier)
            (recorded,) = recorded
            if abs(e["all"] - recorded) > 1e-6 * max(1.0, abs(recorded)):
                sys.exit(f"error: seed {seed}: the {how} warm-up world model's eval error {e['all']:.6f} differs from the recorded round 0 {recorded:.6f}")
            errors.setdefault("round 0 (warm-up only)", {})[seed] = e
            print(f"round 0 seed {seed}: all {e['all']:.3f} (recorded {recorded:.3f}), inliers {e['inliers']:.3f}, outliers {e['outliers']:.3f}"
                  f" ({how}, {time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    names = [s for s in ORDER if s in errors] + sorted(set(errors) - set(ORDER))
    seeds = sorted(set.intersection(*(set(v) for v in errors.values())))
    base = [b for b in ("random", "round 0 (warm-up only)") if b in errors]
    lines = [f"## {res['task']}, warm-up {res['warmup']}: `{folder}`", "",
             f"Command: `python benchmarks/robot_eval_split.py --folder {args.folder}{' --round0' if args.round0 else ''} --out {args.out}`  ",
             f"Machine: {platform.processor() or platform.machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; seeds {seeds[0]}-{seeds[-1]} "
             f"(every recomputed error equals the recorded one).  ",
             f"Eval partition: {len(outlier)} trajectories, {int(outlier.sum())} outside the warm-up range.", "",
             "Final 32-step error, mean over seeds [95% CI], and each strategy's paired difference (paired t-test p) on the same part to "
             + " and to ".join(b.split(" (")[0] for b in base) + ":", "",
             "| strategy | all | inliers | outliers | outliers' share of the error | "
             + " | ".join(f"{part} − {b.split(' (')[0]} (p)" for b in base for part in ("inliers", "outliers")) + " |",
             "|---|---|---|---|---|" + "---|" * (2 * len(base))]
    for s in names:
        cells = []
        for part in ("all", "inliers", "outliers"):
            m, lo, hi = mean_ci([errors[s][k][part] for k in seeds])
            cells.append(f"{m:.3f} [{lo:.3f}, {hi:.3f}]")
        cells.append(f"{100 * np.mean([errors[s][k]['outlier_share'] for k in seeds]):.0f}%")
        for b in base:
            for part in ("inliers", "outliers"):
                if s == b:
                    cells.append("")
                    continue
                d = paired_difference([errors[s][k][part] for k in seeds], [errors[b][k][part] for k in seeds])
                cells.append(f"{d['mean']:+.3f} (p={d['p_ttest']:.2g})")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    append_section(args.out, "Eval error inside and outside the warm-up range", "robot_eval_split.py", lines)


if __name__ == "__main__":
    main()
