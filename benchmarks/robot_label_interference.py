"""Why WAV's labels raise the robot world model's error on typical trajectories: a round replayed with probes (issue 13).

`benchmarks/robot_eval_split.py` found that after WAV's rounds the world model is worse than random's on the eval
trajectories inside the warm-up range (inliers), and on PullCube worse than the warm-up-only model. This script
replays round 1 of a finished `wav reproduce robot-acquisition` folder for each seed, exactly as the run did it: it
refits the seed's warm-up world model and sparse inverse model, scores the explore pool with `random` and `wav` from
their own generator streams, takes their round-1 batches, and refits the world model on the warm-up set plus a batch
with the round's schedule (`refit`, seed + 1, continuing from the warm-up model). The replayed `random` and `wav`
refits must give the recorded round-1 error to the last digit; the script stops otherwise. Three more conditions refit
the same way on other label sets: none (the warm-up set alone, the same schedule), WAV's batch without its outliers
(trajectories with a feature more than 3 warm-up stds outside the warm-up range), and as many trajectories drawn
uniformly from the pool's inliers (the control for the smaller batch that leaves).

With `--round 2` the script first replays WAV's whole run up to round 2 (its round-1 scores, picks and refits of the
world model and the sparse inverse model, each checked against the record) and starts every condition from WAV's
world model and labels there: `wav` is its own round-2 batch (checked against the recorded final error), `random` a
uniform draw of the same size from the pool WAV left, `no labels` a refit on WAV's labels so far. The probes' "warm-up"
windows are then all windows labelled before the round; the open-loop probe stays on the warm-up trajectories.

Every `--every` epochs of each refit (and before it) the probe records, without touching the fit's generator:
- the eval error on inlier and outlier eval trajectories (as `robot_eval_split.py`) and the open-loop error on the
  warm-up trajectories themselves (the model's own training data), both also per layout group, with how far the
  rollouts move the object features from each window's first frame (predicted against true);
- the deterministic training loss per window on the warm-up windows and on the acquired inlier and outlier windows;
- the gradient of that loss on the warm-up windows and on the acquired windows: their norms and their cosine
  (below 0: a step that fits the acquired trajectories undoes fitting the warm-up ones).
It also records the global gradient norm of every training update (the fit clips at the model's `clip_grad`).

With `--rssm deter=512,hidden=512,...` (round 1) the same label sets, still picked by the run's own models, are refit
on a world model of those sizes, trained anew on the warm-up set with the preset's schedule: does a larger world model
take WAV's labels without the cost on typical trajectories?

With `--refit-epochs 200 --refit-lr 1e-4` every label set is refit with that schedule instead of the preset's (`cpu`: 60
epochs at 3e-4; the paper's: 200 epochs per round at 1e-4), from the same model and with the same picks: is the cost an
artefact of the shortened refit? Such refits have no record to check against either.

    python benchmarks/robot_label_interference.py --folder runs/robot-acq-PullCube-xeon --seeds 0-4 --jobs 2 \
        --out benchmarks/results/robot_label_interference.md --figure benchmarks/results/robot_label_interference_PullCube.png
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robot_pool_outliers import append_section, out_of_range  # noqa: E402
from rssm import parse_spec  # noqa: E402

from wav.experiments.robot_acquisition import WORLD_MODEL, RobotAcquisitionExperiment, load_data, load_world_model  # noqa: E402
from wav.stats import mean_ci, paired_difference, parse_seeds  # noqa: E402

SIZES = ("deter", "hidden", "stoch", "classes", "units", "layers", "cont_layers")
"""the RSSM sizes `--rssm` may replace"""
CONDITIONS = ("no labels", "random", "wav", "wav without its outliers", "uniform inliers, as many")


def recorded_round(folder: Path, strategy: str, seed: int, r: int) -> float:
    rows = [json.loads(line) for line in (folder / "runs" / strategy / f"seed{seed}" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return next(row["pred_error"] for row in rows if row["round"] == r)


@contextlib.contextmanager
def grad_norms(out: list):
    """Record the global gradient norm `wav.train.fit` computes when it clips (it calls torch.nn.utils.clip_grad_norm_)."""
    orig = torch.nn.utils.clip_grad_norm_

    def recording(params, max_norm, *a, **k):
        norm = orig(params, max_norm, *a, **k)
        out.append(float(norm))
        return norm

    torch.nn.utils.clip_grad_norm_ = recording
    try:
        yield
    finally:
        torch.nn.utils.clip_grad_norm_ = orig


def loss_and_grad(rssm, trajectories, window: int) -> tuple[float, torch.Tensor | None]:
    """Deterministic (mode) training loss, mean per window, over every window tiling `trajectories`, and its gradient
    as one flat vector; (nan, None) without trajectories."""
    from wav.data.sequences import Windows

    if not trajectories or sum(len(s) for s, _ in trajectories) < window:
        return float("nan"), None
    w = Windows(list(trajectories), window)
    params = [p for p in rssm.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    total = 0.0
    for (batch,) in w.chunks(len(w)):
        loss = rssm.training_loss(batch) * (len(batch.states) / len(w))
        loss.backward()
        total += float(loss.detach())
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]).clone()
    for p in params:
        p.grad = None
    return total, grad


def rollout_parts(model, part) -> dict:
    """Open-loop error of `part`'s windows (the evaluation's rollouts and error, `step_errors`), all features and per
    layout group, and how far the object features move from the window's first frame, predicted and true
    (standardised squared displacement, mean over object features and valid steps). `sum` and `steps` let parts
    recombine as the evaluation weights them."""
    from wav.domains.manipulation import flat_rows

    b = flat_rows(part)
    w, pred = model.rollouts(b.states, b.actions)
    err, mask = model._errors(w, pred)  # the evaluation's own error, without a second rollout for the displacement
    target, first, p = torch.nan_to_num(w.states[:, 1:]), w.states[:, :1], pred.mean(-2)
    m = mask.double()

    def masked(x):  # (B, W-1) -> mean over valid steps
        return float((x.double() * m).sum() / m.sum())

    out = {"sum": float((err.mean(-1).double() * m).sum()), "steps": float(m.sum())}
    out["all"] = out["sum"] / out["steps"]
    for g, gm in part.group_masks().items():
        out[g] = masked(err[..., torch.from_numpy(gm)].mean(-1))
    obj = torch.from_numpy(part.group_masks()["object"])
    out["object_move_pred"] = masked((((p - first) / model.scale)[..., obj] ** 2).mean(-1))
    out["object_move_true"] = masked((((target - first) / model.scale)[..., obj] ** 2).mean(-1))
    return out


def probe(model, domain, data, outlier_eval, groups: dict) -> dict:
    """One probe of a world model during a refit (see the module docstring)."""
    with torch.no_grad():
        warm = rollout_parts(model, data.seed_set)
        inl = rollout_parts(model, domain.subset(data.test, np.flatnonzero(~outlier_eval)))
        outl = rollout_parts(model, domain.subset(data.test, np.flatnonzero(outlier_eval))) if outlier_eval.any() else {"sum": 0.0, "steps": 0.0}
    # the eval error over all trajectories, weighted by valid steps as `robot_eval_split.split_error` recombines it
    e = {"all": (inl["sum"] + outl["sum"]) / (inl["steps"] + outl["steps"]), "inliers": inl["all"], "outliers": outl.get("all", float("nan"))}
    row = {"eval_all": e["all"], "eval_inliers": e["inliers"], "eval_outliers": e["outliers"], "warmup_error": warm["all"],
           **{f"warmup_{k}": v for k, v in warm.items() if k not in ("all", "sum", "steps")},
           **{f"inliers_{k}": v for k, v in inl.items() if k not in ("all", "sum", "steps")}}
    grads = {}
    for name, trajs in groups.items():
        row[f"loss_{name}"], grads[name] = loss_and_grad(model.rssm, trajs, domain.window)
    gw, ga = grads.get("warm-up"), grads.get("acquired")
    row["grad_warmup"] = float(gw.norm()) if gw is not None else float("nan")
    row["grad_acquired"] = float(ga.norm()) if ga is not None else float("nan")
    row["grad_cosine"] = float(torch.nn.functional.cosine_similarity(gw, ga, 0)) if gw is not None and ga is not None else float("nan")
    model.rssm.train()  # the fit's own mode: the next epoch sets it again anyway
    return row


def wide_preset(spec: str, base: str) -> str:
    """Register the RSSM preset `base` with `spec`'s sizes replaced ('deter=512,hidden=512,...') under a new name; the name."""
    from wav.models.rssm import RSSM_PRESETS

    name = f"{base}:{spec}"
    RSSM_PRESETS[name] = replace(RSSM_PRESETS[base], **parse_spec(name)[1])
    return name


def replay_seed(folder: str, seed: int, every: int, round_: int = 1, rssm: str | None = None, refit: dict | None = None) -> dict:
    """Every condition's refit of one seed at round `round_`, with its probes; checks the replayed runs against their records.

    Round 1 starts every condition from the warm-up world model, and `random` is random's own run. A later round first
    replays WAV's run up to it (scores, picks and refits of the world model and the sparse inverse model, as `run_pool`)
    and starts every condition from WAV's world model and labels there; `random` is then a uniform draw from the pool
    WAV has left (its own stream), and `no labels` refits on WAV's labels so far. `refit` ({"epochs": .., "lr": ..}) replaces the
    preset's schedule in every condition's refit (not in the replay up to the round)."""
    from wav.acquire import make_strategy, select
    from wav.data.sequences import Windows
    from wav.domains.manipulation import RecordedFuture
    from wav.loop import SharedModels, _Run, train_shared_part
    from wav.runtime import set_threads
    from wav.train import fit

    set_threads(1)
    folder = Path(folder)
    res = json.loads((folder / "results.json").read_text())
    _, meta = load_world_model(next((folder / "runs").glob(f"*/seed*/{WORLD_MODEL}")))
    exp = RobotAcquisitionExperiment(task=res["task"], data=meta["data"], warmup=int(res["warmup"]), preset=res["preset"])
    data = load_data(exp)
    domain, rc, pc = exp.scaled_domain(data), exp.round, exp.protocol
    if not 1 <= round_ <= pc.rounds:
        raise SystemExit(f"error: --round must lie in [1, {pc.rounds}], got {round_}")
    t0 = time.perf_counter()
    wm0 = train_shared_part(domain, data.seed_set, rc, seed, "world_model")
    r0 = domain.evaluate(wm0, data)["pred_error"]
    if abs(r0 - recorded_round(folder, "random", seed, 0)) > 1e-6 * max(1.0, abs(r0)):
        raise SystemExit(f"error: seed {seed}: the refit warm-up world model's error {r0:.6f} differs from the recorded round 0")
    inverse = train_shared_part(domain, data.seed_set, rc, seed, "inverse")
    cand = domain.batch(data.pool)
    picks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("random", "wav") if round_ == 1 else ("wav",):
            s = make_strategy(name, dict(rc.random_mix).get(name))  # as run_pool's _start
            shared = SharedModels(RecordedFuture() if s.subgoal else None, inverse if s.inverse == "inverse" else None, None, wm0, None)
            run = _Run(domain, s, seed, shared, rc, data.seed_set, Path(tmp), [seed, sum(map(ord, name))])
            available = np.ones(len(cand), bool)
            for r in range(1, round_ + 1):
                idx = np.flatnonzero(available)
                scores = s.score(cand.subset(torch.from_numpy(idx)), run.models, rc.scoring, run.gen).double().numpy()
                chosen = idx[select(scores, pc.budget, s.random_mix, run.rng)]
                if r == round_:
                    picks[name] = chosen
                    break
                available[chosen] = False
                run.labelled = domain.concat([run.labelled, domain.subset(data.pool, chosen)])
                run.refit(seed + r)  # as run_pool before its last round
                got, rec = domain.evaluate(run.models.world_model, data)["pred_error"], recorded_round(folder, name, seed, r)
                if abs(got - rec) > 1e-6 * max(1.0, abs(rec)):
                    raise SystemExit(f"error: seed {seed}: replayed {name} round {r} gives {got:.6f}, the record {rec:.6f}")
    replayed = set(picks)  # the strategies whose own run this round repeats: random and wav in round 1, wav later
    if round_ > 1:
        base_model, base_labels = run.models.world_model, run.labelled
        left = np.flatnonzero(available)
        picks["random"] = np.sort(np.random.default_rng([seed, round_, 7]).choice(left, min(pc.budget, len(left)), replace=False))
    else:
        base_model, base_labels = wm0, data.seed_set
    out = {"seed": seed, "round": round_}
    schedule = rc.refit
    if refit:  # nothing recorded to check such refits against
        schedule = replace(rc.refit, **refit)
        replayed = set()
        out["refit"] = {"epochs": schedule.epochs, "lr": schedule.lr, "run_epochs": rc.refit.epochs, "run_lr": rc.refit.lr}
    if rssm:  # nothing recorded to check the refits against at these sizes
        from wav.models.rssm import count_parameters

        base_model = train_shared_part(replace(domain, rssm_preset=wide_preset(rssm, domain.rssm_preset)), data.seed_set, rc, seed, "world_model")
        replayed = set()
        out.update(rssm=rssm, params=count_parameters(base_model.rssm), warmup_error=domain.evaluate(base_model, data)["pred_error"],
                   run_params=count_parameters(wm0.rssm), run_warmup_error=r0)
        print(f"seed {seed}: warm-up world model at {rssm}: error {out['warmup_error']:.3f} (the run's {r0:.3f}) "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    explore_out = out_of_range(data.seed_set, data.pool).any(1)
    outlier_eval = out_of_range(data.seed_set, data.test).any(1)
    wav_inliers = picks["wav"][~explore_out[picks["wav"]]]
    inliers_left = np.flatnonzero(available & ~explore_out)  # round 1: the whole pool's (nothing is taken before it)
    label_sets = {"no labels": np.empty(0, np.int64), "random": picks["random"], "wav": picks["wav"], "wav without its outliers": wav_inliers,
                  "uniform inliers, as many": np.sort(np.random.default_rng([seed, round_, 8]).choice(inliers_left, len(wav_inliers), replace=False))}
    out.update(picks={k: v.tolist() for k, v in label_sets.items()},
               picked_outliers={k: int(explore_out[v].sum()) for k, v in label_sets.items()}, conditions={})
    if round_ > 1:
        out["labelled_before"] = len(base_labels)
    warm = list(base_labels.trajectories)
    for cond, chosen in label_sets.items():
        acquired = [data.pool.trajectories[int(i)] for i in chosen]
        groups = {"warm-up": warm, "acquired": acquired,
                  "acquired inliers": [t for t, i in zip(acquired, chosen) if not explore_out[i]],
                  "acquired outliers": [t for t, i in zip(acquired, chosen) if explore_out[i]]}
        labelled = domain.concat([base_labels, domain.subset(data.pool, chosen)])
        model = copy.deepcopy(base_model)
        probes = [{"epoch": 0, **probe(model, domain, data, outlier_eval, groups)}]

        def log(epoch, hist, model=model, groups=groups, probes=probes):
            if (epoch + 1) % every == 0:
                probes.append({"epoch": epoch + 1, **probe(model, domain, data, outlier_eval, groups)})

        norms: list[float] = []
        t = time.perf_counter()
        with grad_norms(norms):
            fit(model.rssm, Windows(list(labelled.trajectories), domain.window), schedule, seed + round_, log=log)
        model.eval()
        final = domain.evaluate(model, data)["pred_error"]
        if cond in replayed:
            rec = recorded_round(folder, cond, seed, round_)
            if abs(final - rec) > 1e-6 * max(1.0, abs(rec)):
                raise SystemExit(f"error: seed {seed}: replayed {cond} round {round_} gives {final:.6f}, the record {rec:.6f}")
        if probes[-1]["epoch"] != schedule.epochs:
            probes.append({"epoch": schedule.epochs, **probe(model, domain, data, outlier_eval, groups)})
        clip = model.rssm.clip_grad
        out["conditions"][cond] = {"final": final, "probes": probes, "updates": len(norms), "grad_norm_median": float(np.median(norms)),
                                   "grad_norm_p90": float(np.percentile(norms, 90)), "clipped": float(np.mean(np.asarray(norms) > clip)),
                                   "seconds": time.perf_counter() - t}
        print(f"seed {seed} {cond}: final {final:.3f}, eval inliers {probes[0]['eval_inliers']:.3f} -> {probes[-1]['eval_inliers']:.3f}, "
              f"warm-up {probes[0]['warmup_error']:.3f} -> {probes[-1]['warmup_error']:.3f}, grad cosine "
              f"{finite_mean([p['grad_cosine'] for p in probes]):+.2f}, clipped {out['conditions'][cond]['clipped']:.2f} "
              f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    out["seconds"] = time.perf_counter() - t0
    return out


def finite_mean(values) -> float:
    """Mean of the finite values, nan without any (a label set with no acquired windows has no gradient cosine)."""
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def fmt(values, digits=3) -> str:
    m, lo, hi = mean_ci(values)
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def report(folder: str, seeds: list[int], results: list[dict], every: int, out: str, command: str, note: str = "") -> None:
    res = {r["seed"]: r for r in results}
    first = results[0]["conditions"]
    conds = [c for c in CONDITIONS if c in first]  # files written before the size-matched condition lack it
    rnd = results[0].get("round", 1)
    check = ("the replayed random and wav refits repeat their recorded round-1 errors in every seed" if rnd == 1 else
             f"WAV's replayed run repeats its recorded errors of rounds 1-{rnd} in every seed; every condition starts from its world model and "
             f"{results[0]['labelled_before']} labels after round {rnd - 1}, `random` is a uniform draw from the pool it left, `no labels` refits on its labels so far")
    wide = results[0].get("rssm")
    if wide:
        check = ("the picks are the run's own, from its warm-up models, which repeat their recorded round-0 error in every seed; every label "
                 f"set is refit on a world model of sizes `{wide}` ({results[0]['params']:,} parameters, the run's {results[0]['run_params']:,}), "
                 "trained anew on the warm-up set with the preset's schedule, so no refit has a record to check against. Its warm-up (round 0) "
                 f"error: {fmt([r['warmup_error'] for r in results])}, the run's model {fmt([r['run_warmup_error'] for r in results])}")
    sched = results[0].get("refit")
    if sched:
        check = (f"{check}; " if wide or rnd > 1 else "the picks are the run's own, from its warm-up models, which repeat their recorded round-0 error in every "
                 "seed; ") + (f"every label set is refit for {sched['epochs']} epochs at lr {sched['lr']:g} instead of the run's {sched['run_epochs']} at "
                              f"{sched['run_lr']:g}, so no refit has a record to check against")
    title = ", a larger world model" if wide else ""
    if sched:
        title += f", refit {sched['epochs']} epochs at lr {sched['lr']:g}"
    lines = [f"## {json.loads((Path(folder) / 'results.json').read_text())['task']}, round {rnd}{title}: `{folder}`", "",
             f"Command: `{command}`{note}  ",
             f"Machine: {platform.processor() or platform.machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; seeds {seeds[0]}-{seeds[-1]}; {check}.  ",
             f"Round {rnd} of seed {seeds[0]}: {min(c['updates'] for c in first.values())}-{max(c['updates'] for c in first.values())} updates per refit; "
             f"seconds per seed {min(r['seconds'] for r in results):.0f}-{max(r['seconds'] for r in results):.0f} (one core each).", "",
             "Outliers in each batch (of the explore pool's, per seed): "
             + "; ".join(f"{c} {', '.join(str(res[s]['picked_outliers'][c]) for s in seeds)} of {', '.join(str(len(res[s]['picks'][c])) for s in seeds)}"
                         for c in conds[1:]) + ".", "",
             "After the refit (mean over seeds [95% CI]); differences are paired over seeds (t-test p):", "",
             "| labels | eval, all | eval inliers | eval outliers | warm-up trajectories | inliers − no labels | warm-up − no labels |"
             " inliers − random | grad cosine warm-up vs acquired (mean over probes) | updates clipped | median grad norm |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in conds:
        last = {s: res[s]["conditions"][c]["probes"][-1] for s in seeds}
        cells = [fmt([last[s][k] for s in seeds]) for k in ("eval_all", "eval_inliers", "eval_outliers", "warmup_error")]
        for base, k in (("no labels", "eval_inliers"), ("no labels", "warmup_error"), ("random", "eval_inliers")):
            if c == base:
                cells.append("")
                continue
            d = paired_difference([last[s][k] for s in seeds], [res[s]["conditions"][base]["probes"][-1][k] for s in seeds])
            cells.append(f"{d['mean']:+.3f} (p={d['p_ttest']:.2g})")
        cos = [finite_mean([p["grad_cosine"] for p in res[s]["conditions"][c]["probes"]]) for s in seeds]
        cells.append(fmt(cos, 2) if np.isfinite(cos).all() else "—")
        cells.append(f"{np.mean([res[s]['conditions'][c]['clipped'] for s in seeds]):.2f}")
        cells.append(f"{np.mean([res[s]['conditions'][c]['grad_norm_median'] for s in seeds]):.1f}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    groups = [k.removeprefix("inliers_") for k in results[0]["conditions"]["wav"]["probes"][0] if k.startswith("inliers_") and "move" not in k]
    lines += ["", "Where the error is after the refit, by layout group, on the eval inliers and on the warm-up trajectories, and how far the "
              "rollouts move the object features from each window's first frame, predicted against true (standardised squared "
              "displacement; mean over seeds [95% CI]; before the refit in the first row):", "",
              "| labels | " + " | ".join(f"eval inliers: {g}" for g in groups) + " | " + " | ".join(f"warm-up: {g}" for g in groups)
              + " | object moves, eval inliers: predicted / true | warm-up: predicted / true |",
              "|---|" + "---|" * (2 * len(groups) + 2)]
    rows = [("before the refit", 0)] + [(c, -1) for c in conds]
    for c, j in rows:
        ps = [res[s]["conditions"]["wav" if j == 0 else c]["probes"][j] for s in seeds]
        cells = [fmt([p[f"{part}_{g}"] for p in ps]) for part in ("inliers", "warmup") for g in groups]
        for part in ("inliers", "warmup"):
            cells.append(f"{fmt([p[f'{part}_object_move_pred'] for p in ps])} / {fmt([p[f'{part}_object_move_true'] for p in ps])}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", f"Over the refit (probes every {every} epochs; mean over seeds): eval inlier error / warm-up trajectories' error / "
              "per-window loss on warm-up, acquired inlier and acquired outlier windows / gradient cosine warm-up vs acquired:", "",
              "| labels | " + " | ".join(f"epoch {p['epoch']}" for p in first["wav"]["probes"]) + " |",
              "|---|" + "---|" * len(first["wav"]["probes"])]
    for c in conds:
        n = len(res[seeds[0]]["conditions"][c]["probes"])
        cells = []
        for j in range(n):
            ps = [res[s]["conditions"][c]["probes"][j] for s in seeds]

            def mean(k):
                v = [p[k] for p in ps if np.isfinite(p[k])]
                return f"{np.mean(v):.2f}" if v else "—"
            cells.append(f"{mean('eval_inliers')} / {mean('warmup_error')} / {mean('loss_warm-up')}, {mean('loss_acquired inliers')}, "
                         f"{mean('loss_acquired outliers')} / {mean('grad_cosine')}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    append_section(out, "Why WAV's labels raise the error on typical trajectories: a round replayed with probes", "robot_label_interference.py", lines)


def figure(task: str, results: list[dict], path: str) -> None:
    """Over the refit, mean over seeds: the eval inliers' error and the object displacement the rollouts predict on them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    rnd = results[0].get("round", 1)
    for c in [c for c in CONDITIONS if c in results[0]["conditions"]]:
        probes = [r["conditions"][c]["probes"] for r in results]
        epochs = [p["epoch"] for p in probes[0]]
        for ax, key in zip(axes, ("eval_inliers", "inliers_object", "inliers_object_move_pred")):
            ax.plot(epochs, [np.mean([ps[j][key] for ps in probes]) for j in range(len(epochs))], marker="o", ms=3, label=c)
    true = np.mean([r["conditions"]["wav"]["probes"][0]["inliers_object_move_true"] for r in results])
    axes[2].axhline(true, color="k", ls="--", lw=1, label="true object displacement")
    for ax, title in zip(axes, ("eval inliers: open-loop error", "eval inliers: object features' error", "eval inliers: predicted object displacement")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"refit epoch (round {rnd})")
    axes[0].set_ylabel(f"standardised squared error, mean of {len(results)} seeds")
    axes[2].legend(fontsize=8)
    start = "the warm-up world model" if rnd == 1 else f"WAV's world model after round {rnd - 1}"
    if results[0].get("rssm"):
        start += f" of sizes {results[0]['rssm']}"
    if results[0].get("refit"):
        start += f", refit {results[0]['refit']['epochs']} epochs at lr {results[0]['refit']['lr']:g}"
    fig.suptitle(f"{task}: round {rnd} replayed from {start} with each label set", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folder", required=True, help="a finished `wav reproduce robot-acquisition --out` folder with random and wav runs")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--every", type=int, default=10, help="epochs between probes")
    ap.add_argument("--round", type=int, default=1, help="the round to replay (2: from WAV's run after round 1)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", required=True, help="markdown file; an existing one gets this folder's section appended")
    ap.add_argument("--json", help="also write every probe here")
    ap.add_argument("--figure", help="also draw the probes over the refit here (png)")
    ap.add_argument("--rssm", help="refit every label set on a world model of these sizes instead of the run's, e.g. "
                    "deter=512,hidden=512,stoch=32,classes=32,units=512,layers=3 (round 1; the picks stay the run's)")
    ap.add_argument("--refit-epochs", type=int, help="refit every label set for this many epochs instead of the preset's")
    ap.add_argument("--refit-lr", type=float, help="... at this learning rate instead of the preset's")
    ap.add_argument("--from-json", help="write the report from a --json file of an earlier run of this folder instead of replaying")
    args = ap.parse_args()
    folder = Path(args.folder)
    if not (folder / "results.json").is_file():
        sys.exit(f"error: {folder}/results.json: no such file (not a finished robot-acquisition folder)")
    seeds = parse_seeds(args.seeds)
    for s in ("random", "wav"):
        for k in seeds:
            if not (folder / "runs" / s / f"seed{k}" / "done").is_file():
                sys.exit(f"error: {folder}/runs/{s}/seed{k}: run not finished (the replay checks itself against it)")
    if args.every < 1:
        sys.exit(f"error: --every must be >= 1, got {args.every}")
    rounds = json.loads((folder / "runs" / "wav" / f"seed{seeds[0]}" / "config.json").read_text())["pool"]["rounds"]
    if not 1 <= args.round <= rounds:
        sys.exit(f"error: --round must lie in [1, {rounds}] (the folder's runs have {rounds} rounds), got {args.round}")
    if args.rssm:
        try:
            bad = [k for k, v in parse_spec(f"cpu:{args.rssm}")[1].items() if k not in SIZES or v < 1]
        except ValueError:
            bad = [args.rssm]
        if bad or args.round != 1:
            sys.exit(f"error: --rssm takes positive sizes k=v,... of {', '.join(SIZES)} with --round 1, got {args.rssm!r} with --round {args.round}")
    refit = {k: v for k, v in (("epochs", args.refit_epochs), ("lr", args.refit_lr)) if v is not None} or None
    if (args.refit_epochs is not None and args.refit_epochs < 1) or (args.refit_lr is not None and not 0 < args.refit_lr < 1):
        sys.exit(f"error: --refit-epochs must be >= 1 and --refit-lr in (0, 1), got {args.refit_epochs} and {args.refit_lr}")
    if args.from_json:
        results = [r for r in json.loads(Path(args.from_json).read_text()) if r["seed"] in seeds]
        if sorted(r["seed"] for r in results) != sorted(seeds):
            sys.exit(f"error: {args.from_json}: holds seeds {sorted(r['seed'] for r in results)}, not {seeds}")
        if any(r.get("round", 1) != args.round for r in results):
            sys.exit(f"error: {args.from_json}: replays round {results[0].get('round', 1)}, not --round {args.round}")
        if any(r.get("rssm") != args.rssm for r in results):
            sys.exit(f"error: {args.from_json}: refits at --rssm {results[0].get('rssm')!r}, not {args.rssm!r}")
        got = [{k: r["refit"][k] for k in refit} if refit and "refit" in r else None for r in results]
        if any(g != refit for g in got) or (not refit and any("refit" in r for r in results)):
            sys.exit(f"error: {args.from_json}: refit schedule {results[0].get('refit')}, not --refit-epochs/--refit-lr {refit}")
        argv = [("--json" if a == "--from-json" else a) for a in sys.argv[1:]]  # the replay that wrote the file
        report(args.folder, seeds, results, args.every, args.out, "python " + " ".join([sys.argv[0].split("/wav/")[-1]] + argv),
               " (this section: the same with `--from-json` for `--json`, which reports without replaying)")
        if args.figure:
            figure(json.loads((folder / "results.json").read_text())["task"], results, args.figure)
        return
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=args.jobs)(delayed(replay_seed)(str(folder), k, args.every, args.round, args.rssm, refit) for k in seeds)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    report(args.folder, seeds, results, args.every, args.out, "python " + " ".join([sys.argv[0].split("/wav/")[-1]] + sys.argv[1:]))
    if args.figure:
        figure(json.loads((folder / "results.json").read_text())["task"], results, args.figure)


if __name__ == "__main__":
    main()
