"""Five-seed rows for Can and Square: the final errors of seeds 0-2 as the README records them (runs at
commits ca71e67 / 11cad7b on the pools built at 692cb65; their run folders were not kept) joined with the run
records of seeds 3-4 (pools rebuilt 2026-12-04), paired t and Wilcoxon tests of WAV against each strategy.
The ensemble strategy ran on Can's seeds 0, 3 and 4 and on Square's seeds 3 and 4 only (None marks a seed it did
not run); its mean and its paired test use the seeds it has.

    python benchmarks/robot_merge_seeds.py --runs runs/robot-acq-{task}-cpu5/runs Can Square
"""
import argparse
import json
from pathlib import Path

from wav.stats import mean_ci, paired_difference

OLD = {  # README lines: final error per seed 0, 1, 2
    "Can": {"random": [1.330, 1.801, 1.383], "ensemble": [1.276, None, None], "progress": [1.265, 1.249, 1.499], "wav-dense": [1.330, 1.175, 1.325], "wav": [1.436, 1.197, 1.398], "oracle": [1.311, 1.202, 1.274]},
    "Square": {"random": [1.238, 1.178, 1.135], "ensemble": [None, None, None], "progress": [1.232, 1.120, 1.180], "wav-dense": [1.204, 1.207, 1.376], "wav": [1.193, 1.248, 1.289], "oracle": [1.196, 1.172, 1.363]},
}
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("tasks", nargs="+", choices=sorted(OLD))
ap.add_argument("--runs", default="runs/robot-acq-{task}-cpu5/runs", help="run folder of seeds 3-4 ({task} is filled in)")
args = ap.parse_args()
for task in args.tasks:
    root = Path(args.runs.format(task=task))
    new, sp, r1 = {}, {}, {}
    for s in OLD[task]:
        new[s], sp[s], r1[s] = [], [], []
        for seed in (3, 4):
            rows = [json.loads(l) for l in open(root / s / f"seed{seed}" / "metrics.jsonl")]
            new[s].append(rows[-1]["pred_error"]); r1[s].append(rows[1]["pred_error"]); sp[s].append(round(rows[1]["spearman"], 3))
    print(f"## {task}")
    print("| strategy | seeds 3, 4 (new) | round-1 error seeds 3, 4 | Spearman seeds 3, 4 | mean over its seeds [95% CI] | min / max |")
    print("|---|---|---|---|---|---|")
    for s in OLD[task]:
        x = [v for v in OLD[task][s] + new[s] if v is not None]
        m, lo, hi = mean_ci(x)
        print(f"| {s} | {new[s][0]:.3f}, {new[s][1]:.3f} | {r1[s][0]:.3f}, {r1[s][1]:.3f} | {sp[s][0]}, {sp[s][1]} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {min(x):.3f} / {max(x):.3f} |")
    for s in OLD[task]:
        if s == "wav":
            continue
        pairs = [(w, v) for w, v in zip(OLD[task]["wav"] + new["wav"], OLD[task][s] + new[s]) if v is not None]
        d = paired_difference([w for w, _ in pairs], [v for _, v in pairs])
        print(f"wav - {s} ({len(pairs)} seeds): {d['mean']:+.3f} (t p={d['p_ttest']:.3f}, Wilcoxon p={d['p_wilcoxon']:.3f})")
