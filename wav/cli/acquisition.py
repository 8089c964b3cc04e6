"""`wav reproduce acquisition|online` and `wav demo`: the acquisition experiments (REFERENCE §4)."""

from __future__ import annotations

import json
import os

from wav.experiments.common import finite_or_none

from wav.cli.checks import add_parser, input_file, non_negative_float, output_dir, positive_int, seeds


def _strategies(text: str | None, default):
    from wav.acquire import REGISTRY

    if not text:
        return tuple(default)
    if text == "all":
        return tuple(REGISTRY)
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in names if s not in REGISTRY]
    if bad:
        raise ValueError(f"unknown strategies {bad}; known: {sorted(REGISTRY)}")
    return names


def _score_cap(text: str) -> float | None:
    if text.lower() == "none":
        return None
    value = float(text)
    if not value > 0:
        raise ValueError
    return value


_score_cap.__name__ = "score cap (a positive number or 'none')"


def _method_flags(p) -> None:
    """The method's own knobs; each overrides the preset's value (wav.config.ScoringConfig / RoundConfig)."""
    from wav.cycle import REDUCTIONS

    g = p.add_argument_group("method (default: the preset's value)")
    g.add_argument("--k", type=positive_int, default=None, help="subgoals per state, K i.i.d. samples (default: the generator's weighted modes)")
    g.add_argument("--reduce", choices=REDUCTIONS, default=None, help="how WAV reduces the scores of the subgoals matched to an action (default min)")
    g.add_argument("--score-cap", type=_score_cap, default=False, help="WAV's verification scores saturate here; 'none' disables (default 20)")
    g.add_argument("--mc-passes", type=positive_int, default=None, help="MC-dropout passes of the uncertainty baseline (default 20; debug 3)")
    g.add_argument("--refit-soup", type=positive_int, default=None,
                   help="each world-model refit ends with the mean weights of N fits that differ only in the seed (default 1; N times the refit cost)")
    g.add_argument("--refit-medoid", type=positive_int, default=None,
                   help="each world-model refit runs N fits that differ only in the seed and keeps the one whose predictions on unlabelled probe states agree most with the others' (default 1; N times the refit cost)")
    g.add_argument("--refit-balance", action="store_true", default=None,
                   help="each world-model refit draws its rows so that every action has an equal share of an epoch, whatever the labels' action mix")
    g.add_argument("--refit-anchor", type=non_negative_float, default=None,
                   help="each world-model refit adds X * |w - w_before|^2 to its loss, pulling it towards the model it continues from (default 0)")
    g.add_argument("--refit-distill", type=non_negative_float, default=None,
                   help="each world-model refit adds X * KL(model before || model) at the labelled states under other actions, keeping what the labels do not contradict (default 0)")


def round_config(args, preset: str):
    """The preset's RoundConfig with the method flags applied (None when no flag was given)."""
    from dataclasses import replace

    from wav.config import ROUND_PRESETS

    changes = {k: v for k, v in (("k", args.k), ("reduce", args.reduce), ("mc_passes", args.mc_passes)) if v is not None}
    if args.score_cap is not False:
        changes["score_cap"] = args.score_cap
    soup, anchor, medoid = getattr(args, "refit_soup", None), getattr(args, "refit_anchor", None), getattr(args, "refit_medoid", None)
    balance, distill = getattr(args, "refit_balance", None), getattr(args, "refit_distill", None)
    if not changes and soup is None and anchor is None and medoid is None and balance is None and distill is None:
        return None
    base = ROUND_PRESETS[preset]
    out = replace(base, scoring=replace(base.scoring, **changes))
    if medoid is not None:
        out = replace(out, refit_medoid=medoid)
    for flag, name, value in (("--refit-soup", "soup", soup), ("--refit-anchor", "anchor", anchor), ("--refit-balance", "balance_actions", balance),
                              ("--refit-distill", "distill", distill)):
        if value is None:
            continue
        if out.refit is None:
            raise SystemExit(f"{flag}: preset {preset} refits with the model preset's own schedule; give it an explicit refit first")
        out = replace(out, refit=replace(out.refit, **{name: value}))
    return out


def _common(p, default_out: str) -> None:
    p.add_argument("--seeds", type=seeds, default="0-9", help="seeds, e.g. 0-9 or 0,3,5")
    p.add_argument("--preset", default="paper", choices=["paper", "debug"], help="model and protocol sizes (wav.config presets; default paper)")
    p.add_argument("--strategies", default=None, help="comma-separated strategy names or 'all'")
    p.add_argument("--backend", default="local", choices=["local", "ray"], help="local processes (joblib) or a Ray cluster")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (backend ray)")
    p.add_argument("--jobs", type=positive_int, default=min(os.cpu_count() or 1, 2), help="parallel seed jobs (local backend)")
    p.add_argument("--out", type=output_dir, default=default_out, help="output folder (resumable: finished runs with the same settings are skipped)")
    p.add_argument("--force", action="store_true", help="redo finished runs whose recorded settings differ (default: refuse to mix them)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")


def register(top, groups) -> None:
    p = add_parser(groups["reproduce"], "acquisition", help="pool protocol: strategies x seeds, CIs, paired tests, figure")
    _common(p, "runs/acquisition")
    p.add_argument("--pool", type=input_file, default=None, help="candidate pool npz (default: collected by our env)")
    p.add_argument("--seed-data", type=input_file, default=None, help="seed labelled set npz (default: drawn from the pool)")
    p.add_argument("--test-data", type=input_file, default=None, help="balanced test set npz (default: make-testset)")
    p.add_argument("--video", type=input_file, default=None, help="action-free corpus for the subgoal generator (default: random play)")
    p.add_argument("--afs-data", type=input_file, default=None, help="npz whose states seed the action following score (default: test set)")
    p.add_argument("--subgoal", type=input_file, default=None, help="trained subgoal checkpoint (default: trained on --video and cached)")
    p.add_argument("--models", default=None, choices=["generic", "pointer", "paper"],
                   help="world model: generic = the conv net like the published one (default at --preset paper), pointer (or paper) = with pointer heads")
    p.add_argument("--test-overlap", action="store_true", help="generated test set keeps transitions that also occur in the pool (default: excluded)")
    p.add_argument("--rounds", type=positive_int, default=None, help="acquisition rounds R (default 2; debug 1)")
    p.add_argument("--budget", type=positive_int, default=None, help="labels acquired per round B (default 50; debug 10)")
    p.add_argument("--distractors", type=int, default=0, help="extra objects in every world this run collects (a harder setting; default 0, as published)")
    p.add_argument("--noise-floors", type=int, default=0, help="noise floor tiles in every world this run collects (default 0, as published)")
    p.add_argument("--pretrain", default="none", choices=["none", "recorded", "inferred"],
                   help="pre-train the world model on --video first: recorded = with the corpus's actions (as published), "
                        "inferred = with actions inferred by a sparse inverse model of the seed set (action-free); default none")
    p.add_argument("--pretrain-epochs", type=positive_int, default=None, help="epochs of the pretraining (default: the model preset's, 10)")
    _method_flags(p)
    p.set_defaults(func=cmd_acquisition)
    register_online(groups)
    register_demo(top)


def _summary(results: dict) -> dict:
    return {
        "strategies": {
            s: {"pred_error": e["pred_error"], "pred_error_ci": e["pred_error_ci"], "spearman": e["spearman"], "kendall": e["kendall"], "afs": e["afs"]}
            for s, e in results["strategies"].items()
        },
        "seconds_per_seed": results.get("seconds_per_seed"),
    }


def cmd_acquisition(args) -> int:
    from wav.experiments.acquisition import DEBUG_SIZES, PUBLISHED_STRATEGIES, AcquisitionExperiment, run

    from dataclasses import replace

    from wav.config import POOL_PRESETS

    sizes = DEBUG_SIZES if args.preset == "debug" else {}
    pool_cfg = None
    if args.rounds is not None or args.budget is not None:
        base = POOL_PRESETS[args.preset]
        pool_cfg = replace(base, rounds=base.rounds if args.rounds is None else args.rounds, budget=base.budget if args.budget is None else args.budget)
    exp = AcquisitionExperiment(
        out=args.out, seeds=tuple(args.seeds), strategies=_strategies(args.strategies, PUBLISHED_STRATEGIES), preset=args.preset,
        pool=args.pool, seed_data=args.seed_data, test_data=args.test_data, video=args.video, afs_data=args.afs_data, subgoal=args.subgoal,
        models=args.models, test_overlap=args.test_overlap, backend=args.backend, jobs=args.jobs, ray_address=args.ray_address,
        round_config=round_config(args, args.preset), pool_config=pool_cfg, force=args.force, pretrain=args.pretrain, pretrain_epochs=args.pretrain_epochs,
        distractors=args.distractors, noise_floors=args.noise_floors, **sizes,
    )
    results = run(exp)
    print(open(os.path.join(args.out, "table.md")).read())
    print(f"figure: {os.path.join(args.out, 'figure.png')}  results: {os.path.join(args.out, 'results.json')}")
    if args.json:
        print(json.dumps(finite_or_none(_summary(results))))
    return 0


def register_online(groups) -> None:
    p = add_parser(groups["reproduce"], "online", help="Algorithm 1: WAV-guided exploration vs baselines at equal env steps")
    _common(p, "runs/online")
    p.add_argument("--seed-data", type=input_file, default=None, help="seed labelled set npz (default: drawn from a collected pool)")
    p.add_argument("--test-data", type=input_file, default=None, help="balanced test set npz (default: make-testset)")
    p.add_argument("--video", type=input_file, default=None, help="action-free corpus for the subgoal generator (default: random play)")
    p.add_argument("--afs-data", type=input_file, default=None, help="npz whose states seed the action following score (default: test set)")
    p.add_argument("--subgoal", type=input_file, default=None, help="trained subgoal checkpoint (default: trained on --video and cached)")
    p.add_argument("--models", default=None, choices=["generic", "pointer", "paper"],
                   help="world model: generic = the conv net like the published one (default at --preset paper), pointer (or paper) = with pointer heads")
    p.add_argument("--explore-test", type=int, default=None,
                   help="transitions of each extra test set of the explored env: random play (test_explore) and uniform-action play (test_uniform) (0: none; default 5000, debug 300)")
    p.add_argument("--steps", type=positive_int, default=None, help="environment steps = acquired labels (default 200; debug 20)")
    _method_flags(p)
    p.set_defaults(func=cmd_online)


def cmd_online(args) -> int:
    from wav.experiments.acquisition import DEBUG_SIZES, AcquisitionExperiment
    from wav.experiments.online import ONLINE_STRATEGIES, OnlineExperiment, run

    from dataclasses import replace

    from wav.config import ONLINE_PRESETS

    sizes = DEBUG_SIZES if args.preset == "debug" else {}
    online_cfg = None
    if args.steps is not None:
        online_cfg = replace(ONLINE_PRESETS[args.preset], steps=args.steps)
    data = AcquisitionExperiment(out=args.out, preset=args.preset, seed_data=args.seed_data, test_data=args.test_data, video=args.video, afs_data=args.afs_data,
                                 subgoal=args.subgoal, **sizes)
    exp = OnlineExperiment(out=args.out, seeds=tuple(args.seeds), strategies=_strategies(args.strategies, ONLINE_STRATEGIES),
                           preset=args.preset, models=args.models, data=data, backend=args.backend, jobs=args.jobs, ray_address=args.ray_address,
                           explore_test=args.explore_test if args.explore_test is not None else (300 if args.preset == "debug" else 5000),
                           round_config=round_config(args, args.preset), online_config=online_cfg, force=args.force)
    results = run(exp)
    print(open(os.path.join(args.out, "table.md")).read())
    print(f"figure: {os.path.join(args.out, 'figure.png')}  results: {os.path.join(args.out, 'results.json')}")
    if args.json:
        summary = {"strategies": {s: {"pred_error": e["pred_error"], "pred_error_ci": e["pred_error_ci"]} for s, e in results["strategies"].items()},
                   "sample_efficiency": results["sample_efficiency"], "seconds_per_seed": results["seconds_per_seed"]}
        print(json.dumps(finite_or_none(summary)))
    return 0


DEMO_SIZES = dict(pool_size=8000, seed_size=200, test_per_action=300, video_size=8000)


def register_demo(top) -> None:
    p = add_parser(top, "demo", help="the main job: collect data, train the models, acquire with every published strategy on a few seeds")
    p.add_argument("--seeds", type=seeds, default="0-1", help="seeds")
    p.add_argument("--out", type=output_dir, default="runs/demo", help="output folder (resumable)")
    p.add_argument("--jobs", type=positive_int, default=min(os.cpu_count() or 1, 2), help="parallel seed jobs")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """Our env's data (8k pool, 8k action-free transitions, 2.1k balanced test set), the published
    protocol (200 seed labels + 2 x 50 acquired) in its published setting: the generic world model and a
    test set that may share transitions with the pool (also scored without them), the five strategies."""
    import time

    from wav.experiments.acquisition import PUBLISHED_STRATEGIES, AcquisitionExperiment, run

    t0 = time.perf_counter()
    exp = AcquisitionExperiment(out=args.out, seeds=tuple(args.seeds), strategies=PUBLISHED_STRATEGIES, preset="paper", models="generic",
                                test_overlap=True, jobs=args.jobs, **DEMO_SIZES)
    results = run(exp)
    print(open(os.path.join(args.out, "table.md")).read())
    print(f"figure: {os.path.join(args.out, 'figure.png')}  results: {os.path.join(args.out, 'results.json')}  ({time.perf_counter() - t0:.0f} s)")
    if args.json:
        print(json.dumps(finite_or_none(_summary(results))))
    return 0
