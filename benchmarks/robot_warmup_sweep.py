"""The warm-up sweep of issue 13 (25 / 50 / 100 labelled warm-up trajectories on Lift and PullCube): one table per
task from the `results.json` of finished `wav reproduce robot-acquisition` folders, one per warm-up size.

    .venv-robot/bin/python benchmarks/robot_warmup_sweep.py --task Lift \
        --folders 25=runs/robot-acq-Lift-cpu-w25,50=runs/robot-acq-Lift-cpu-w50-s3,100=runs/robot-acq-Lift-cpu-w100 \
        --out benchmarks/results/robot_warmup_sweep.md

Reads only the reports (which read only the run records); appends one markdown section per call to --out.
Columns: each strategy's 32-step error after the last round (mean over seeds), WAV minus random and minus the
best non-oracle baseline (paired over seeds, p of the t-test), WAV's Spearman with the oracle, and the 2x check
(WAV after round 1 at or below random after round 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ORDER = ("random", "ensemble", "progress", "wav-dense", "wav", "oracle")


def section(task: str, folders: dict[int, str]) -> str:
    rows, strategies = [], None
    for warmup, folder in sorted(folders.items()):
        r = json.loads((Path(folder) / "results.json").read_text())
        if r["task"] != task or int(r["warmup"]) != warmup:
            raise SystemExit(f"{folder}: results of {r['task']} warm-up {r['warmup']}, not {task} warm-up {warmup}")
        st = r["strategies"]
        names = [s for s in ORDER if s in st]
        strategies = strategies or names
        if names != strategies:
            raise SystemExit(f"{folder}: strategies {names} differ from the other folders' {strategies}")
        seeds = st["wav"]["seeds"]
        baselines = {s: st[s]["pred_error"] for s in names if s not in ("wav", "oracle")}
        best = min(baselines, key=baselines.get)
        pw = r["paired_wav_minus"]

        def diff(name):
            d = pw[name]["pred_error"]
            p = d.get("p_ttest")
            return f"{d['mean']:+.3f}" + (f" (p={p:.3f})" if p is not None and p == p else " (no test)")

        eff = r.get("sample_efficiency") or {}
        two_x = st["wav"].get("pred_error_round1")
        rnd2 = st["random"]["pred_error"]
        cells = [f"{st[s]['pred_error']:.3f}" for s in names]
        rows.append(f"| {warmup} | {len(seeds)} ({','.join(map(str, seeds))}) | {r['budget']} | " + " | ".join(cells)
                    + f" | {diff('random')} | {best}: {diff(best)} | {st['wav']['spearman']:.3f} | "
                    + (f"{two_x:.3f} vs {rnd2:.3f}: {'yes' if two_x <= rnd2 else 'no'}" if two_x is not None else "—")
                    + (f" | {eff['ratio']:.2f} |" if eff.get("ratio") is not None else " | — |"))
    head = (f"## {task}\n\n| warm-up | seeds | B per round | " + " | ".join(strategies)
            + " | WAV − random | WAV − best baseline | WAV Spearman | 2x: WAV round 1 vs random round 2 | random's labels / WAV's to reach random's final error |\n"
            + "|" + "---|" * (len(strategies) + 8) + "\n")
    return head + "\n".join(rows) + "\n"


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--folders", required=True, help="comma-separated WARMUP=FOLDER pairs")
    p.add_argument("--out", default=None, help="markdown file to append the section to (default: print only)")
    a = p.parse_args(argv)
    try:
        folders = {int(k): v for k, v in (x.split("=", 1) for x in a.folders.split(","))}
    except ValueError:
        raise SystemExit(f"--folders {a.folders!r}: expected WARMUP=FOLDER pairs, e.g. 25=runs/a,50=runs/b") from None
    text = section(a.task, folders)
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write("\n" + text)
    return text


if __name__ == "__main__":
    main()
