"""Refit breaks read off two finished acquisition (or online) sweeps (issue 15 part 3): the same runs as run, with two
refit recipes (e.g. the default refit and `--refit-soup 3`). Nothing is refitted here; the records are read.

A refit is *broken* when some action's test error after it is above 5x its error before it and above 1
(the definition of benchmarks/refit_stability.py, on the per-action errors every round records). Per
strategy: breaks, final error with a paired comparison over seeds, and refit seconds per run (from timing.jsonl).

    python benchmarks/refit_breaks.py --a runs/acq/generic-overlap --b runs/acq/generic-overlap-soup3 \
        --names "as run,soup of 3" --out benchmarks/results/refit_breaks.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wav.stats import mean_ci, paired_difference


def broken(before: dict, after: dict) -> list[str]:
    return [f"{a} {before[a]:.2f}->{after[a]:.1f}" for a in before if after[a] > 5 * before[a] and after[a] > 1]


def read(root: Path) -> dict:
    """(strategy, seed) -> {"rows": metrics rows, "seconds": run seconds}"""
    out = {}
    for run in sorted((root / "runs").glob("*/seed*")):
        if not (run / "done").exists():
            continue
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        t = [json.loads(x) for x in (run / "timing.jsonl").read_text().splitlines()] if (run / "timing.jsonl").exists() else []
        out[(run.parent.name, int(run.name[4:]))] = {"rows": rows, "seconds": sum(r.get("train", 0.0) for r in t)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True, help="first sweep's --out folder")
    ap.add_argument("--b", type=Path, required=True, help="second sweep's --out folder")
    ap.add_argument("--names", default="a,b", help="two labels, comma-separated")
    ap.add_argument("--out", type=Path, default=None, help="markdown report")
    args = ap.parse_args()
    names = args.names.split(",")
    if len(names) != 2:
        raise SystemExit(f"refit_breaks: --names needs two labels, got {args.names!r}")
    for d in (args.a, args.b):
        if not (d / "runs").is_dir():
            raise SystemExit(f"refit_breaks: {d} has no runs/ folder (not a sweep's --out)")
    A, B = read(args.a), read(args.b)
    common = sorted(set(A) & set(B))
    if not common:
        raise SystemExit("refit_breaks: the two sweeps share no finished (strategy, seed) run")
    strategies = sorted({s for s, _ in common}, key=lambda s: [r for r, _ in common].index(s))
    L = [f"# Refit breaks: {names[0]} vs {names[1]}", "", f"`{args.a}` vs `{args.b}`, {len(common)} paired (strategy, seed) runs. "
         "Broken: some action's test error after a refit > 5x before and > 1. Error: the final round's `pred_error`. "
         "Refit seconds: wall time of the world-model refits as each sweep ran (`timing.jsonl`; the machine's load may differ between sweeps).", "",
         f"| strategy | seeds | refits | broken, {names[0]} | broken, {names[1]} | error, {names[0]} | error, {names[1]} | "
         f"{names[1]} − {names[0]} [95% CI] (p) | refit s per run, {names[0]} / {names[1]} |", "|---|---|---|---|---|---|---|---|---|"]
    details, total = [], {n: 0 for n in names}
    n_refits = 0
    for s in strategies:
        seeds = [k for st, k in common if st == s]
        counts, finals = [], []
        for name, D in zip(names, (A, B)):
            c = 0
            for k in seeds:
                rows = D[(s, k)]["rows"]
                for r0, r1 in zip(rows, rows[1:]):
                    hit = broken(r0["per_action_error"], r1["per_action_error"])
                    if hit:
                        c += 1
                        when = f"round {r1['round']}" if "round" in r1 else f"step {r1['steps']}"  # pool rounds, or online refits
                        details.append(f"- {name}, {s} seed {k}, {when}: {', '.join(hit)}")
            counts.append(c)
            total[name] += c
            finals.append([D[(s, k)]["rows"][-1]["pred_error"] for k in seeds])
        refits = sum(len(A[(s, k)]["rows"]) - 1 for k in seeds)
        n_refits += refits
        d = paired_difference(finals[1], finals[0])
        sec = [np.mean([D[(s, k)]["seconds"] for k in seeds]) for D in (A, B)]
        secs = f"{sec[0]:.0f} / {sec[1]:.0f}" if max(sec) > 0 else "not recorded"  # online runs time no refits
        L.append(f"| {s} | {len(seeds)} | {refits} | {counts[0]} | {counts[1]} | {mean_ci(finals[0])[0]:.3f} | {mean_ci(finals[1])[0]:.3f} | "
                 f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] (p={d['p_ttest']:.2g}) | {secs} |")
    L += ["", f"All strategies: {n_refits} refits; broken {total[names[0]]} ({names[0]}) and {total[names[1]]} ({names[1]}).", "",
          "Broken refits:", "", *(details or ["- none"]), ""]
    text = "\n".join(L)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
