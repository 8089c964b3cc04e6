"""Why does WAV not beat random exploration online? (issue 13 item 6) What WAV's picks are, measured in the simulator.

    WAV_THREADS=1 .venv-robot/bin/python benchmarks/robot_online_picks.py --task PullCube \
        --data runs/robot-cpu/PullCube/pool.hdf5 --seeds 0-4 --jobs 2 --out runs/online-picks-PullCube \
        --md benchmarks/results/robot_online_picks.md

Per seed this runs the `wav` strategy of `wav reproduce robot-online` through the experiment's own code
(`wav.experiments.robot_online._seed_job`: the same seed-set fits, generator, refits and evaluations), and at every
state where WAV acts it also rolls, from a simulator snapshot, each of the K candidates' inferred H-step action
sequences and R sequences of H uniform actions (what the `random` strategy plays), restoring the snapshot after
each. For every candidate k, in the units of the verification score (standardised squared error, mean over the
state features and the valid steps):
  - score l_k: subgoal vs the world model's prediction under the inferred actions (what WAV ranks by);
  - model error e_k: the same prediction vs the states the simulator really reaches under those actions (the
    oracle's score: how wrong the world model is about that label);
  - reach error r_k: the subgoal vs those true states (how far the generator's proposal and the inverse model's
    actions are from a real outcome: noise in the score, not the world model's error);
  - motion: those true states vs the start state (how far the sequence moves the state), also for the uniform ones.
Per state: Spearman(l, e) and Spearman(l, r) over the K candidates; the pick's e against the candidates' mean and
max and against the uniform sequences' mean e. Per seed: the mean over its states; across seeds: mean, 95% CI,
min-max and paired tests. WAV's choices use the run's own generators (the extra rollouts draw from their own), so
it picks what the experiment picks; ManiSkill's restore leaves PhysX's contact caches, so after a probe the episode
may drift slightly from an unprobed run (its error curve is written too: <out>/runs/wav/seed<k>/metrics.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

_LOG: list[dict] = []
_ENV: list = []


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from wav.metrics import rank_correlation

    return rank_correlation(x, y)["spearman"]


def roll(online_env, sequences: torch.Tensor) -> np.ndarray:
    """True states (N, H, D) reached from the current simulator state under each sequence (N, H, A), the
    snapshot restored after each and at the end (`wav.planning.probe.simulate`); NaN after an episode ends."""
    from wav.domains.manipulation import quaternion_slices
    from wav.planning.probe import simulate

    visited, _, _, ran = simulate(online_env.env, sequences, online_env.states[-1], quaternion_slices(online_env.layout))
    visited[np.arange(sequences.shape[1])[None, :] >= ran[:, None]] = np.nan
    return visited


def standardised_mean(diff: torch.Tensor) -> np.ndarray:
    """Mean of the squared (N, H, D) differences over the features and the finite steps: (N,)."""
    sq = diff**2
    ok = torch.isfinite(sq).all(-1)
    return (torch.where(ok[..., None], sq, 0.0).sum((1, 2)) / (ok.sum(1) * sq.shape[-1]).clamp_min(1)).double().numpy()


def diagnose(online_env, res, pick: int, world_model, space, gen: torch.Generator, n_random: int, horizon: int) -> dict:
    """The per-state record: every candidate's score, model error and reach error, and the uniform sequences'."""
    k = res.actions.shape[1]
    d, a = world_model.dims
    s0 = torch.from_numpy(online_env.states[-1].copy())
    wav_seq = res.actions[0].reshape(k, -1, a)[:, :horizon]  # (K, H, A)
    rand_seq = space.sample(n_random * horizon, gen).reshape(n_random, horizon, a).float()
    seqs = torch.cat([wav_seq, rand_seq])
    true = torch.from_numpy(roll(online_env, seqs))  # (K+R, H, D)
    rows = torch.cat([s0.expand(len(seqs), 1, d), true], 1).reshape(len(seqs), -1)
    e = world_model.loss(rows, seqs.reshape(len(seqs), -1), rows).double().numpy()
    sub = res.subgoals[0].reshape(k, -1, d)[:, 1 : horizon + 1]  # (K, H, D)
    r = standardised_mean((sub - true[:k]) / world_model.scale)
    motion = standardised_mean((true - s0) / world_model.scale)  # how far each sequence moves the state
    l = res.scores[0].double().numpy()
    ew, er = e[:k], e[k:]
    return {"score": l.tolist(), "model_error": ew.tolist(), "reach_error": r.tolist(), "random_model_error": er.tolist(), "pick": pick,
            "spearman_score_model": spearman(l, ew), "spearman_score_reach": spearman(l, r),
            "pick_model_error": float(ew[pick]), "mean_model_error": float(ew.mean()), "max_model_error": float(ew.max()),
            "random_mean_model_error": float(er.mean()), "pick_reach_error": float(r[pick]), "mean_reach_error": float(r.mean()),
            "pick_is_model_argmax": bool(int(np.argmax(ew)) == pick), "pick_score": float(l[pick]),
            "pick_gripper": float(wav_seq[pick, 0, -1]), "random_gripper": float(rand_seq[:, 0, -1].mean()),
            "pick_motion": float(motion[pick]), "mean_motion": float(motion[:k].mean()), "random_mean_motion": float(motion[k:].mean())}


def seed_job(args: argparse.Namespace, seed: int) -> dict:
    import wav.domains.manipulation_online as online
    import wav.loop as loop
    from wav.cycle import choose, verify
    from wav.experiments.common import file_sha1
    from wav.experiments.robot_online import RobotOnlineExperiment, _seed_job
    from wav.experiments.robot_acquisition import pool_file
    from wav.runtime import set_threads, torch_generator

    set_threads(1)
    _LOG.clear(), _ENV.clear()  # a joblib worker runs several seeds
    exp = RobotOnlineExperiment(task=args.task, data=args.data, warmup=args.warmup, out=args.out, seeds=(seed,), strategies=("wav",),
                                preset=args.preset, steps=args.steps, jobs=1, force=True)
    make_env, make_strategy = online.make_env, loop.make_strategy
    gen = torch_generator(10_000 + seed)  # the uniform sequences' own stream
    t0, last = time.perf_counter(), [time.perf_counter()]

    def capture_env(task, env_seed):
        env = make_env(task, env_seed)
        _ENV.append(env)
        return env

    def probing_act(strategy, state, models, scoring, outcomes, rng, generator):
        res = verify(state, models.subgoal, strategy.inverse_model(models), models.world_model, scoring.k, generator)
        choice = choose(res, models.space, scoring.reduce, scoring.score_cap, rng)  # cycle_act's two calls
        pick = int(np.flatnonzero((res.actions[0] == choice).all(-1))[0])
        row = diagnose(_ENV[-1], res, pick, models.world_model, models.space, gen, args.random, exp.horizon)
        row["step"] = len(_LOG) + 1
        _LOG.append(row)
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(f"seed {seed}: {len(_LOG)} / {exp.online.steps} states probed, {time.perf_counter() - t0:.0f} s", flush=True)
        return choice

    online.make_env = capture_env
    loop.make_strategy = lambda name, mix=None: replace(make_strategy(name, mix), act=probing_act) if name == "wav" else make_strategy(name, mix)
    try:
        job = _seed_job(exp, seed, ("wav",), file_sha1(pool_file(exp.data)))
    finally:
        online.make_env, loop.make_strategy = make_env, make_strategy
    path = Path(args.out) / f"probes-seed{seed}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _LOG))
    metrics = [json.loads(x) for x in (Path(args.out) / "runs" / "wav" / f"seed{seed}" / "metrics.jsonl").read_text().splitlines()]
    return {"seed": seed, "rows": list(_LOG), "curve": [(m["steps"], m["pred_error"]) for m in metrics], "seconds": time.perf_counter() - t0,
            "fit_seconds": job["fit_seconds"], "run_seconds": job["run_seconds"]}


KEYS = ["spearman_score_model", "spearman_score_reach", "pick_model_error", "mean_model_error", "max_model_error", "random_mean_model_error",
        "pick_reach_error", "mean_reach_error", "pick_score", "pick_is_model_argmax", "pick_gripper", "random_gripper",
        "pick_motion", "mean_motion", "random_mean_motion"]


def summarise(jobs: list[dict]) -> dict:
    from wav.stats import mean_ci, paired_difference

    per_seed = {k: [float(np.nanmean([float(r[k]) for r in j["rows"]])) for j in jobs] for k in KEYS}
    out = {"seeds": [j["seed"] for j in jobs], "states_per_seed": [len(j["rows"]) for j in jobs], "per_seed": per_seed,
           "mean": {k: dict(zip(("mean", "lo", "hi"), mean_ci(v))) | {"min": min(v), "max": max(v)} for k, v in per_seed.items()}}
    out["paired"] = {
        "pick_minus_random": paired_difference(per_seed["pick_model_error"], per_seed["random_mean_model_error"]),
        "pick_minus_candidates": paired_difference(per_seed["pick_model_error"], per_seed["mean_model_error"]),
        "candidates_minus_random": paired_difference(per_seed["mean_model_error"], per_seed["random_mean_model_error"]),
        "spearman_reach_minus_model": paired_difference(per_seed["spearman_score_reach"], per_seed["spearman_score_model"]),
    }
    out["curves"] = {j["seed"]: j["curve"] for j in jobs}
    out["seconds"] = {j["seed"]: {"total": j["seconds"], **{f"fit_{k}": v for k, v in j["fit_seconds"].items()}, **{f"run_{k}": v for k, v in j["run_seconds"].items()}} for j in jobs}
    return out


def markdown(summary: dict, args: argparse.Namespace, command: str) -> str:
    from wav.experiments.robot_online import K, ONLINE_PRESETS, RobotOnlineExperiment
    from wav.runtime import cpu_description

    m, p = summary["mean"], summary["paired"]
    n, h = len(summary["seeds"]), RobotOnlineExperiment.horizon

    def cell(k, fmt="{:.3f}"):
        v = m[k]
        return f"{fmt.format(v['mean'])} [{fmt.format(v['lo'])}, {fmt.format(v['hi'])}] ({fmt.format(v['min'])} to {fmt.format(v['max'])})"

    def diff(name):
        d = p[name]
        return f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}], t p={d['p_ttest']:.3g}, Wilcoxon p={d['p_wilcoxon']:.3g}"

    lines = [
        f"# What WAV picks online on {args.task} (issue 13 item 6)", "",
        f"Machine: {cpu_description()}. Command: `{command}`.", "",
        f"{n} seeds, {summary['states_per_seed']} probed states (every state where WAV acts, {args.steps} env steps, refits every "
        f"{ONLINE_PRESETS[args.preset].update_every} steps as in `wav reproduce robot-online --preset {args.preset}`), K = {K} candidates "
        f"(generated {h}-step subgoal sequences -> inferred actions -> RSSM), {args.random} uniform {h}-step sequences per state. "
        "Units: standardised squared error (warm-up std), mean over features and steps, as the verification score. "
        "Per seed the mean over its states; mean [95% CI over seeds] (min to max).", "",
        "| quantity | mean [95% CI] (min to max over seeds) |", "|---|---|",
        f"| Spearman over the 16 candidates: score vs model error (the world model's true error under the inferred actions) | {cell('spearman_score_model')} |",
        f"| Spearman over the 16 candidates: score vs reach error (subgoal vs the states the inferred actions really reach) | {cell('spearman_score_reach')} |",
        f"| score of the pick (subgoal vs prediction) | {cell('pick_score')} |",
        f"| reach error of the pick | {cell('pick_reach_error')} |",
        f"| reach error, mean over the 16 candidates | {cell('mean_reach_error')} |",
        f"| model error of the pick (what its label teaches) | {cell('pick_model_error')} |",
        f"| model error, mean over the 16 candidates | {cell('mean_model_error')} |",
        f"| model error, largest of the 16 candidates | {cell('max_model_error')} |",
        f"| model error of a uniform 4-step sequence (mean over the {args.random}) | {cell('random_mean_model_error')} |",
        f"| share of states where the pick is the candidate with the largest model error (chance 1/16 = 0.063) | {cell('pick_is_model_argmax')} |",
        f"| gripper action of the pick's first step | {cell('pick_gripper', '{:+.2f}')} |",
        f"| motion of the pick (true states vs the start state, same units) | {cell('pick_motion')} |",
        f"| motion, mean over the 16 candidates | {cell('mean_motion')} |",
        f"| motion of a uniform 4-step sequence (mean over the {args.random}) | {cell('random_mean_motion')} |", "",
        "Paired over seeds:",
        f"- model error, pick − uniform sequences: {diff('pick_minus_random')}",
        f"- model error, pick − mean candidate: {diff('pick_minus_candidates')}",
        f"- model error, mean candidate − uniform sequences: {diff('candidates_minus_random')}",
        f"- Spearman with reach error − Spearman with model error: {diff('spearman_reach_minus_model')}", "",
        "The probed runs' 32-step eval error (steps: error), per seed:", "",
    ]
    lines += [f"- seed {s}: " + ", ".join(f"{t}: {e:.3f}" for t, e in c) for s, c in summary["curves"].items()]
    lines += ["", "Seconds per seed: " + "; ".join(f"seed {s}: " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()) for s, t in summary["seconds"].items()), ""]
    return "\n".join(lines)


def plot(summary: dict, path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per, m = summary["per_seed"], summary["mean"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    bars = [("uniform 4-step\nsequences", "random_mean_model_error"), ("WAV's candidates\n(mean of 16)", "mean_model_error"),
            ("WAV's pick", "pick_model_error"), ("best of WAV's 16\n(oracle pick)", "max_model_error")]
    for i, (label, k) in enumerate(bars):
        ax.bar(i, m[k]["mean"], color="#d62728" if k == "pick_model_error" else "#9aa7b8", yerr=[[m[k]["mean"] - m[k]["lo"]], [m[k]["hi"] - m[k]["mean"]]], capsize=4)
        ax.plot(np.full(len(per[k]), i) + np.linspace(-0.15, 0.15, len(per[k])), per[k], "k.", ms=4)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.set_ylabel("world model's true 4-step error\n(standardised, mean over states)")
    ax.set_title(f"{task}: the labels WAV could buy vs uniform actions", fontsize=9)
    sp = [("score vs\nmodel error", "spearman_score_model"), ("score vs\nreach error", "spearman_score_reach")]
    for i, (label, k) in enumerate(sp):
        bx.bar(i, m[k]["mean"], color="#1f77b4", alpha=0.6, yerr=[[m[k]["mean"] - m[k]["lo"]], [m[k]["hi"] - m[k]["mean"]]], capsize=4)
        bx.plot(np.full(len(per[k]), i) + np.linspace(-0.15, 0.15, len(per[k])), per[k], "k.", ms=4)
    bx.set_xticks(range(len(sp)), [s[0] for s in sp], fontsize=8)
    bx.set_ylim(0, 1)
    bx.set_ylabel("Spearman over the 16 candidates")
    bx.set_title("what WAV's score ranks by", fontsize=9)
    fig.suptitle(f"{len(per[bars[0][1]])} seeds, 95% CI over seeds, dots = seeds", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    from joblib import Parallel, delayed

    from wav.stats import parse_seeds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="PullCube")
    ap.add_argument("--data", required=True, help="pool file or its build folder")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--random", type=int, default=16, help="uniform 4-step sequences rolled per state")
    ap.add_argument("--preset", default="cpu", choices=["debug", "cpu", "paper"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", required=True, help="work folder (run dirs, probes-seed<k>.jsonl, summary.json)")
    ap.add_argument("--md", help="also write the table here (and the figure next to it, .png)")
    ap.add_argument("--report-only", action="store_true", help="redraw the table and figure from <out>/summary.json; run nothing")
    args = ap.parse_args(argv)
    command = "WAV_THREADS=1 .venv-robot/bin/python benchmarks/robot_online_picks.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only")
    if args.report_only:
        summary = json.loads((Path(args.out) / "summary.json").read_text())
        if args.md:
            Path(args.md).write_text(markdown(summary, args, command))
            plot(summary, Path(args.md).with_suffix(".png"), args.task)
        return summary
    from wav.experiments.robot_online import RobotOnlineExperiment, check

    seeds = parse_seeds(args.seeds)
    if args.random < 2:
        ap.error("--random must be >= 2")
    check(RobotOnlineExperiment(task=args.task, data=args.data, warmup=args.warmup, preset=args.preset, steps=args.steps, strategies=("wav",)))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = Parallel(n_jobs=min(args.jobs, len(seeds)))(delayed(seed_job)(args, s) for s in seeds)
    summary = summarise(jobs)
    summary["wall_seconds"] = time.perf_counter() - t0
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.md:
        Path(args.md).write_text(markdown(summary, args, command))
        plot(summary, Path(args.md).with_suffix(".png"), args.task)
    print(json.dumps({k: summary["mean"][k]["mean"] for k in KEYS} | {"wall_seconds": summary["wall_seconds"]}))
    return summary


if __name__ == "__main__":
    main()
