"""Build every manipulation task's data at one scale and tabulate expert / checkpoint success and times.

    nice -n 10 .venv-robot/bin/python benchmarks/robot_builds.py --scale cpu            # build, then print the table
    .venv-robot/bin/python benchmarks/robot_builds.py --scale cpu --table-only          # table of existing builds

Each build is `wav robot build --task T --scale S` into runs/robot/<T>-<S>/ (one task after another; a
build uses 2 worker processes). Issue 6 target: <= 30 minutes per task at the `cpu` scale on 2 cores.
The rows go into benchmarks/results/robot.md and the README's manipulation table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TASKS = ("Lift", "Can", "Square", "PokeCube", "PullCube", "LiftPeg")


def row(summary: dict) -> str:
    rates = " ".join(f"{r:.2f}" for r in summary["checkpoint_success"].values())
    s = summary["seconds"]
    return (f"| {summary['task']} | {summary['scale']} | {summary['expert_success']:.2f} | {rates} | {summary['trajectories']} | "
            f"{summary['transitions']} | {s['experts_s']:.0f} | {s['train_s']:.0f} | {s['rollout_s']:.0f} | {s['total_s']:.0f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="cpu", choices=["debug", "cpu", "paper"])
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset")
    p.add_argument("--root", default="runs/robot", help="run directories are <root>/<task>-<scale>")
    p.add_argument("--table-only", action="store_true", help="do not build; tabulate the summaries already there")
    args = p.parse_args(argv)

    rows = []
    for task in [t for t in args.tasks.split(",") if t]:
        run = Path(args.root) / f"{task}-{args.scale}"
        if not args.table_only:
            cmd = [sys.executable, "-m", "wav", "robot", "build", "--task", task, "--preset", args.scale, "--out", str(run)]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        path = run / "summary.json"
        if path.exists():
            rows.append(row(json.loads(path.read_text())))
        else:
            rows.append(f"| {task} | {args.scale} | not built | | | | | | | |")
    print("| task | scale | expert success | ckpt1..ckpt10 success | trajectories | transitions | experts s | train s | rollout s | total s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
