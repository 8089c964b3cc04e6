"""The six-task robot acquisition table and figure from the per-task results files of the rebuilt pools.

Each task's five-seed experiment on one pool build is reported in `results/robot-acquisition-<task>-s01234.json`
(`wav reproduce robot-acquisition ... --report-only`). On Lift and LiftPeg the ensemble strategy ran in a later
session into `results/robot-acquisition-<task>-ensemble.json`, whose random and WAV runs repeat those of the
first file to the last digit; this script checks that (every strategy the two files share must have the same
seeds and the same per-round errors) and joins the ensemble in. It then writes, from these files only:

- `<out>.md`: the cross-task table with the issue's targets scored (`wav.experiments.robot_acquisition.tasks_table`),
  each strategy's final error as mean [95% CI] over seeds, WAV's paired difference to each strategy, and that
  difference pooled over the tasks (`pooled_table`);
- `<out>.png`: per task, each strategy's final error divided by random's mean, with its 95% CI.

    python benchmarks/robot_acquisition_overview.py --tasks Lift,LiftPeg,PokeCube,PullCube,Square,Can \
        --out results/robot-acquisition-rebuilt

`--suffix openloop` reads `results/robot-acquisition-<task>-openloop.json` instead: the same six tasks with the world
model trained on its open-loop rollout (`--openloop-scale 1`), each on the pool its run was made on:

    python benchmarks/robot_acquisition_overview.py --suffix openloop --out results/robot-acquisition-openloop
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np

from wav.experiments.common import strategy_bars
from wav.experiments.robot_acquisition import STRATEGIES, tasks_table
from wav.stats import pool_random_effects, se_from_t_interval


def load(results_dir: Path, task: str, suffix: str = "s01234") -> tuple[dict, list[str]]:
    """The task's five-seed results with the ensemble joined in where it ran separately; the files read."""
    main = results_dir / f"robot-acquisition-{task}-{suffix}.json"
    if not main.is_file():
        raise SystemExit(f"{main}: no such file (the task's five-seed report, `wav reproduce robot-acquisition ... --report-only`)")
    res = json.loads(main.read_text())
    used = [main.name]
    extra = results_dir / f"robot-acquisition-{task}-ensemble.json"
    if suffix == "s01234" and "ensemble" not in res["strategies"] and extra.is_file():
        ens = json.loads(extra.read_text())
        for s in set(ens["strategies"]) & set(res["strategies"]):
            a, b = res["curves"][s], ens["curves"][s]
            if res["strategies"][s]["seeds"] != ens["strategies"][s]["seeds"] or a["pred_error"] != b["pred_error"]:
                raise SystemExit(f"{extra}: strategy {s} differs from {main.name} (seeds or per-round errors), so the two cannot be joined")
        res = copy.deepcopy(res)
        res["strategies"]["ensemble"] = ens["strategies"]["ensemble"]
        res["curves"]["ensemble"] = ens["curves"]["ensemble"]
        res["paired_wav_minus"]["ensemble"] = ens["paired_wav_minus"]["ensemble"]
        used.append(extra.name)
    res["strategies"] = {s: res["strategies"][s] for s in STRATEGIES if s in res["strategies"]}
    return res, used


def ci_table(results: dict[str, dict]) -> list[str]:
    names = [s for s in STRATEGIES if any(s in r["strategies"] for r in results.values())]
    lines = ["Final error, mean [95% CI] over seeds (lowest non-oracle mean in bold):", "",
             "| task | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for task, r in results.items():
        e = r["strategies"]
        best = min((s for s in e if s != "oracle"), key=lambda s: e[s]["pred_error"])
        cells = []
        for s in names:
            if s not in e:
                cells.append("—")
                continue
            m, (lo, hi) = e[s]["pred_error"], e[s]["pred_error_ci"]
            cells.append((f"**{m:.3f}**" if s == best else f"{m:.3f}") + f" [{lo:.3f}, {hi:.3f}]")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def paired_table(results: dict[str, dict]) -> list[str]:
    others = [s for s in STRATEGIES if s != "wav"]
    lines = ["WAV − X in final error, paired over seeds: mean (t-test p; Wilcoxon p). Negative: WAV lower.", "",
             "| task | " + " | ".join(others) + " |", "|---" * (len(others) + 1) + "|"]
    for task, r in results.items():
        cells = []
        for s in others:
            d = r["paired_wav_minus"].get(s, {}).get("pred_error")
            if not d:
                cells.append("—")
                continue
            pw = d.get("p_wilcoxon")
            cells.append(f"{d['mean']:+.3f} ({d['p_ttest']:.3g}; {pw:.3g})" if pw is not None else f"{d['mean']:+.3f} ({d['p_ttest']:.3g})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def pooled_table(results: dict[str, dict]) -> list[str]:
    """WAV − X pooled over the tasks: each task's paired difference (its se from the paired t interval) divided by
    X's mean error on that task, so tasks of different error scales pool as percentages; random-effects pooling
    with the Hartung-Knapp interval (`wav.stats.pool_random_effects`). The division ignores the uncertainty of X's
    mean, so the interval is a little too narrow."""
    lines = ["WAV − X pooled over the tasks, in % of X's error (random effects, Hartung-Knapp 95% CI; I^2 = share of the "
             "spread between tasks beyond chance). Negative: WAV lower.", "",
             "| X | tasks | pooled WAV − X | 95% CI | p | I^2 | tasks with WAV lower |", "|---|---|---|---|---|---|---|"]
    for x in (s for s in STRATEGIES if s != "wav"):
        y, se, lower = [], [], 0
        for r in results.values():
            d = r["paired_wav_minus"].get(x, {}).get("pred_error")
            if not d:
                continue
            ref = r["strategies"][x]["pred_error"]
            y.append(100 * d["mean"] / ref)
            se.append(100 * se_from_t_interval(d["ci"], d["n"]) / ref)
            lower += d["mean"] < 0
        if len(y) < 2:
            continue
        pool = pool_random_effects(y, se)
        lo, hi = pool["ci"]
        lines.append(f"| {x} | {pool['k']} | {pool['mean']:+.1f}% | [{lo:+.1f}%, {hi:+.1f}%] | {pool['p']:.3g} | "
                     f"{100 * pool['i2']:.0f}% | {lower} of {pool['k']} |")
    return lines


def plot(results: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows), squeeze=False)
    for ax, (task, r) in zip(axes.flat, results.items()):
        ref = r["strategies"]["random"]["pred_error"]
        rel = {s: {"pred_error": v["pred_error"] / ref, "pred_error_ci": [x / ref for x in v["pred_error_ci"]]} for s, v in r["strategies"].items()}
        strategy_bars(ax, rel, "pred_error")
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_title(f"{task} ({r['n_seeds']} seeds)")
        ax.set_ylabel("final error / random's")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"Robot acquisition at the cpu scale, {title}: 32-step error after 2 rounds, relative to random (95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="Lift,LiftPeg,PokeCube,PullCube,Square,Can", help="comma-separated tasks")
    ap.add_argument("--results", default="results", help="folder of the per-task results files")
    ap.add_argument("--suffix", default="s01234", choices=["s01234", "openloop"],
                    help="which per-task files: s01234 (DreamerV3's objective, rebuilt pools) or openloop (--openloop-scale 1)")
    ap.add_argument("--out", default="results/robot-acquisition-rebuilt", help="output stem: <out>.md and <out>.png")
    args = ap.parse_args(argv)
    results, sources = {}, []
    for task in args.tasks.split(","):
        results[task], used = load(Path(args.results), task, args.suffix)
        sources += used
    out = Path(args.out)
    title = "one rebuilt pool per task" if args.suffix == "s01234" else "world model trained on its open-loop rollout"
    text = [f"# Robot acquisition, `cpu`, warm-up 50, {title}: five seeds, six strategies", "",
            "Written by `python benchmarks/robot_acquisition_overview.py` from " + ", ".join(f"`{s}`" for s in sources)
            + " (commands and dates: README, \"The manipulation verifier\").", "", tasks_table(results).rstrip(), "",
            *ci_table(results), "", *paired_table(results), "", *pooled_table(results), ""]
    out.with_suffix(".md").write_text("\n".join(text))
    plot(results, out.with_suffix(".png"), title)
    print(f"table: {out.with_suffix('.md')}  figure: {out.with_suffix('.png')}", file=sys.stderr)


if __name__ == "__main__":
    main()
