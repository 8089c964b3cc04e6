"""Time and accuracy of the published acquisition protocol on one seed (issue: <= 60 s on 2 cores).

Breakdown per strategy and round (scoring, training, evaluation) from the runs' timing records, and the
accuracy-vs-time trade-off of the world model's training recipe (epoch cap per fit).

    python benchmarks/acquisition.py --out benchmarks/results/acquisition.md [--official DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

from wav.config import TrainConfig, model_preset
from wav.experiments.acquisition import PUBLISHED_STRATEGIES, AcquisitionExperiment, run, run_dir
from wav.loop import ACQUISITION_PRESETS

FILES = {
    "pool": "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz",
    "seed_data": "random_selected_data.npz",
    "video": "MiniGrid-Empty-Interact-6x6-o3-v0_video_pretraing.npz",
    "afs_data": "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz",
}


def one(out: Path, official: str | None, seed: int, cfg=None, label: str = "") -> dict:
    given = {k: os.path.join(official, f) for k, f in FILES.items()} if official else {}
    exp = AcquisitionExperiment(out=str(out), seeds=(seed,), strategies=PUBLISHED_STRATEGIES, jobs=1, config=cfg, **given)
    from wav.experiments.acquisition import prepare_data, subgoal_model

    paths = prepare_data(exp)
    t = time.perf_counter()
    subgoal_model(exp, paths)
    t_subgoal = time.perf_counter() - t
    t0 = time.perf_counter()
    res = run(exp)
    wall = time.perf_counter() - t0
    parts = {"score": 0.0, "train": 0.0, "eval": 0.0}
    for s in PUBLISHED_STRATEGIES:
        for line in (run_dir(exp, s, seed) / "timing.jsonl").read_text().splitlines():
            r = json.loads(line)
            for k in parts:
                parts[k] += r[k]
    return {"label": label, "wall": wall, "subgoal_training": t_subgoal, **parts, "errors": {s: e["pred_error"] for s, e in res["strategies"].items()},
            "spearman_wav": res["strategies"]["wav"]["spearman"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/acquisition.md")
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/bench-acquisition")
    ap.add_argument("--caps", default="10,30,100", help="epoch caps of the per-round refits for the trade-off")
    args = ap.parse_args()
    from wav.runtime import set_threads

    set_threads(1)
    rows = [one(Path(args.work) / "preset", args.official, args.seed, label="paper preset")]
    base = ACQUISITION_PRESETS["paper"]
    for cap in (int(c) for c in args.caps.split(",") if c):
        refit = replace(model_preset(base.models).world_model_train, epochs=cap)
        rows.append(one(Path(args.work) / f"cap{cap}", args.official, args.seed, replace(base, round_train=refit), label=f"refit epochs <= {cap}"))
    lines = [
        "# Acquisition protocol: time and accuracy (benchmarks/acquisition.py)", "",
        f"Command: `python benchmarks/acquisition.py --out {args.out}`" + (" (published pool, seed set, video and OOD files)" if args.official else " (our env's data)"),
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one process, torch threads 1; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "Protocol: 5 strategies, seed " + str(args.seed) + ", 200 seed + 2 x 50 labels, ~28k pool, balanced test set. Wall time excludes data preparation and the",
        "frozen subgoal generator (trained once per experiment, shown separately).", "",
        "| recipe | wall (s) | scoring (s) | training (s) | evaluation (s) | subgoal training (s) | " + " | ".join(f"{s} error" for s in PUBLISHED_STRATEGIES) + " | wav Spearman |",
        "|---|" + "---|" * (6 + len(PUBLISHED_STRATEGIES)),
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['wall']:.1f} | {r['score']:.1f} | {r['train']:.1f} | {r['eval']:.1f} | {r['subgoal_training']:.1f} | "
                     + " | ".join(f"{r['errors'].get(s, float('nan')):.3f}" for s in PUBLISHED_STRATEGIES) + f" | {r['spearman_wav']:.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
