"""Does the paper's per-round refit schedule change the robot acquisition result? (issue 13)

The `cpu` preset refits the world model for 60 epochs at lr 3e-4 after each round; the paper trains it "200 epochs per
round" (the `paper` preset: 200 epochs at lr 1e-4). `benchmarks/robot_label_interference.py --refit-epochs 200 --refit-lr
1e-4` replays round 1 only. This script runs the whole experiment of `wav reproduce robot-acquisition` with every size,
schedule and pick rule of the preset except that refit schedule (the runs' config.json records the one used; their
later rounds' scores come from the models it refits), then compares each strategy's error after every round with a
finished folder of the preset's schedule on the same pool, paired over seeds. Run again on its finished `--out`, it runs
nothing and rewrites the section from the records.

    python benchmarks/robot_refit_schedule.py --task PullCube --data runs/robot-cpu/PullCube --seeds 0-4 \
        --strategies random,wav,oracle --refit-epochs 200 --refit-lr 1e-4 --compare runs/robot-acq-PullCube-xeon \
        --out runs/robot-acq-PullCube-refit200 --report benchmarks/results/robot_refit_schedule.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robot_label_interference import fmt, recorded_round  # noqa: E402
from robot_pool_outliers import append_section  # noqa: E402

from wav.experiments.common import write_json  # noqa: E402
from wav.experiments.robot_acquisition import RobotAcquisitionExperiment, pool_file, run  # noqa: E402
from wav.stats import paired_difference, parse_seeds  # noqa: E402


@dataclass(frozen=True)
class RefitScheduleExperiment(RobotAcquisitionExperiment):
    """The robot acquisition experiment with the world model's per-round refit schedule replaced."""

    refit_epochs: int = 200
    refit_lr: float = 1e-4

    @property
    def preset_refit(self):
        """The preset's own refit schedule, which this experiment replaces."""
        return super().round.refit

    @property
    def round(self):
        return replace(super().round, refit=replace(self.preset_refit, epochs=self.refit_epochs, lr=self.refit_lr))


def finished_folder(folder: Path, strategies, seeds: list[int]) -> dict:
    """results.json of a robot-acquisition folder whose (strategy, seed) runs are all finished; else a one-line exit."""
    if not (folder / "results.json").is_file():
        sys.exit(f"error: {folder}/results.json: no such file (not a finished robot-acquisition folder)")
    for s in strategies:
        for k in seeds:
            if not (folder / "runs" / s / f"seed{k}" / "done").is_file():
                sys.exit(f"error: {folder}/runs/{s}/seed{k}: run not finished")
    return json.loads((folder / "results.json").read_text())


def compare_folders(new: Path, old: Path, strategies, seeds: list[int], rounds: int, names: tuple[str, str],
                    short: tuple[str, str] | None = None, first_round: int = 1, caption: str = "") -> list[str]:
    """Two finished robot-acquisition folders of one pool: each strategy's eval error per round under both (paired over
    seeds), and wav − X after the last round in each. `names` = (old, new) as the column headers call them, `short` as
    the difference's header does (default `names`); `caption` replaces the first table's default caption."""
    a, b = short or names
    err = {(f, s, r): [recorded_round(f, s, k, r) for k in seeds] for f in (new, old) for s in strategies for r in range(first_round, rounds + 1)}
    lines = [caption or f"32-step error on the eval partition (mean over seeds [95% CI]); {b} − {a} paired over seeds (t-test p):", "",
             f"| strategy | round | {names[0]} | {names[1]} | {b} − {a} |", "|---|---|---|---|---|"]
    for s in strategies:
        for r in range(first_round, rounds + 1):
            d = paired_difference(err[new, s, r], err[old, s, r])
            lines.append(f"| {s} | {r} | {fmt(err[old, s, r])} | {fmt(err[new, s, r])} | {d['mean']:+.3f} (p={d['p_ttest']:.2g}) |")
    lines += ["", f"wav − X after round {rounds}, paired over seeds (t-test p; wav lower in how many seeds):", "",
              f"| X | {names[0]} | {names[1]} |", "|---|---|---|"]
    for s in strategies:
        if s == "wav":
            continue
        cells = []
        for f in (old, new):
            d = paired_difference(err[f, "wav", rounds], err[f, s, rounds])
            lower = sum(a < b for a, b in zip(err[f, "wav", rounds], err[f, s, rounds]))
            cells.append(f"{d['mean']:+.3f} (p={d['p_ttest']:.2g}; {lower}/{len(seeds)})")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def compare(exp: RefitScheduleExperiment, folder: Path, seeds: list[int], command: str) -> list[str]:
    """The report section: each strategy's error per round under both schedules, and wav − X under each."""
    new, old = Path(exp.out), folder
    base = exp.preset_refit
    res = json.loads((new / "results.json").read_text())
    lines = [f"## {exp.task}, warm-up {exp.warmup}: refit {exp.refit_epochs} epochs at lr {exp.refit_lr:g} against `{old}` "
             f"({base.epochs} at {base.lr:g})", "",
             f"Command: `{command}`  ",
             f"Machine: {platform.processor() or platform.machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; seeds "
             f"{','.join(map(str, seeds))}; {res['wall_seconds'] / 60:.1f} min of jobs' wall with {res['jobs']} jobs, {res['cpu_seconds_per_seed']:.0f} CPU s per seed (results.json). "
             "Round 0 is the same warm-up world model under both schedules (its error must match).", ""]
    lines += compare_folders(new, old, exp.strategies, seeds, exp.rounds, ("preset schedule", "new schedule"), ("preset", "new"))
    sp = {s: v.get("spearman") for s, v in res["strategies"].items() if v.get("spearman") is not None}
    if sp:
        lines += ["", "Round-1 Spearman with the oracle's scores (new schedule; round 1 scores come from the warm-up models, as under the preset's): "
                  + ", ".join(f"{s} {v:.3f}" for s, v in sp.items()) + "."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--data", required=True, help="the pool file of `wav robot build` (or its folder)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--strategies", default="random,wav,oracle")
    ap.add_argument("--preset", default="cpu", choices=["debug", "cpu", "paper"])
    ap.add_argument("--refit-epochs", type=int, default=200)
    ap.add_argument("--refit-lr", type=float, default=1e-4)
    ap.add_argument("--compare", required=True, help="a finished robot-acquisition folder of the same pool, warm-up and preset")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", required=True, help="the new experiment's folder (resumable)")
    ap.add_argument("--report", required=True, help="markdown file; an existing one gets this section appended")
    args = ap.parse_args()
    seeds, names = parse_seeds(args.seeds), tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    folder = Path(args.compare)
    if args.refit_epochs < 1 or not 0 < args.refit_lr < 1:
        sys.exit(f"error: --refit-epochs must be >= 1 and --refit-lr in (0, 1), got {args.refit_epochs} and {args.refit_lr}")
    if "wav" not in names:
        sys.exit(f"error: --strategies must include wav, got {args.strategies!r}")
    old = finished_folder(folder, names, seeds)
    if (old["task"], int(old["warmup"]), old["preset"]) != (args.task, args.warmup, args.preset):
        sys.exit(f"error: {folder}: task {old['task']}, warm-up {old['warmup']}, preset {old['preset']}, not {args.task}, {args.warmup}, {args.preset}")
    recorded = json.loads((folder / "runs" / "wav" / f"seed{seeds[0]}" / "config.json").read_text())["data"]
    if Path(recorded).resolve() != pool_file(args.data).resolve():
        sys.exit(f"error: {folder} ran on {recorded}, not {pool_file(args.data)}")
    exp = RefitScheduleExperiment(task=args.task, data=str(pool_file(args.data)), warmup=args.warmup, out=args.out, seeds=tuple(seeds),
                                  strategies=names, preset=args.preset, jobs=args.jobs, refit_epochs=args.refit_epochs, refit_lr=args.refit_lr)
    run(exp)  # a finished folder runs nothing: the report is rewritten from its records
    base = exp.preset_refit
    note = (f"Every world-model refit of these runs: {exp.refit_epochs} epochs at lr {exp.refit_lr:g}, not the `{exp.preset}` preset's "
            f"{base.epochs} at {base.lr:g} (`benchmarks/robot_refit_schedule.py`; each run's config.json records it).")
    out = Path(args.out)  # the experiment's own report says "preset cpu": it gets the schedule that differs
    res = json.loads((out / "results.json").read_text())
    res["refit"] = {"epochs": exp.refit_epochs, "lr": exp.refit_lr, "preset_epochs": base.epochs, "preset_lr": base.lr}
    write_json(out / "results.json", res)
    table = (out / "table.md").read_text()
    if not table.startswith(note):
        (out / "table.md").write_text(note + "\n\n" + table)
    r0 = [(recorded_round(Path(args.out), "wav", k, 0), recorded_round(folder, "wav", k, 0)) for k in seeds]
    if any(abs(a - b) > 1e-6 * max(1.0, abs(b)) for a, b in r0):
        sys.exit(f"error: the warm-up world model's error differs from {folder}'s: {r0} (another pool build or machine?)")
    lines = compare(exp, folder, seeds, "python " + " ".join([sys.argv[0].split("/wav/")[-1]] + sys.argv[1:]))
    append_section(args.report, "The paper's per-round refit schedule in the whole robot acquisition", "robot_refit_schedule.py", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
