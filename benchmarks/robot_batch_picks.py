"""What each strategy labels, read off the run records of a robot acquisition folder (issue 13): which explore
trajectories its batches hold, how wrong the warm-up world model is on them, whether they leave the warm-up range,
and which policy checkpoint produced them.

Every pool run records the pool indices of each round's batch (`chosen`, since 2026-12-07). This script reloads the
folder's pool, each seed's warm-up world model from the folder's `fits/` (the seed-set RSSM every strategy of a seed
scores round 1 with) and computes its true open-loop error on every explore trajectory (what the oracle scores). It
checks that each run's recorded round-1 `oracle_error_of_chosen` is the mean of those errors over the recorded
batch, and stops if not. Per strategy, over seeds:

* `percentile`: where the round-1 picks sit in the pool's true-error ranking (100 = the trajectory the warm-up
  model gets most wrong);
* `top-B overlap`: the share of the round-1 batch that is also in the B trajectories of highest true error (what
  an oracle without random mix would take);
* `outliers`: the share of the batch (both rounds) that leaves the warm-up range (3 warm-up stds; the definition of
  `benchmarks/robot_pool_outliers.py`);
* `sources`: the policy checkpoints the batches (both rounds) come from.

    python benchmarks/robot_batch_picks.py --folder runs/robot-acq-PokeCube-openloop-picks --out benchmarks/results/robot_batch_picks.md

It fits nothing and reads the eval partition not at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robot_pool_outliers import append_section, finished_results, out_of_range  # noqa: E402

from wav.experiments.common import is_done, read_metrics  # noqa: E402
from wav.experiments.robot_acquisition import STRATEGIES, WORLD_MODEL, RobotAcquisitionExperiment, fit_path, load_data, load_world_model  # noqa: E402
from wav.runtime import cpu_description, set_threads  # noqa: E402
from wav.stats import mean_ci  # noqa: E402


def finished_rows(folder: Path) -> dict[str, dict[int, list[dict]]]:
    """strategy -> seed -> metric rows of each finished run."""
    out: dict[str, dict[int, list[dict]]] = {}
    for run in sorted((folder / "runs").glob("*/seed*")):
        if is_done(run):
            out.setdefault(run.parent.name, {})[int(run.name.removeprefix("seed"))] = read_metrics(run)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", required=True, help="a finished `wav reproduce robot-acquisition --out` folder whose runs record `chosen`")
    ap.add_argument("--out", required=True, help="markdown file; an existing one gets this folder's section appended")
    args = ap.parse_args()
    import torch

    from wav.data.robot_io import load_trajectories
    from wav.loop import pool_oracle

    folder = Path(args.folder)
    res = finished_results(folder)
    recs = finished_rows(folder)
    if not recs or any("chosen" not in rows[1] for runs in recs.values() for rows in runs.values()):
        sys.exit(f"error: {folder}: runs without a `chosen` record (made before 2026-12-07); rerun them")
    set_threads(1)
    first = next(iter(next(iter(recs.values())).values()))
    model_path = next((folder / "runs").glob(f"*/seed*/{WORLD_MODEL}"))
    _, meta = load_world_model(model_path)
    settings = json.loads((model_path.parent / "config.json").read_text())["settings"]
    exp = RobotAcquisitionExperiment(task=res["task"], data=meta["data"], warmup=int(res["warmup"]), preset=res["preset"], out=str(folder),
                                     openloop_scale=float(settings["domain"].get("rssm_openloop", 0.0)))
    data = load_data(exp)
    sources = [t.source for t in load_trajectories(meta["data"], filter_key="explore")[0]]
    outlier = out_of_range(data.seed_set, data.pool).any(1)
    budget = len(first[1]["chosen"])
    seeds = sorted(set.intersection(*(set(v) for v in recs.values())))
    stats: dict[str, dict[str, list]] = {}
    for seed in seeds:
        kept = fit_path(exp, seed, "world_model")
        if not kept.is_file():
            sys.exit(f"error: {kept}: no kept warm-up world model (the folder's fits/ are needed)")
        wm = torch.load(kept, weights_only=False)["fit"]["model"]
        err = np.asarray(pool_oracle(exp.domain, wm, data.pool), np.float64)
        rank = err.argsort().argsort() / (len(err) - 1) * 100  # 0 = lowest true error, 100 = highest
        top = set(np.argsort(-err)[:budget].tolist())
        for s, runs in recs.items():
            rows = runs[seed]
            c1, both = rows[1]["chosen"], [i for r in rows[1:] for i in r["chosen"]]
            if abs(err[c1].mean() - rows[1]["oracle_error_of_chosen"]) > 1e-6 * max(1.0, abs(err[c1].mean())):
                sys.exit(f"error: {s} seed {seed}: the recomputed true error of the round-1 batch {err[c1].mean():.6f} differs from the "
                         f"recorded {rows[1]['oracle_error_of_chosen']:.6f} (not the run's warm-up model or pool)")
            st = stats.setdefault(s, {"percentile": [], "overlap": [], "outliers": [], "sources": Counter(), "final": []})
            st["percentile"].append(float(rank[c1].mean()))
            st["overlap"].append(len(top & set(c1)) / len(c1))
            st["outliers"].append(float(outlier[both].mean()))
            st["sources"].update(sources[i] for i in both)
            st["final"].append(rows[-1]["pred_error"])
        print(f"seed {seed}: pool true error {err.mean():.3f} (max {err.max():.3f}), outliers {int(outlier.sum())} of {len(err)}", file=sys.stderr)
    order = [s for s in STRATEGIES if s in stats] + sorted(set(stats) - set(STRATEGIES))
    src_names = sorted(set(sources), key=lambda x: (not x.startswith("ckpt"), int(x[4:]) if x.startswith("ckpt") and x[4:].isdigit() else 0, x))

    def ci(v: list) -> str:
        m, lo, hi = mean_ci(v)
        return f"{m:.1f} [{lo:.1f}, {hi:.1f}]" if np.isfinite(lo) else f"{m:.1f}"

    pool_src = Counter(sources)
    lines = [f"## {res['task']}, warm-up {res['warmup']}, budget {budget} per round: `{folder}`", "",
             f"Command: `python benchmarks/robot_batch_picks.py --folder {args.folder} --out {args.out}`  ",
             f"Machine: {cpu_description()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; seeds {seeds[0]}-{seeds[-1]} (every recorded "
             "round-1 batch error equals the recomputed one).  ",
             f"Explore pool: {len(sources)} trajectories, {int(outlier.sum())} outside the warm-up range; by source "
             + ", ".join(f"{k} {pool_src[k]}" for k in src_names) + ".", "",
             "Mean over seeds [95% CI]. `percentile` and `top-B overlap` are of the round-1 batch under the seed's warm-up model; "
             "`outliers` and the sources count both rounds' batches (all seeds).", "",
             "| strategy | final error | round-1 percentile | top-B overlap (%) | outliers in the batches (%) | sources of the batches |",
             "|---|---|---|---|---|---|"]
    for s in order:
        st = stats[s]
        m, lo, hi = mean_ci(st["final"])
        srcs = ", ".join(f"{k} {st['sources'][k]}" for k in src_names if st["sources"][k])
        lines.append(f"| {s} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {ci(st['percentile'])} | {ci([100 * x for x in st['overlap']])} "
                     f"| {ci([100 * x for x in st['outliers']])} | {srcs} |")
    append_section(args.out, "What each robot strategy labels (benchmarks/robot_batch_picks.py)", "robot_batch_picks.py", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
