"""The warm-up sweep of issue 13 (25 / 50 / 100 labelled warm-up trajectories on Lift and PullCube): one table per
task from the `results.json` of finished `wav reproduce robot-acquisition` folders, one per warm-up size.

    .venv-robot/bin/python benchmarks/robot_warmup_sweep.py --task Lift \
        --folders 25=runs/robot-acq-Lift-cpu-w25,50=runs/robot-acq-Lift-cpu-w50-s3,100=runs/robot-acq-Lift-cpu-w100 \
        --out benchmarks/results/robot_warmup_sweep.md
    .venv-robot/bin/python benchmarks/robot_warmup_sweep.py --task PullCube \
        --folders 25=runs/robot-acq-PullCube-xeon-w25,50=runs/robot-acq-PullCube-xeon,100=runs/robot-acq-PullCube-xeon-w100 \
        --out benchmarks/results/robot_warmup_sweep.md --figure results/robot-warmup-sweep-PullCube.png

Reads only the reports (which read only the run records); appends one markdown section per call to --out, and with
--figure draws the task's panel: each strategy's final error divided by random's mean at the same warm-up size (each
size has its own error scale), with its own 95% CI over seeds scaled the same way (the paired tests are in the table),
against the warm-up size.
Columns: each strategy's 32-step error after the last round (mean over seeds), WAV minus random and minus the
best non-oracle baseline (paired over seeds, p of the t-test), WAV's Spearman with the oracle, and the 2x check
(WAV after round 1 at or below random after round 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ORDER = ("random", "ensemble", "progress", "wav-dense", "wav", "oracle")
COLORS = {"random": "#7f7f7f", "ensemble": "#1f77b4", "progress": "#2ca02c", "wav-dense": "#ff7f0e", "wav": "#d62728", "oracle": "#9467bd"}


def load(task: str, folders: dict[int, str]) -> dict[int, dict]:
    """warm-up size -> that folder's results.json, checked to be the task's at that size."""
    out = {}
    for warmup, folder in sorted(folders.items()):
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (a finished `wav reproduce robot-acquisition` folder)")
        r = json.loads(path.read_text())
        if r["task"] != task or int(r["warmup"]) != warmup:
            raise SystemExit(f"{folder}: results of {r['task']} warm-up {r['warmup']}, not {task} warm-up {warmup}")
        out[warmup] = r
    return out


def section(task: str, results: dict[int, dict]) -> str:
    rows, strategies = [], None
    for warmup, r in results.items():
        st = r["strategies"]
        names = [s for s in ORDER if s in st]
        strategies = strategies or names
        if names != strategies:
            raise SystemExit(f"warm-up {warmup}: strategies {names} differ from the other sizes' {strategies}")
        seeds = st["wav"]["seeds"]
        baselines = {s: st[s]["pred_error"] for s in names if s not in ("wav", "oracle")}
        best = min(baselines, key=baselines.get)
        pw = r["paired_wav_minus"]

        def diff(name):
            d = pw[name]["pred_error"]
            p = d.get("p_ttest")
            return f"{d['mean']:+.3f}" + ((f" (p={p:.3f})" if p >= 0.001 else f" (p={p:.1e})") if p is not None and p == p else " (no test)")

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


def plot(task: str, results: dict[int, dict], path: str) -> None:
    """Final error / random's mean (95% CI) against the warm-up size, one line per strategy, WAV in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    names = [s for s in ORDER if all(s in results[w]["strategies"] for w in sizes)]
    ref = [results[w]["strategies"]["random"]["pred_error"] for w in sizes]
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, s in enumerate(names):
        x = [w * (1 + 0.025 * (i - (len(names) - 1) / 2)) for w in sizes]  # a small shift per strategy keeps the bars apart
        m = [results[w]["strategies"][s]["pred_error"] / r for w, r in zip(sizes, ref)]
        ci = [[c / r for c in results[w]["strategies"][s]["pred_error_ci"]] for w, r in zip(sizes, ref)]
        err = [[v - lo for v, (lo, hi) in zip(m, ci)], [hi - v for v, (lo, hi) in zip(m, ci)]]
        style = {"lw": 2.2, "zorder": 3} if s == "wav" else {"lw": 1.2, "ls": "--" if s == "oracle" else "-"}
        ax.errorbar(x, m, yerr=err, marker="o", ms=4, capsize=3, label=s, color=COLORS[s], **style)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(w) for w in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labelled warm-up trajectories (B = 25% of it per round, 2 rounds)")
    ax.set_ylabel("final 32-step error / random's")
    seeds = sorted({len(results[w]["strategies"]["wav"]["seeds"]) for w in sizes})
    ax.set_title(f"{task}: warm-up sweep, {'/'.join(map(str, seeds))} seeds, mean and 95% CI", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True)
    p.add_argument("--folders", required=True, help="comma-separated WARMUP=FOLDER pairs")
    p.add_argument("--out", default=None, help="markdown file to append the section to (default: print only)")
    p.add_argument("--figure", default=None, help="PNG file for the task's panel (default: none)")
    a = p.parse_args(argv)
    try:
        folders = {int(k): v for k, v in (x.split("=", 1) for x in a.folders.split(","))}
    except ValueError:
        raise SystemExit(f"--folders {a.folders!r}: expected WARMUP=FOLDER pairs, e.g. 25=runs/a,50=runs/b") from None
    results = load(a.task, folders)
    text = section(a.task, results)
    if a.figure:
        plot(a.task, results, a.figure)
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write("\n" + text)
    return text


if __name__ == "__main__":
    main()
