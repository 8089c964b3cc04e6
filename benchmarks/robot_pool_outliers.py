"""How many trajectories of each robot pool leave the warm-up set's range, per partition and layout group (issue 13).

An outlier is a trajectory with any state feature more than 3 warm-up stds outside the warm-up range (the
definition of `benchmarks/robot_score_space.py`, which counts how many of them each score puts in its round-1
batch). This script fits nothing: it reads a pool file's warm-up, explore and eval partitions and counts, for each,
the outlier trajectories and which layout groups (`ee`, `robot`, `object`) take them out of range. It runs in
seconds per pool, so it answers for all six tasks whether their explore pools hold PullCube's outliers.

    python benchmarks/robot_pool_outliers.py --data runs/robot-cpu --tasks all --out benchmarks/results/robot_pool_outliers.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wav.data.io import DataError  # noqa: E402
from wav.domains.manipulation import TrajectorySet  # noqa: E402
from wav.envs.manipulation.core import TASKS  # noqa: E402
from wav.experiments.robot_acquisition import RobotAcquisitionExperiment, load_data  # noqa: E402


def out_of_range(warm: TrajectorySet, part: TrajectorySet, stds: float = 3.0) -> np.ndarray:
    """(N, D) bool: feature d of trajectory n leaves the warm-up range by more than `stds` warm-up stds at some step."""
    w = np.concatenate([np.asarray(s, np.float64) for s, _ in warm.trajectories])
    lo, hi, sd = w.min(0), w.max(0), w.std(0) + 1e-6
    return np.stack([((np.asarray(s) < lo - stds * sd) | (np.asarray(s) > hi + stds * sd)).any(0) for s, _ in part.trajectories])


def finished_results(folder: Path) -> dict:
    """The `results.json` of a finished robot-acquisition folder; exits with a one-line error when there is none."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        sys.exit(f"error: {path}: no such file (not a finished robot-acquisition folder)")
    return json.loads(path.read_text())


def append_section(path, title: str, script: str, lines: list[str]) -> None:
    """Append a markdown section to `path`, starting the file with `title` and a pointer to `script` if it is new."""
    path = Path(path)
    old = path.read_text() if path.exists() else f"# {title}\n\nSee the docstring of `benchmarks/{script}`.\n\n"
    path.write_text(old.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def count(task: str, path: Path, warmup: int) -> dict:
    data = load_data(RobotAcquisitionExperiment(task=task, data=str(path), warmup=warmup))
    groups = data.seed_set.group_masks()
    row = {"task": task}
    for name, part in (("explore", data.pool), ("eval", data.test)):
        off = out_of_range(data.seed_set, part)
        row[name] = {"n": len(off), "outliers": int(off.any(1).sum()),
                     "by_group": {g: int(off[:, m].any(1).sum()) for g, m in groups.items()}}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder holding <task>/pool.hdf5 (as `wav robot build --out DIR/<task>` writes)")
    ap.add_argument("--tasks", default="all", help="comma-separated, or all")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--out", required=True, help="markdown file (overwritten)")
    args = ap.parse_args()
    tasks = TASKS if args.tasks == "all" else tuple(t.strip() for t in args.tasks.split(","))
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        sys.exit(f"error: --tasks: unknown task {bad[0]!r} (known: {', '.join(TASKS)})")
    paths = {t: Path(args.data) / t / "pool.hdf5" for t in tasks}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        sys.exit(f"error: {missing[0]}: no such file (build it with `wav robot build --task T --preset cpu --out {args.data}/T`)")
    rows = []
    for t, p in paths.items():
        try:
            rows.append(count(t, p, args.warmup))
        except DataError as e:
            sys.exit(f"error: {e}")
        print(f"{t}: explore {rows[-1]['explore']['outliers']}/{rows[-1]['explore']['n']}, eval {rows[-1]['eval']['outliers']}/{rows[-1]['eval']['n']}", file=sys.stderr)
    lines = ["# Outlier trajectories of the robot pools", "", "See the docstring of `benchmarks/robot_pool_outliers.py`.", "",
             f"Command: `python benchmarks/robot_pool_outliers.py --data {args.data} --tasks {args.tasks} --warmup {args.warmup} --out {args.out}`  ",
             f"Machine: {platform.processor() or platform.machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
             "| task | explore outliers | of which out by ee / robot / object | eval outliers | of which out by ee / robot / object |",
             "|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for name in ("explore", "eval"):
            c = r[name]
            cells += [f"{c['outliers']}/{c['n']} ({100 * c['outliers'] / c['n']:.0f}%)",
                      " / ".join(str(c["by_group"].get(g, "—")) for g in ("ee", "robot", "object"))]
        lines.append(f"| {r['task']} | " + " | ".join(cells) + " |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
