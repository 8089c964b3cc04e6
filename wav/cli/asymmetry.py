"""`wav reproduce asymmetry` and `wav reproduce idm-ood`: the forward-inverse asymmetry experiments (REFERENCE §4)."""

from __future__ import annotations

import json
import os

from wav.experiments.common import finite_or_none

from wav.stats import parse_seeds


def register(top, groups) -> None:
    p = groups["reproduce"].add_parser("asymmetry", help="world model vs sparse inverse model over samples, objects or noise")
    p.add_argument("--sweep", required=True, choices=["samples", "objects", "noise"])
    p.add_argument("--train-data", nargs="*", default=[], help="training file(s): one, or one per x (noise)")
    p.add_argument("--test-data", nargs="*", default=[], help="test file(s): one, or one per x (objects)")
    p.add_argument("--seeds", default="0-4", help="seeds (default 0-4)")
    p.add_argument("--xs", default=None, help="comma-separated x values (default: the published ones)")
    p.add_argument("--preset", default="generic", choices=["generic", "paper", "debug"],
                   help="model preset: generic = the world model without pointer heads, like the published conv net (default); paper = with them")
    p.add_argument("--train-size", type=int, default=2000, help="transitions per generated training set")
    p.add_argument("--test-size", type=int, default=1000, help="transitions per generated test set")
    p.add_argument("--backend", default="local", choices=["local", "ray"])
    p.add_argument("--ray-address", default=None)
    p.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 2))
    p.add_argument("--out", default="runs/asymmetry")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.set_defaults(func=cmd_asymmetry)

    q = groups["reproduce"].add_parser("idm-ood", help="sparse vs vanilla inverse model on unseen compositions and few-shot noise")
    q.add_argument("--seeds", default="0-9", help="seeds (default 0-9)")
    q.add_argument("--preset", default="paper", choices=["paper", "debug"])
    q.add_argument("--ood-train", default=None, help="Key-Delivery episodes npz (default: our env)")
    q.add_argument("--ood-test", default=None, help="Ball-Delivery episodes npz (default: our env)")
    q.add_argument("--fewshot-train", default=None, help="few-shot 3-noise train npz (default: our env)")
    q.add_argument("--fewshot-test", default=None, help="few-shot 3-noise test npz (default: our env)")
    q.add_argument("--size", type=int, default=5400, help="transitions per generated OOD set")
    q.add_argument("--train-size", type=int, default=1000, help="training transitions drawn per seed from a larger set")
    q.add_argument("--backend", default="local", choices=["local", "ray"])
    q.add_argument("--ray-address", default=None)
    q.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 2))
    q.add_argument("--out", default="runs/idm-ood")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_idm_ood)


def cmd_asymmetry(args) -> int:
    from wav.experiments.asymmetry import AsymmetryExperiment, run_sweep

    xs = tuple(int(x) for x in args.xs.split(",")) if args.xs else ()
    exp = AsymmetryExperiment(sweep=args.sweep, out=args.out, seeds=tuple(parse_seeds(args.seeds)), preset=args.preset, train_data=tuple(args.train_data),
                              test_data=tuple(args.test_data), train_size=args.train_size, test_size=args.test_size, xs=xs, backend=args.backend,
                              jobs=args.jobs, ray_address=args.ray_address)
    res = run_sweep(exp)
    print(open(os.path.join(args.out, args.sweep, "table.md")).read())
    print(f"figure: {os.path.join(args.out, args.sweep, 'figure.png')}")
    if args.json:
        print(json.dumps(finite_or_none({k: res[k] for k in ("x", "world_model", "world_model_ci", "inverse", "inverse_ci", "inverse_ceiling")})))
    return 0


def cmd_idm_ood(args) -> int:
    from wav.experiments.asymmetry import IdmOodExperiment, run_idm_ood

    exp = IdmOodExperiment(out=args.out, seeds=tuple(parse_seeds(args.seeds)), preset=args.preset, ood_train=args.ood_train, ood_test=args.ood_test,
                           fewshot_train=args.fewshot_train, fewshot_test=args.fewshot_test, size=args.size, train_size=args.train_size, backend=args.backend, jobs=args.jobs,
                           ray_address=args.ray_address)
    res = run_idm_ood(exp)
    print(open(os.path.join(args.out, "table.md")).read())
    print(f"figure: {os.path.join(args.out, 'figure.png')}")
    if args.json:
        print(json.dumps(finite_or_none({p: {v: {a: e[v][a]["mean"] for a in ("pickup", "drop", "toggle", "swap")} for v in ("sparse", "vanilla")} for p, e in res["protocols"].items()})))
    return 0
