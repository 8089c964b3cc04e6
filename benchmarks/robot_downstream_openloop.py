"""Does a world model trained on its open-loop rollout plan better? (issue 14)

With DreamerV3's objective no planner beat the base policy on any task, not even with the oracle's world model
(README, "Where this stands"). The planner scores 8-step residual action chunks by rolling the RSSM's prior open-loop
under them, which is exactly what DreamerV3's objective never trains. `--openloop-scale` (issue 13) adds that
rollout's error to the objective, and with it every strategy's 32-step eval error falls (PullCube's about halves).

This script compares two finished `wav reproduce robot-downstream` folders of one task, planned with the world models
of an acquisition folder run with `--openloop-scale W` and of one without, paired over seeds. Both must use the same
base policy, episodes, env seeds, preset and pool, so the base policy's runs are the same episodes in both (checked to
the episode). For each strategy: the reward with each world model, its difference, each against the base policy,
and the world model's final 32-step eval error from its acquisition run. It fits nothing.

    wav reproduce robot-downstream --task Lift --from runs/robot-acq-Lift-openloop --strategies oracle,wav,random \\
        --seeds 0-4 --preset cpu --jobs 1 --out runs/robot-ds-Lift-openloop
    python benchmarks/robot_downstream_openloop.py --folder runs/robot-ds-Lift-openloop --compare runs/robot-ds-Lift-waves \\
        --report benchmarks/results/robot_downstream_openloop.md --figure benchmarks/results/robot_downstream_openloop_Lift.png
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

from robot_openloop_loss import run_openloop  # noqa: E402
from robot_pool_outliers import append_section  # noqa: E402

from wav.experiments.common import read_metrics  # noqa: E402
from wav.experiments.robot_downstream import BASE, _episodes  # noqa: E402
from wav.stats import mean_ci, paired_difference, parse_seeds  # noqa: E402

SAME = ("task", "policy_sha1", "episodes", "env_seeds", "preset")


def run_settings(folder: Path, name: str, seed: int) -> dict:
    path = folder / "runs" / name / f"seed{seed}"
    if not (path / "done").exists():
        sys.exit(f"error: {folder}: runs/{name}/seed{seed} is not a finished downstream run")
    return json.loads((path / "config.json").read_text())["settings"]


def seed_rewards(folder: Path, name: str, seeds: list[int], key: str = "reward") -> tuple[list[float], list[list[float]]]:
    """Each seed's mean episode reward (or success) and its episodes' values."""
    eps = [_episodes(folder / "runs" / name / f"seed{k}")[0] for k in seeds]
    return [float(np.mean([e[key] for e in ep])) for ep in eps], [[e[key] for e in ep] for ep in eps]


def heldout_auc(folder: Path, name: str, seeds: list[int]) -> float:
    """Mean over seeds of the reward model's held-out AUC, expert against learner trajectories (the run's fit record)."""
    return float(np.mean([_episodes(folder / "runs" / name / f"seed{k}")[1]["reward_heldout_trajectory"]["auc"] for k in seeds]))


def acquisition_error(world_model: str) -> float:
    """The final 32-step eval error the world model's acquisition run recorded (its run folder's last row)."""
    return float(read_metrics(Path(world_model).parent)[-1]["pred_error"])


def check(new: Path, old: Path, strategies: list[str], seeds: list[int]) -> None:
    """Same task, base policy, episodes, env seeds, preset and pool; `new` planned with open-loop-trained world
    models, `old` with DreamerV3's; the base policy's episodes identical."""
    for name in [BASE, *strategies]:
        for k in seeds:
            a, b = run_settings(new, name, k), run_settings(old, name, k)
            diff = [f for f in SAME + (("data_sha1",) if name != BASE else ()) if a.get(f) != b.get(f)]
            if diff:
                sys.exit(f"error: {new} and {old} differ in {', '.join(diff)} for runs/{name}/seed{k}")
            if name != BASE and not (run_openloop(Path(a["world_model"]).parent) > 0 and run_openloop(Path(b["world_model"]).parent) == 0):
                sys.exit(f"error: runs/{name}/seed{k}: {new} must plan with open-loop-trained world models and {old} without")
    if seed_rewards(new, BASE, seeds)[1] != seed_rewards(old, BASE, seeds)[1]:
        sys.exit(f"error: the base policy's episodes differ between {new} and {old}")


def fmt_diff(d: dict) -> str:
    return f"{d['mean']:+.2f} (p={d['p_ttest']:.3g})"


def section(new: Path, old: Path, strategies: list[str], seeds: list[int], cmd: str) -> tuple[str, dict]:
    base = seed_rewards(new, BASE, seeds)[0]
    success = lambda f, n: float(np.mean(seed_rewards(f, n, seeds, "success")[0]))  # noqa: E731
    lines = [f"Base policy: reward {np.mean(base):.2f} (per seed {', '.join(f'{r:.2f}' for r in base)}), success {success(new, BASE):.2f}.", "",
             "| strategy | 32-step eval error: open-loop / DreamerV3 | success: open-loop / DreamerV3 | reward model's held-out AUC: open-loop / DreamerV3 | reward, open-loop world model [95% CI] | reward, DreamerV3 world model | open-loop − DreamerV3 (p) | open-loop − base (p) | DreamerV3 − base (p) |",
             "|---|---|---|---|---|---|---|---|---|"]
    data = {"base": base, "strategies": {}}
    for s in strategies:
        r_new, r_old = seed_rewards(new, s, seeds)[0], seed_rewards(old, s, seeds)[0]
        err = [[acquisition_error(run_settings(f, s, k)["world_model"]) for k in seeds] for f in (new, old)]
        m, lo, hi = mean_ci(r_new)
        d = {"new_minus_old": paired_difference(r_new, r_old), "new_minus_base": paired_difference(r_new, base),
             "old_minus_base": paired_difference(r_old, base)}
        data["strategies"][s] = {"reward_openloop": r_new, "reward_dreamerv3": r_old, "error_openloop": err[0], "error_dreamerv3": err[1], **d}
        lines.append(f"| {s} | {np.mean(err[0]):.3f} / {np.mean(err[1]):.3f} | {success(new, s):.2f} / {success(old, s):.2f} | {heldout_auc(new, s, seeds):.2f} / {heldout_auc(old, s, seeds):.2f} | {m:.2f} [{lo:.2f}, {hi:.2f}] | {np.mean(r_old):.2f} | "
                     f"{fmt_diff(d['new_minus_old'])} | {fmt_diff(d['new_minus_base'])} | {fmt_diff(d['old_minus_base'])} |")
    if "wav" in strategies:
        rivals = [s for s in strategies if s not in ("wav", "oracle")]
        for s in rivals:
            d = paired_difference(data["strategies"]["wav"]["reward_openloop"], data["strategies"][s]["reward_openloop"])
            lines.append(f"\nWith the open-loop world models, WAV − {s}: {fmt_diff(d)}.")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    head = f"{when}, {platform.processor() or platform.machine()}; seeds {seeds[0]}-{seeds[-1]}; `{cmd}`"
    return "\n".join([head, "", *lines]), data


def figure(data: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(data["strategies"])
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(names), 3.4))
    x = np.arange(len(names))
    for off, key, label in ((-0.18, "reward_dreamerv3", "DreamerV3 objective"), (0.18, "reward_openloop", "with the open-loop loss")):
        vals = [data["strategies"][n][key] for n in names]
        ax.bar(x + off, [np.mean(v) for v in vals], width=0.34, label=label, alpha=0.8)
        for i, v in enumerate(vals):
            ax.plot(np.full(len(v), x[i] + off), v, "k.", ms=4)
    ax.axhline(np.mean(data["base"]), color="k", ls="--", lw=1, label="base policy")
    ax.set_xticks(x, names)
    ax.set_ylabel("reward per episode (dots: seeds)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", required=True, type=Path, help="downstream folder planned with open-loop-trained world models")
    p.add_argument("--compare", required=True, type=Path, help="downstream folder of the same task planned with DreamerV3's world models")
    p.add_argument("--strategies", default="oracle,wav,random")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--report", type=Path, help="append a section to this markdown file")
    p.add_argument("--figure", type=Path)
    args = p.parse_args(argv)
    seeds, strategies = parse_seeds(args.seeds), args.strategies.split(",")
    check(args.folder, args.compare, strategies, seeds)
    task = run_settings(args.folder, BASE, seeds[0])["task"]
    cmd = "python benchmarks/robot_downstream_openloop.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text, data = section(args.folder, args.compare, strategies, seeds, cmd)
    print(text)
    if args.report:
        append_section(args.report, "Planning with world models trained on their open-loop rollout", Path(__file__).name,
                       [f"## {task}: {', '.join(strategies)}", "", text])
    if args.figure:
        figure(data, f"{task}: reward with each strategy's world model, {len(seeds)} seeds", args.figure)


if __name__ == "__main__":
    main()
