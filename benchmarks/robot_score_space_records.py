"""WAV with the latent-feature score against every strategy of the state-score run, paired by seed, from the run
records of two `wav reproduce robot-acquisition` folders of one task (same pool, warm-up, seeds and preset; the
random runs of both folders must agree, which checks that the pairing is sound). Per task: each strategy's final
32-step eval error (mean, min, max over seeds), Spearman of its round-1 scores with the oracle, and the paired
difference wav(latent) - X with its t-test p.

    python benchmarks/robot_score_space_records.py --state runs/robot-acq-cpu5 --latent runs/robot-acq-cpu5-latent \
        --tasks Lift,PullCube,PokeCube,LiftPeg --out benchmarks/results/robot_score_space_records.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wav.stats import paired_difference  # noqa: E402

NAMES = ("random", "ensemble", "progress", "wav-dense", "wav", "oracle")


def finals(folder: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """strategy -> seed -> (final eval error, round-1 Spearman) of every finished run in `folder`/runs."""
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for run in sorted((folder / "runs").glob("*/seed*")):
        if not (run / "done").exists():
            continue
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        first = next((r for r in rows if r.get("round") == 1), {})
        out.setdefault(run.parent.name, {})[int(run.name[4:])] = (rows[-1]["pred_error"], first.get("spearman", np.nan))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", required=True, help="folder of state-score runs, <state>/<task>/runs/...")
    ap.add_argument("--latent", required=True, help="folder of latent-score runs, <latent>/<task>/runs/...")
    ap.add_argument("--tasks", required=True, help="comma-separated tasks")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    lines = ["# WAV's score space on the robot pools: latent-feature score vs every strategy of the state-score run", "",
             f"Command: `python benchmarks/robot_score_space_records.py --state {args.state} --latent {args.latent} --tasks {args.tasks} --out {args.out}`", "",
             "Final 32-step eval error after 2 rounds: mean [min, max] over seeds; Spearman = round 1 vs the oracle error; "
             "wav(latent) − X = paired over seeds (t-test p).", ""]
    for task in args.tasks.split(","):
        state, latent = finals(Path(args.state) / task), finals(Path(args.latent) / task)
        if "wav" not in latent:
            lines += [f"## {task}", "", "no finished latent-score wav runs", ""]
            continue
        same = all(abs(latent["random"][k][0] - v[0]) < 1e-9 for k, v in state.get("random", {}).items() if k in latent.get("random", {}))
        lines += [f"## {task}", "", f"random runs identical in both folders: {'yes' if same else 'NO (pairing unsound)'}", "",
                  "| strategy | seeds | error mean [min, max] | Spearman | wav(latent) − X (p) |", "|---|---|---|---|---|"]
        mine = latent["wav"]
        rows = [(f"{s} (state score)" if s in ("wav", "wav-dense", "ensemble") else s, state[s]) for s in NAMES if s in state]
        rows += [(f"{s} (latent score)", latent[s]) for s in ("wav-dense", "wav") if s in latent]
        for name, runs in rows:
            seeds = sorted(set(runs) & set(mine))
            e = np.array([runs[k][0] for k in sorted(runs)])
            rho = np.nanmean([runs[k][1] for k in sorted(runs)])
            d = paired_difference([mine[k][0] for k in seeds], [runs[k][0] for k in seeds]) if name != "wav (latent score)" else None
            diff = f"{d['mean']:+.3f} (p={d['p_ttest']:.3g})" if d else "—"
            lines.append(f"| {name} | {len(runs)} | {e.mean():.3f} [{e.min():.3f}, {e.max():.3f}] | {rho:.3f} | {diff} |")
        lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
