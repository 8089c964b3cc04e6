"""Refits that break an action type: how often, and which refit recipe stops it (issue 15, part 3).

Capture: runs (strategy, seed) runs of the acquisition protocol and of online Algorithm 1 exactly as
`wav reproduce acquisition` / `wav reproduce online` run them (generic world model, published files) and
records every world-model refit: the labelled set, the model it continues from and the model it ended
with. Replay: repeats each captured refit with other recipes (TrainConfig options) from the same model on
the same labels. A refit is *broken* when some action's test error after it is above 5x its error
before it (the model it continued from); the `> 1` column also asks that error to exceed 1 (the
published error of a wrong cell is ~1; below that a 5x jump is rounding-level). The test set is the
sweep's balanced policy test set.

    WAV_THREADS=1 python benchmarks/refit_stability.py --official $WAV_OFFICIAL_DATA --subgoal runs/subgoal-paper.pt \
        --test runs/acq/generic-overlap/data/test_overlap.npz --out benchmarks/results/refit_stability.md

Captured refits are cached under --work (capture_*.pt) and replayed rows appended to replays.jsonl, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

POOL = "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"
SEED = "random_selected_data.npz"
AFS = "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz"
RECIPES = {  # name -> changes to the loop's refit TrainConfig (epochs 30, lr 2e-3, batch 64, no split)
    "tail average 10": dict(average_last=10),
    "best epoch on the labels": dict(keep_best_train=True),
    "best epoch on 10% held out": dict(val_fraction=0.1, patience=1000),
    "soup of 3 refit seeds": dict(soup=3),
}
PROBES = {  # not recipes: what a broken refit depends on (the same TrainConfig as run)
    "another refit seed": dict(seed_offset=1000),
    "fresh model, same labels": dict(fresh=True),
}
"""`fresh` trains a new model with the seed-set fit's schedule (ModelsPreset.world_model_train: 100 epochs, lr 3e-3,
early stopping on 10%), as the sweep fits its round-0 model."""
AS_RUN = "as run"


def _ints(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def capture(args, protocol: str, strategies: list[str], seeds: list[int]) -> list[dict]:
    """Every world-model refit of the given runs: labels, config, schedule, seed, model before and after."""
    path = Path(args.work) / f"capture_{protocol}_{'+'.join(strategies)}_{args.acq_seeds if protocol == 'acquisition' else args.onl_seeds}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    import wav.domains.minigrid as minigrid
    from wav.experiments.acquisition import AcquisitionExperiment, _fit_job, _strategy_job, prepare_data, proposals_path
    from wav.experiments.online import OnlineExperiment, _seed_job

    work = Path(args.work) / protocol
    shutil.rmtree(work, ignore_errors=True)
    data = AcquisitionExperiment(out=str(work), seeds=tuple(seeds), strategies=tuple(strategies), models="generic", test_overlap=True,
                                 pool=os.path.join(args.official, POOL), seed_data=os.path.join(args.official, SEED),
                                 afs_data=os.path.join(args.official, AFS), subgoal=args.subgoal, test_data=args.test, jobs=1)
    if args.proposals and Path(args.proposals).exists():  # the sweep's proposal memo (checked against the generator before use)
        proposals_path(data).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.proposals, proposals_path(data))
    paths = prepare_data(data)
    calls, fit = [], minigrid.train_world_model
    where = {}

    def recording(labelled, cfg, train, seed, model=None):
        if model is None or cfg.members > 1:  # seed-set fits and ensemble refits are not captured
            return fit(labelled, cfg, train, seed, model)
        base = copy.deepcopy(model.state_dict())
        t0 = time.perf_counter()
        m, h = fit(labelled, cfg, train, seed, model)
        calls.append(dict(protocol=protocol, **where, index=sum(1 for c in calls if c["strategy"] == where["strategy"] and c["seed"] == where["seed"]),
                          labelled=labelled, cfg=cfg, train=train, refit_seed=seed, base=base, after=copy.deepcopy(m.state_dict()),
                          seconds=time.perf_counter() - t0))
        return m, h

    minigrid.train_world_model = recording
    try:
        for seed in seeds:
            if protocol == "acquisition":
                where.update(strategy="(seed set)", seed=seed)
                f = _fit_job(data, paths, seed, "world_model")
                for s in strategies:
                    where.update(strategy=s, seed=seed)
                    _strategy_job(data, paths, seed, s, {"world_model": f["model"]}, f["start"])
                    print(f"captured {protocol} {s} seed {seed}: {len(calls)} refits", flush=True)
            else:
                exp = OnlineExperiment(out=str(work), seeds=(seed,), strategies=(), models="generic", data=data, explore_test=0, jobs=1)
                for s in strategies:  # one strategy at a time, so each refit knows its run
                    where.update(strategy=s, seed=seed)
                    _seed_job(replace(exp, strategies=(s,)), paths, seed)
                    print(f"captured {protocol} {s} seed {seed}: {len(calls)} refits", flush=True)
    finally:
        minigrid.train_world_model = fit
    torch.save(calls, path)
    return calls


def key(c: dict) -> str:
    return f"{c['protocol']}/{c['strategy']}/{c['seed']}/{c['index']}"


def replay(args, calls: list[dict], test) -> None:
    from wav.domains.minigrid import test_metrics, train_world_model
    from wav.models.world_model import GridWorldModel

    out = Path(args.work) / "replays.jsonl"
    done = set()
    if out.exists():
        done = {(r["key"], r["recipe"]) for r in map(json.loads, out.read_text().splitlines())}

    def model_from(c, state):
        m = GridWorldModel(c["cfg"])
        m.load_state_dict(state)
        return m.eval()

    for i, c in enumerate(calls):
        todo = [r for r in [AS_RUN, *RECIPES, *PROBES] if (key(c), r) not in done]
        if not todo:
            continue
        base = test_metrics(model_from(c, c["base"]), test)
        rows = []
        for r in todo:
            if r == AS_RUN:
                m, secs = model_from(c, c["after"]), c["seconds"]
            elif r in RECIPES:
                t0 = time.perf_counter()
                m, _ = train_world_model(c["labelled"], c["cfg"], replace(c["train"], **RECIPES[r]), c["refit_seed"], model_from(c, c["base"]))
                secs = time.perf_counter() - t0
            else:
                probe = PROBES[r]
                t0 = time.perf_counter()
                if probe.get("fresh"):
                    from wav.config import ModelsPreset

                    m, _ = train_world_model(c["labelled"], c["cfg"], ModelsPreset().world_model_train, c["refit_seed"])
                else:
                    m, _ = train_world_model(c["labelled"], c["cfg"], c["train"], c["refit_seed"] + probe["seed_offset"], model_from(c, c["base"]))
                secs = time.perf_counter() - t0
            a = test_metrics(m, test)
            rows.append(dict(key=key(c), recipe=r, protocol=c["protocol"], strategy=c["strategy"], labels=len(c["labelled"]), seconds=secs,
                             before=base["per_action_error"], after=a["per_action_error"], error_before=base["pred_error"], error=a["pred_error"]))
        with open(out, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        print(f"replayed {i + 1}/{len(calls)} {key(c)}: " + ", ".join(f"{r['recipe']} {r['error']:.2f}" for r in rows), flush=True)


def broken(r: dict, floor: float = 0.0) -> bool:
    return any(r["after"][a] > 5 * r["before"][a] and r["after"][a] > floor for a in r["before"])


def report(args, n_calls: int, cmd: str) -> str:
    from wav.runtime import cpu_description

    rows = [json.loads(x) for x in (Path(args.work) / "replays.jsonl").read_text().splitlines()]
    keys = sorted({r["key"] for r in rows})
    by = {(r["key"], r["recipe"]): r for r in rows}
    recipes = [r for r in [AS_RUN, *RECIPES, *PROBES] if all((k, r) in by for k in keys)]
    lines = ["# Refits that break an action type (benchmarks/refit_stability.py)", "",
             f"Command: `{cmd}`  ",
             f"Machine: {cpu_description()}, shared with two other long jobs (times are contended); "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             f"{len(keys)} world-model refits (of {n_calls} captured), each replayed from the model it continued from on the same labels. "
             "Broken: some action's test error after the refit > 5x its error before (`> 1`: and above 1). "
             "Error: the test set's prediction error after the refit (mean over refits; paired difference to `as run` with its 95% t-interval).", ""]
    from scipy import stats

    for proto in ["all", *sorted({r["protocol"] for r in rows})]:
        ks = [k for k in keys if proto == "all" or k.startswith(proto + "/")]
        lines += [f"## {proto} ({len(ks)} refits)", "", "| recipe | broken (5x) | broken (5x, > 1) | mean error | − as run [95% CI] | worst error | s per refit |",
                  "|---|---|---|---|---|---|---|"]
        base = np.array([by[(k, AS_RUN)]["error"] for k in ks])
        for rec in recipes:
            rs = [by[(k, rec)] for k in ks]
            e = np.array([r["error"] for r in rs])
            d = e - base
            ci = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d)) if rec != AS_RUN and d.std() > 0 else (0.0, 0.0)
            b5, b1 = sum(map(broken, rs)), sum(broken(r, 1.0) for r in rs)
            lines.append(f"| {rec} | {b5} ({b5 / len(rs):.1%}) | {b1} ({b1 / len(rs):.1%}) | {e.mean():.3f} | {d.mean():+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] | "
                         f"{e.max():.2f} | {np.mean([r['seconds'] for r in rs]):.2f} |")
        lines.append("")
    lines += ["## Is a break the labels' or the end point's? (broken: 5x and > 1)", "",
              "| recipe | broken | also broken as run | broken as run, not here | broken here, not as run |", "|---|---|---|---|---|"]
    as_run = {k for k in keys if broken(by[(k, AS_RUN)], 1.0)}
    for rec in recipes[1:]:
        here = {k for k in keys if broken(by[(k, rec)], 1.0)}
        lines.append(f"| {rec} | {len(here)} | {len(here & as_run)} | {len(as_run - here)} | {len(here - as_run)} |")
    continued = [r for r in recipes if r != "fresh model, same labels"]
    always = [k for k in keys if all(broken(by[(k, r)], 1.0) for r in continued)]
    lines += ["", f"Broken under every continued fit ({', '.join(continued)}): {len(always)} of {len(keys)}"
              + (f" ({', '.join(always)})" if always else "") + ".", ""]
    lines += ["## Broken refits as run, and what each recipe makes of them", "",
              "| refit | labels | error before | " + " | ".join(recipes) + " |", "|---|---|---|" + "---|" * len(recipes)]
    for k in keys:
        r0 = by[(k, AS_RUN)]
        if any(broken(by[(k, rec)], 1.0) for rec in recipes):
            cells = []
            for rec in recipes:
                r = by[(k, rec)]
                jumps = [f"{a} {r['before'][a]:.2f}→{r['after'][a]:.1f}" for a in r["before"] if r["after"][a] > 5 * r["before"][a] and r["after"][a] > 1]
                cells.append(f"{r['error']:.2f}" + (f" ({', '.join(jumps)})" if jumps else ""))
            lines.append(f"| {k} | {r0['labels']} | {r0['error_before']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--subgoal", required=True, help="trained subgoal checkpoint")
    ap.add_argument("--test", required=True, help="the sweep's test set (<sweep out>/data/test_overlap.npz)")
    ap.add_argument("--proposals", default="runs/acq/generic-overlap/cache/proposals.npz", help="a sweep's generator proposal memo to reuse")
    ap.add_argument("--acq-strategies", default="random,uncertainty,progress,wav,oracle,oracle-capped")
    ap.add_argument("--acq-seeds", default="5-9")
    ap.add_argument("--onl-strategies", default="random,wav")
    ap.add_argument("--onl-seeds", default="0-2")
    ap.add_argument("--work", default="runs/bench-refit-stability")
    ap.add_argument("--out", default="benchmarks/results/refit_stability.md")
    args = ap.parse_args()

    from wav.data.io import load_transitions
    from wav.runtime import set_threads

    set_threads(int(os.environ.get("WAV_THREADS", "1")))
    Path(args.work).mkdir(parents=True, exist_ok=True)
    calls = []
    if args.acq_seeds:
        calls += capture(args, "acquisition", args.acq_strategies.split(","), _ints(args.acq_seeds))
    if args.onl_seeds:
        calls += capture(args, "online", args.onl_strategies.split(","), _ints(args.onl_seeds))
    replay(args, calls, load_transitions(args.test))
    cmd = (f"WAV_THREADS=1 python benchmarks/refit_stability.py --official $WAV_OFFICIAL_DATA --subgoal {args.subgoal} --test {args.test} "
           f"--acq-strategies {args.acq_strategies} --acq-seeds {args.acq_seeds} --onl-strategies {args.onl_strategies} "
           f"--onl-seeds {args.onl_seeds} --out {args.out}")
    text = report(args, len(calls), cmd)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
