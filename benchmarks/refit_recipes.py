"""Refit recipes against broken action types, compared on a DEVELOPMENT set (issue 15, part 3).

Simulates the pool protocol's refits outside the acquisition loop, so that many refits are cheap: per seed,
the `generic` world model is fit on the 200 published seed transitions (from the 3-epoch video pretraining
with `--pretrain recorded`, or from scratch), then refit `--rounds` times on all labels after adding a batch
of `--budget` pool transitions, chosen either uniformly at random or by the true error of the current model
(the oracle's batch: the most skewed batch the protocol produces). Every recipe runs its own chain from the
same seed-set model. Recipes: `as run` (the loop's refit), or parts joined by `+`: `anchor=X` (TrainConfig.anchor,
L2-SP towards the model the refit continues from), `distill=X` (TrainConfig.distill: KL to the model the refit
continues from at the labelled states under other actions), `soup=N` (TrainConfig.soup), `balanced` (TrainConfig.
balance_actions: every action an equal share of each epoch) and `medoid=N` (RoundConfig.refit_medoid: N fits,
keep the one whose predictions on 512 pool states under every action agree most with the others'), with
`branch=E`: the medoid's fits share the refit's first epochs and differ only in its last E (cheaper; emulated
here only: it matched the medoid on this set but not on the published-level sweep, README part 3).
A refit is *broken* when some action's error on the development policy set
(make-testset seed 31,000, 300 per action; not the acquisition test set) rises above 5x its value before the
refit and above 1, the definition of benchmarks/refit_breaks.py.

    WAV_THREADS=1 python benchmarks/refit_recipes.py --official $WAV_OFFICIAL_DATA --pretrain none \
        --recipes "as run,anchor=0.001,anchor=0.01,anchor=0.1,anchor=1,soup=3,medoid=3" --seeds 0-19 \
        --out benchmarks/results/refit_recipes_none.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

VIDEO = "MiniGrid-Empty-Interact-6x6-o3-v0_video_pretraing.npz"
POOL = "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"
SEED = "random_selected_data.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--pretrain", default="recorded", choices=["none", "recorded"], help="start from the video pretraining (3 epochs) or from scratch")
    ap.add_argument("--recipes", default="as run,soup=3,medoid=3,balanced,balanced+medoid=3",
                    help="comma-separated: as run, or parts anchor=X, distill=X, soup=N, balanced, medoid=N joined by +")
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--choosers", default="random,oracle")
    ap.add_argument("--work", default="runs/bench-refit-recipes")
    ap.add_argument("--out", default="benchmarks/results/refit_recipes.md")
    args = ap.parse_args()
    recipes = [r.strip() for r in args.recipes.split(",")]
    choosers = args.choosers.split(",")
    try:
        parsed = {r: recipe(r) for r in recipes}
    except ValueError as e:
        raise SystemExit(f"refit_recipes: --recipes: {e}") from None
    if not set(choosers) <= {"random", "oracle"} or args.rounds < 1 or args.budget < 1:
        raise SystemExit("refit_recipes: choosers must be random|oracle, rounds and budget >= 1")

    from wav.config import ROUND_PRESETS, model_preset
    from wav.data.io import load_transitions
    from wav.domains.minigrid import SPACE, MiniGridDomain, batch, pretrain_world_model, test_metrics, train_world_model
    from wav.loop import medoid_fit, pool_oracle, probe_rows
    from wav.experiments.common import development_set
    from wav.runtime import cpu_description, set_threads
    from wav.stats import parse_seeds

    set_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    seed_set = load_transitions(os.path.join(args.official, SEED))
    pool = load_transitions(os.path.join(args.official, POOL))
    pool_batch, domain = batch(pool), MiniGridDomain(models="generic")
    dev = development_set(work)
    p = model_preset("generic")
    refit = ROUND_PRESETS["paper"].refit
    pre = None
    if args.pretrain == "recorded":
        pre, _ = pretrain_world_model(load_transitions(os.path.join(args.official, VIDEO)), p.world_model,
                                      replace(p.world_model_pretrain, epochs=3), "recorded")
    log = work / f"refits-{args.pretrain}.jsonl"
    done = {(r["recipe"], r["chooser"], r["seed"], r["round"]) for r in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    t0 = time.perf_counter()
    for seed in parse_seeds(args.seeds):
        base = None
        for chooser in choosers:
            for name in recipes:
                changes, medoid, branch = parsed[name]
                if all((name, chooser, seed, r) in done for r in range(1, args.rounds + 1)):
                    continue
                if base is None:
                    base, _ = train_world_model(seed_set, p.world_model, p.world_model_train, seed, copy.deepcopy(pre) if pre is not None else None)
                    before = test_metrics(base, dev)
                model, prev, rng = copy.deepcopy(base), before, np.random.default_rng(seed)
                labelled, left = seed_set, np.ones(len(pool), bool)
                for r in range(1, args.rounds + 1):
                    cand = np.flatnonzero(left)
                    if chooser == "random":
                        pick = rng.choice(cand, args.budget, replace=False)
                    else:
                        err = pool_oracle(domain, model, pool)[cand]
                        pick = cand[np.argsort(-err, kind="stable")[: args.budget]]
                    left[pick] = False
                    labelled = type(seed_set).concat([labelled, pool.subset(pick)])
                    t = time.perf_counter()
                    start, train = model, replace(refit, **changes)
                    if branch:  # the shared first epochs, then each fit of the medoid runs the last `branch`
                        start = train_world_model(labelled, p.world_model, replace(train, epochs=train.epochs - branch), seed + r, copy.deepcopy(model))[0]
                        train = replace(train, epochs=branch)

                    def one(s, start=start, labelled=labelled, train=train):
                        return train_world_model(labelled, p.world_model, train, s, copy.deepcopy(start))[0]

                    if medoid > 1:
                        model, _ = medoid_fit(one, medoid, seed + r, probe_rows(pool_batch, SPACE, np.random.default_rng([seed, 7])))
                    else:
                        model = one(seed + r)
                    secs = time.perf_counter() - t
                    now = test_metrics(model, dev)
                    row = {"recipe": name, "chooser": chooser, "seed": seed, "round": r, "seconds": secs,
                           "before": prev["per_action_error"], "after": now["per_action_error"], "pred_error": now["pred_error"]}
                    with log.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    prev = now
                print(f"[{time.perf_counter() - t0:.0f}s] seed {seed} {chooser} {name}: dev error {prev['pred_error']:.3f}", flush=True)
    report(args, log, recipes, choosers, cpu_description())


def recipe(text: str) -> tuple[dict, int, int]:
    """A recipe name -> (TrainConfig changes, medoid fits, branch epochs): 'as run' -> ({}, 1, 0); parts joined
    by '+' among anchor=X, soup=N, balanced (TrainConfig.balance_actions), medoid=N and branch=E (the medoid's
    fits share the refit's first epochs and differ only in its last E), e.g. 'medoid=3+branch=10'."""
    changes, medoid, branch = {}, 1, 0
    if text == "as run":
        return changes, medoid, branch
    for part in text.split("+"):
        kind, _, value = part.partition("=")
        if kind in ("anchor", "distill") and value:
            changes[kind] = float(value)
            if not changes[kind] >= 0:
                raise ValueError(f"{kind} must be >= 0, got {value!r}")
        elif kind == "balanced" and not value:
            changes["balance_actions"] = True
        elif kind in ("soup", "medoid", "branch") and value.isdigit() and int(value) >= 1:
            if kind == "soup":
                changes["soup"] = int(value)
            elif kind == "medoid":
                medoid = int(value)
            else:
                branch = int(value)
        else:
            raise ValueError(f"unknown recipe part {part!r} in {text!r}; expected 'as run' or parts anchor=X, distill=X, soup=N, balanced, medoid=N, branch=E joined by +")
    return changes, medoid, branch


def report(args, log: Path, recipes: list[str], choosers: list[str], machine: str) -> None:
    from wav.stats import paired_difference, parse_seeds

    rows = [json.loads(x) for x in log.read_text().splitlines()]
    seeds = set(parse_seeds(args.seeds))
    rows = [r for r in rows if r["seed"] in seeds and r["recipe"] in recipes and r["chooser"] in choosers]
    L = [f"# Refit recipes on a development set (`benchmarks/refit_recipes.py`, pretraining: {args.pretrain})", "",
         f"`generic` world model, {'3-epoch recorded video pretraining + ' if args.pretrain == 'recorded' else ''}the seed-set fit, then "
         f"{args.rounds} refits (the loop's schedule: 30 epochs, lr 2e-3, batch 64, continued) after adding {args.budget} pool transitions, "
         f"chosen at random or by true error (oracle). Seeds {args.seeds}. Broken: some action's error on the development set "
         "(make-testset seed 31,000, 2,100 transitions) > 5x before and > 1. Final error: the development-set Prediction Error "
         f"after the last round, paired with the first recipe over (seed, chooser). {machine}, one thread.", "",
         f"| recipe | refits | broken | final error (mean) | − {recipes[0]} [95% CI] (p) | s per refit |", "|---|---|---|---|---|---|"]
    final = {}
    for a in recipes:
        rs = [r for r in rows if r["recipe"] == a]
        final[a] = {(r["seed"], r["chooser"]): r["pred_error"] for r in rs if r["round"] == args.rounds}
    details = []
    for a in recipes:
        rs = [r for r in rows if r["recipe"] == a]
        hits = []
        for r in rs:
            h = [f"{k} {r['before'][k]:.2f}->{r['after'][k]:.1f}" for k in r["before"] if r["after"][k] > 5 * r["before"][k] and r["after"][k] > 1]
            if h:
                hits.append(r)
                details.append(f"- {a}, {r['chooser']} seed {r['seed']} round {r['round']}: {', '.join(h)}")
        keys = sorted(set(final[a]) & set(final[recipes[0]]))
        diff = "—"
        if a != recipes[0] and len(keys) > 1:
            d = paired_difference([final[a][k] for k in keys], [final[recipes[0]][k] for k in keys])
            diff = f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] (p={d['p_ttest']:.2g})"
        vals = list(final[a].values())
        L.append(f"| {a} | {len(rs)} | {len(hits)} | {np.mean(vals):.3f} | {diff} | {np.mean([r['seconds'] for r in rs]):.1f} |")
    L += ["", "Broken refits:", "", *(details or ["- none"]), ""]
    text = "\n".join(L)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
