"""`wav reproduce asymmetry` and `wav reproduce idm-ood`: the forward-inverse asymmetry experiments (REFERENCE §4)."""

from __future__ import annotations

import json
import os

from wav.cli.checks import add_parser, guard, int_list, output_dir, positive_int, seeds
from wav.experiments.common import finite_or_none

JOBS = min(os.cpu_count() or 1, 2)


def _common(p, out: str) -> None:
    """The options both experiments share: where they run and where they write."""
    p.add_argument("--backend", default="local", choices=["local", "ray"], help="local: worker processes on this machine; ray: a Ray cluster")
    p.add_argument("--ray-address", default=None, help="address of a running Ray cluster (backend ray; default: start a local one)")
    p.add_argument("--jobs", type=positive_int, default=JOBS, help="parallel runs (local backend)")
    p.add_argument("--out", default=out, type=output_dir, help="output folder (resumable: finished runs are skipped)")


def register(top, groups) -> None:
    p = add_parser(groups["reproduce"], "asymmetry", help="world model vs sparse inverse model over samples, objects or noise")
    p.add_argument("--sweep", required=True, choices=["samples", "objects", "noise"], help="what varies along x")
    p.add_argument("--train-data", nargs="*", default=[], help="training file(s): one, or one per x (noise); default: generated")
    p.add_argument("--test-data", nargs="*", default=[], help="test file(s): one, or one per x (objects); default: generated")
    p.add_argument("--seeds", default="0-4", type=seeds, help="seeds, e.g. 0-4 or 0,3,5")
    p.add_argument("--xs", default=None, type=int_list(0), help="comma-separated x values (default: the published ones)")
    p.add_argument("--preset", default="generic", choices=["generic", "paper", "debug"],
                   help="model preset: generic = the world model without pointer heads, like the published conv net; paper = with them")
    p.add_argument("--train-size", type=positive_int, default=2000, help="transitions per generated training set")
    p.add_argument("--test-size", type=positive_int, default=1000, help="transitions per generated test set")
    _common(p, "runs/asymmetry")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.set_defaults(func=cmd_asymmetry)

    q = add_parser(groups["reproduce"], "idm-ood", help="sparse vs vanilla inverse model on unseen compositions and few-shot noise")
    q.add_argument("--seeds", default="0-9", type=seeds, help="seeds, e.g. 0-9 or 0,3,5")
    q.add_argument("--preset", default="paper", choices=["paper", "debug"], help="model preset")
    q.add_argument("--ood-train", default=None, help="Key-Delivery episodes npz (default: our env)")
    q.add_argument("--ood-test", default=None, help="Ball-Delivery episodes npz (default: our env)")
    q.add_argument("--fewshot-train", default=None, help="few-shot 3-noise train npz (default: our env)")
    q.add_argument("--fewshot-test", default=None, help="few-shot 3-noise test npz (default: our env)")
    q.add_argument("--size", type=positive_int, default=5400, help="transitions per generated OOD set")
    q.add_argument("--train-size", type=positive_int, default=1000, help="training transitions drawn per seed from a larger set")
    _common(q, "runs/idm-ood")
    q.add_argument("--json", action="store_true", help="print a JSON summary of the mean accuracies as the last stdout line")
    q.set_defaults(func=cmd_idm_ood)


@guard
def cmd_asymmetry(args) -> int:
    from wav.experiments.asymmetry import AsymmetryExperiment, run_sweep

    exp = AsymmetryExperiment(sweep=args.sweep, out=args.out, seeds=args.seeds, preset=args.preset, train_data=tuple(args.train_data),
                              test_data=tuple(args.test_data), train_size=args.train_size, test_size=args.test_size, xs=args.xs or (), backend=args.backend,
                              jobs=args.jobs, ray_address=args.ray_address)
    res = run_sweep(exp)
    print(open(os.path.join(args.out, args.sweep, "table.md")).read())
    print(f"figure: {os.path.join(args.out, args.sweep, 'figure.png')}")
    if args.json:
        print(json.dumps(finite_or_none({k: res[k] for k in ("x", "world_model", "world_model_ci", "inverse", "inverse_ci", "inverse_ceiling")})))
    return 0


@guard
def cmd_idm_ood(args) -> int:
    from wav.experiments.idm_ood import IdmOodExperiment, run_idm_ood

    exp = IdmOodExperiment(out=args.out, seeds=args.seeds, preset=args.preset, ood_train=args.ood_train, ood_test=args.ood_test,
                           fewshot_train=args.fewshot_train, fewshot_test=args.fewshot_test, size=args.size, train_size=args.train_size, backend=args.backend, jobs=args.jobs,
                           ray_address=args.ray_address)
    res = run_idm_ood(exp)
    print(open(os.path.join(args.out, "table.md")).read())
    print(f"figure: {os.path.join(args.out, 'figure.png')}")
    if args.json:
        print(json.dumps(finite_or_none({p: {v: {a: e[v][a]["mean"] for a in ("pickup", "drop", "toggle", "swap")} for v in ("sparse", "vanilla")} for p, e in res["protocols"].items()})))
    return 0
