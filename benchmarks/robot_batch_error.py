"""How wrong the world model is on what each strategy labels in round 1, read off the run records of robot
acquisition folders (issue 13). Nothing is fitted or scored here.

Every round of a pool run records `oracle_error_of_chosen`: the true open-loop error of the trajectories it
labelled, under the world model it scored them with. In round 1 that model is the seed's shared warm-up model,
so the number is comparable across strategies of a seed (in round 2 each strategy has its own model, so it is
not). Per strategy: that round-1 error (mean over seeds, min-max), as a multiple of random's batch, and the
final 32-step eval error of the same runs.

    python benchmarks/robot_batch_error.py --folder runs/robot-acq-Can-openloop --folder runs/robot-acq-Square-openloop \
        --out benchmarks/results/robot_batch_error.md

`--pair BASE:VARIANT` adds a section that sets the `wav` runs of VARIANT (the same task, pool, seeds and settings but
one, e.g. `--random-mix wav=0.3`) beside every strategy of BASE, paired by seed. WAV's scores do not depend on what
a variant changes after scoring, so its round-1 Spearman must be the same in both folders (checked and printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wav.experiments.common import is_done, read_metrics  # noqa: E402
from wav.experiments.robot_acquisition import STRATEGIES as NAMES  # noqa: E402
from wav.stats import paired_difference  # noqa: E402


def read(folder: Path) -> dict[str, dict[int, tuple[float, float, float]]]:
    """strategy -> seed -> (round-1 oracle error of the labelled batch, final eval error, round-1 Spearman), finished runs only."""
    out: dict[str, dict[int, tuple[float, float, float]]] = {}
    for run in sorted((folder / "runs").glob("*/seed*")):
        if not is_done(run):
            continue
        rows = read_metrics(run)
        first = next((r for r in rows if r.get("round") == 1), None)
        if first is None or "oracle_error_of_chosen" not in first:
            raise SystemExit(f"{run / 'metrics.jsonl'}: no round-1 row with oracle_error_of_chosen")
        out.setdefault(run.parent.name, {})[int(run.name.removeprefix("seed"))] = (first["oracle_error_of_chosen"], rows[-1]["pred_error"],
                                                                            first.get("spearman", float("nan")))
    if not out:
        raise SystemExit(f"{folder}: no finished runs under {folder / 'runs'}")
    return out


def section(folder: Path) -> list[str]:
    runs = read(folder)
    names = [s for s in NAMES if s in runs] + sorted(set(runs) - set(NAMES))
    seeds = sorted(set.intersection(*(set(runs[s]) for s in names)))
    ref = np.mean([runs["random"][k][0] for k in seeds]) if "random" in runs else None
    lines = [f"## `{folder}`", "", f"Seeds {', '.join(map(str, seeds))} (those every strategy finished).", "",
             "| strategy | round-1 batch: true error, mean (min-max) | / random's | final eval error, mean (min-max) |",
             "|---|---|---|---|"]
    for s in names:
        b = np.array([runs[s][k][0] for k in seeds])
        f = np.array([runs[s][k][1] for k in seeds])
        rel = f"{b.mean() / ref:.2f}x" if ref else "—"
        lines.append(f"| {s} | {b.mean():.3f} ({b.min():.3f}-{b.max():.3f}) | {rel} | {f.mean():.3f} ({f.min():.3f}-{f.max():.3f}) |")
    return lines + [""]


def pair_section(base: Path, variant: Path) -> list[str]:
    runs, other = read(base), read(variant)
    if "wav" not in other:
        raise SystemExit(f"{variant}: no finished wav runs")
    mine = other["wav"]
    seeds = sorted(set(mine).intersection(*(set(v) for v in runs.values())))
    if not seeds:
        raise SystemExit(f"{base} and {variant}: no seed finished in both")
    same = "wav" in runs and all(abs(runs["wav"][k][2] - mine[k][2]) < 1e-12 for k in seeds)
    settings = json.loads((variant / "runs" / "wav" / f"seed{seeds[0]}" / "config.json").read_text())["settings"]
    lines = [f"## `{variant}` (wav) beside `{base}`", "",
             f"Seeds {', '.join(map(str, seeds))}. The variant's random-mix overrides: {settings['round'].get('random_mix') or 'none'}. "
             f"WAV's round-1 Spearman equal in both folders (same scores): {'yes' if same else 'NO'}.", "",
             "| strategy | round-1 batch: true error | final eval error, mean (min-max) | variant wav − X (t-test p; lower in) |",
             "|---|---|---|---|"]
    rows = [(s, runs[s]) for s in NAMES if s in runs] + [("wav (variant)", mine)]
    for name, r in rows:
        b = np.array([r[k][0] for k in seeds])
        f = np.array([r[k][1] for k in seeds])
        if name == "wav (variant)":
            diff = "—"
        else:
            d = paired_difference([mine[k][1] for k in seeds], [r[k][1] for k in seeds])
            lower = sum(mine[k][1] < r[k][1] for k in seeds)
            diff = f"{d['mean']:+.3f} (p={d['p_ttest']:.3g}; {lower}/{len(seeds)})"
        lines.append(f"| {name} | {b.mean():.3f} | {f.mean():.3f} ({f.min():.3f}-{f.max():.3f}) | {diff} |")
    return lines + [""]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", action="append", default=[], help="a `wav reproduce robot-acquisition` folder (repeatable)")
    ap.add_argument("--pair", action="append", default=[], metavar="BASE:VARIANT",
                    help="a folder and a variant folder of wav runs, compared paired by seed (repeatable)")
    ap.add_argument("--out", required=True, help="markdown file (overwritten)")
    args = ap.parse_args(argv)
    folders = [Path(f) for f in args.folder]
    pairs = []
    for text in args.pair:
        base, sep, variant = text.partition(":")
        if not sep or not base or not variant:
            raise SystemExit(f"--pair {text!r}: expected BASE:VARIANT")
        pairs.append((Path(base), Path(variant)))
    if not folders and not pairs:
        raise SystemExit("nothing to read: give --folder and/or --pair")
    for f in folders + [x for p in pairs for x in p]:
        if not (f / "runs").is_dir():
            raise SystemExit(f"{f}: not a robot acquisition folder (no runs/)")
    command = " ".join([*(f"--folder {f}" for f in folders), *(f"--pair {b}:{v}" for b, v in pairs)])
    text = ["# The true error of what each strategy labels in round 1", "",
            f"Written by `python benchmarks/robot_batch_error.py {command} --out {args.out}` "
            f"on {datetime.now(timezone.utc):%Y-%m-%d}; see its docstring.", ""]
    for f in folders:
        text += section(f)
    for b, v in pairs:
        text += pair_section(b, v)
    Path(args.out).write_text("\n".join(text))
    print(f"table: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
