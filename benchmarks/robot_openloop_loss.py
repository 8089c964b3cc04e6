"""Does training the RSSM's open-loop rollout stop WAV's labels from costing the typical trajectory? (issue 13)

Stops 43-45 measured why WAV's robot labels raise the eval error: its batches are the pool's outlier trajectories
(on PullCube, ones where the cube travels), and after the refit the prior's open-loop rollout moves the cube on
typical trajectories too, while the training loss on the warm-up windows stays where it was. DreamerV3's objective
trains the prior one step at a time (the KL to the posterior); the 31-step rollout that the evaluation measures is
never trained. `RSSMConfig.openloop_scale` (`wav reproduce robot-acquisition --openloop-scale W`) adds that rollout's
decoded error to the objective, for every RSSM of the experiment (warm-up fit, refits, ensemble).

This script compares a finished folder run with `--openloop-scale W` with a finished folder of the same pool, warm-up,
preset and strategies without it, paired over seeds: each strategy's eval error per round (round 0 too: the warm-up
model changes), wav − X after the last round under each objective, the round-1 Spearman of each, the 2x check (WAV
after round 1 at or below random after round 2) and the final error per layout group. It fits nothing.

    wav reproduce robot-acquisition --task PullCube --data runs/robot-cpu/PullCube --warmup 50 --seeds 0-4 --preset cpu \\
        --strategies random,wav,oracle --openloop-scale 1 --jobs 1 --out runs/robot-acq-PullCube-openloop
    python benchmarks/robot_openloop_loss.py --folder runs/robot-acq-PullCube-openloop --compare runs/robot-acq-PullCube-xeon \\
        --report benchmarks/results/robot_openloop_loss.md
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robot_label_interference import recorded_round  # noqa: E402
from robot_pool_outliers import append_section  # noqa: E402
from robot_refit_schedule import compare_folders, finished_folder  # noqa: E402

from wav.acquire import make_strategy  # noqa: E402
from wav.experiments.common import read_metrics  # noqa: E402
from wav.loop import shared_parts  # noqa: E402
from wav.stats import mean_ci, parse_seeds  # noqa: E402


def run_openloop(run: Path) -> float:
    """The open-loop weight a finished acquisition run (its run folder) recorded (0 for runs made before the option existed)."""
    settings = json.loads((Path(run) / "config.json").read_text())["settings"]
    return float(settings["domain"].get("rssm_openloop", 0.0))


def openloop_of(folder: Path, strategy: str, seed: int) -> float:
    return run_openloop(folder / "runs" / strategy / f"seed{seed}")


def last_rows(folder: Path, strategy: str, seeds: list[int]) -> list[dict]:
    return [read_metrics(folder / "runs" / strategy / f"seed{k}")[-1] for k in seeds]


def cost(res: dict, strategies) -> str:
    """Mean seconds per seed of the seed-set fits `strategies` need and their runs (results.json); a
    folder resumed with more strategies by older code kept only its last invocation's timings, so some may be missing."""
    jobs = res.get("job_seconds", [])
    if not jobs or any(s not in j["run_seconds"] for j in jobs for s in strategies):
        return "not recorded for every strategy (a later resume of the folder replaced its timings)"
    parts = shared_parts([make_strategy(s) for s in strategies])
    per = [sum(j["fit_seconds"].get(p, 0.0) for p in parts) + sum(j["run_seconds"][s] for s in strategies) for j in jobs]
    return f"{np.mean(per):.0f} s of one core per seed"


def check(new: Path, old: Path, strategies: tuple[str, ...], seeds: list[int]) -> tuple[dict, dict, float]:
    """Both folders finished on the same pool, warm-up and preset; `new` with an open-loop weight, `old` without."""
    res = {f: finished_folder(f, strategies, seeds) for f in (new, old)}
    keys = ("task", "warmup", "preset", "data", "rounds", "budget")
    a, b = ({k: res[f].get(k) for k in keys} for f in (new, old))
    if a != b:
        sys.exit(f"error: {new} and {old} differ in {', '.join(k for k in keys if a[k] != b[k])}: {a} against {b}")
    sha = [json.loads((f / "runs" / "wav" / f"seed{seeds[0]}" / "config.json").read_text())["settings"]["data_sha1"] for f in (new, old)]
    if sha[0] != sha[1]:
        sys.exit(f"error: {new} and {old} ran on pool files of different content (data_sha1 {sha[0]} against {sha[1]})")
    weights = {openloop_of(new, s, k) for s in strategies for k in seeds}
    if len(weights) != 1 or not min(weights) > 0:
        sys.exit(f"error: {new}: its runs' open-loop weights are {sorted(weights)}, not one weight > 0 (run it with --openloop-scale W)")
    if any(openloop_of(old, s, k) for s in strategies for k in seeds):
        sys.exit(f"error: {old}: runs with an open-loop weight; --compare takes a folder of DreamerV3's objective")
    return res[new], res[old], weights.pop()


def figure(new: Path, old: Path, strategies, seeds: list[int], rounds: int, weight: float, task: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6 + 0.4 * len(strategies), 4))
    colors = dict(zip(strategies, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    x = np.arange(rounds + 1)
    for f, style, label in ((old, "--", "DreamerV3 objective"), (new, "-", f"open-loop weight {weight:g}")):
        for s in strategies:
            stats = np.array([mean_ci([recorded_round(f, s, k, r) for k in seeds]) for r in x])
            ax.plot(x, stats[:, 0], style, color=colors[s], marker="o", label=f"{s}, {label}")
            ax.fill_between(x, stats[:, 1], stats[:, 2], color=colors[s], alpha=0.08)
    ax.set_xticks(x)
    ax.set_xlabel("acquisition round (0 = warm-up world model)")
    ax.set_ylabel("32-step eval error (warm-up stds²)")
    ax.set_title(f"{task}: with and without the RSSM's open-loop loss, {len(seeds)} seeds")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: with six strategies it hides the curves
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", required=True, help="a finished robot-acquisition folder run with --openloop-scale W")
    ap.add_argument("--compare", required=True, help="a finished folder of the same pool, warm-up and preset without it")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--strategies", default="random,wav,oracle")
    ap.add_argument("--report", required=True, help="markdown file; an existing one gets this section appended")
    ap.add_argument("--figure", default=None, help="PNG: each strategy's error per round under both objectives (mean and 95%% CI over seeds)")
    args = ap.parse_args()
    seeds, names = parse_seeds(args.seeds), tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    if "wav" not in names or "random" not in names:
        sys.exit(f"error: --strategies must include wav and random, got {args.strategies!r}")
    new, old = Path(args.folder), Path(args.compare)
    res, base, weight = check(new, old, names, seeds)
    rounds = int(res["rounds"])
    command = "python " + " ".join([sys.argv[0].split("/wav/")[-1]] + sys.argv[1:])
    which = "" if names == ("random", "wav", "oracle") else f", {', '.join(names)}"
    lines = [f"## {res['task']}, warm-up {res['warmup']}{which}: open-loop weight {weight:g} (`{new}`) against DreamerV3's objective (`{old}`)", "",
             f"Command: `{command}`  ",
             f"Machine: {platform.processor() or platform.machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; seeds "
             f"{','.join(map(str, seeds))}; the open-loop folder's last invocation took {res['wall_seconds'] / 60:.1f} min of jobs' wall with {res['jobs']} jobs. "
             f"Seed-set fits plus the runs of {', '.join(names)}: {cost(res, names)} with the open-loop loss, "
             f"{cost(base, names)} without (results.json).", ""]
    lines += compare_folders(new, old, names, seeds, rounds, ("DreamerV3 objective", f"open-loop weight {weight:g}"), ("DreamerV3", "open-loop"),
                             first_round=0, caption="32-step error on the eval partition (mean over seeds [95% CI]; round 0 = the warm-up world "
                             "model); with − without the open-loop loss, paired over seeds (t-test p):")
    lines += ["", "Round-1 Spearman with the oracle's scores, the 2x check (WAV after round 1 at or below random after round 2) and the final "
              "error per layout group (mean over seeds):", "",
              "| objective | wav Spearman | wav round 1 | random round 2 | 2x | " + " | ".join(f"{s} ee / robot / object" for s in names) + " |",
              "|---|---|---|---|---|" + "---|" * len(names)]
    for label, f, r in (("DreamerV3", old, base), (f"open-loop {weight:g}", new, res)):
        c = r["curves"]
        r1, r2 = c["wav"]["pred_error"][1], c["random"]["pred_error"][-1]
        groups = []
        for s in names:
            rows = last_rows(f, s, seeds)
            groups.append(" / ".join(f"{np.mean([row['pred_error_by_group'][g] for row in rows]):.2f}" for g in ("ee", "robot", "object")))
        lines.append(f"| {label} | {r['strategies']['wav'].get('spearman', float('nan')):.3f} | {r1:.3f} | {r2:.3f} | {'yes' if r1 <= r2 else 'no'} | "
                     + " | ".join(groups) + " |")
    if args.figure:
        figure(new, old, names, seeds, rounds, weight, res["task"], args.figure)
        lines += ["", f"Figure: `{args.figure}`."]
    append_section(args.report, "An open-loop loss for the RSSM in the whole robot acquisition", "robot_openloop_loss.py", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
