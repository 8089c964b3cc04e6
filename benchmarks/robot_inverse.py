"""The robot inverse models on a pool file (issue 13 item 2 targets): sparse vs vanilla (dense) latent inverse model,
fit on a warm-up partition per seed, scored on the eval partition (held-out trajectories of every source) and on the
explore partition (rollouts of checkpoints the warm-up never holds): action MSE, R^2 per action dim, and which layout
groups the sparse mask keeps (and the `object` share of the kept features).

`--reference` adds what an unconstrained regressor reaches from the same inputs (s_{t-1}, s_t, s_{t+1}): an MLP
(2 x 256, SiLU, no mask, no latent action) fit on the same warm-up set, and the same MLP fit on the warm-up and
explore partitions together (3-4x the transitions), both scored on the eval partition. If they stay near the
inverse models, the R^2 the state transition allows at this scale, not the model, bounds the inverse models.

    python benchmarks/robot_inverse.py --data runs/robot-PullCube-cpu --warmup 50 --seeds 0-4 --preset cpu \
        --out benchmarks/results/robot_inverse.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wav.data.robot_io import summary  # noqa: E402
from wav.experiments.robot_acquisition import RobotAcquisitionExperiment, action_fit, inverse_diagnostics, load_data, pool_file  # noqa: E402
from wav.runtime import cpu_description, set_threads  # noqa: E402
from wav.stats import mean_ci, paired_difference  # noqa: E402

DIMS = ("x", "y", "z", "rx", "ry", "rz", "gripper")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None, help="a task's pool file or build folder")
    ap.add_argument("--task", default=None, help="task name (default: the pool file's)")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--out", required=True)
    ap.add_argument("--reference", action="store_true", help="also fit unconstrained MLPs on the same inputs (see above)")
    ap.add_argument("--json", default=None, help="also write the per-seed rows here (what `--overview` reads)")
    ap.add_argument("--overview", nargs="+", default=None, metavar="JSON",
                    help="fit nothing: one table over tasks from the `--json` files of earlier runs, with the targets scored")
    args = ap.parse_args()
    if args.overview:
        missing = [p for p in args.overview if not Path(p).is_file()]
        if missing:
            ap.error(f"--overview: no such file {missing[0]}")
        return overview([json.loads(Path(p).read_text()) for p in args.overview], args.out, args.overview)
    if args.data is None:
        ap.error("--data is required (or --overview)")
    set_threads(1)
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    task = args.task or summary(pool_file(args.data))["task"]
    exp = RobotAcquisitionExperiment(task=task, data=args.data, warmup=args.warmup, preset=args.preset)
    data = load_data(exp)
    rows: dict[str, dict[str, list[dict]]] = {"inverse": {"eval": [], "explore": []}, "dense_inverse": {"eval": [], "explore": []}}
    seconds = {"inverse": [], "dense_inverse": []}
    for seed in seeds:
        for part in rows:
            t = time.perf_counter()
            model = exp.domain.fit(part, data.seed_set, seed)
            seconds[part].append(time.perf_counter() - t)
            for name, split in (("eval", data.test), ("explore", data.pool)):
                rows[part][name].append(inverse_diagnostics(model, split))
            print(f"seed {seed} {part}: eval MSE {rows[part]['eval'][-1]['action_mse']:.4f}, explore MSE {rows[part]['explore'][-1]['action_mse']:.4f} "
                  f"({seconds[part][-1]:.0f} s)", file=sys.stderr, flush=True)
    reference = {"mlp, warm-up": [], "mlp, warm-up + explore": []}
    if args.reference:
        for seed in seeds:
            for label, train in (("mlp, warm-up", [data.seed_set]), ("mlp, warm-up + explore", [data.seed_set, data.pool])):
                reference[label].append(_reference_mlp(train, data.test, seed))
                print(f"seed {seed} {label}: eval MSE {reference[label][-1]['action_mse']:.4f}", file=sys.stderr, flush=True)
    lines = [f"# Robot inverse models: sparse vs vanilla ({exp.task}, warm-up {args.warmup}, preset `{args.preset}`, seeds {args.seeds})", "",
             f"Command: `python benchmarks/robot_inverse.py --data {args.data} --warmup {args.warmup} --seeds {args.seeds} --preset {args.preset} --out {args.out}"
             f"{' --reference' if args.reference else ''}`  ",
             f"Machine: {cpu_description()}, shared, one torch thread; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. "
             f"Fit time per model (s): sparse {np.mean(seconds['inverse']):.1f}, dense {np.mean(seconds['dense_inverse']):.1f}.", "",
             "`eval` = held-out trajectories of every source; `explore` = rollouts of the checkpoints that never enter the warm-up set. "
             "Mean over seeds [95% CI]; R^2 per action dim is the mean over seeds (min over seeds in brackets).", "",
             "| partition | model | action MSE | " + " | ".join(f"R^2 {d}" for d in DIMS) + " | kept ee / robot / object | object share of kept |",
             "|---|---|---|" + "---|" * len(DIMS) + "---|---|"]
    for name in ("eval", "explore"):
        for part, label in (("inverse", "sparse"), ("dense_inverse", "vanilla")):
            rs = rows[part][name]
            mse, lo_, hi_ = mean_ci([r["action_mse"] for r in rs])
            r2 = r2_table(rs)
            kept = {g: np.mean([r["kept_by_group"].get(g, np.nan) for r in rs]) for g in ("ee", "robot", "object")}
            share = np.mean([_object_share(r, data.test.layout) for r in rs]) if part == "inverse" else float("nan")
            lines.append(f"| {name} | {label} | {mse:.4f} [{lo_:.4f}, {hi_:.4f}] | " + " | ".join(f"{m:.2f} ({n:.2f})" for m, n in zip(r2.mean(0), r2.min(0)))
                         + f" | {kept['ee']:.2f} / {kept['robot']:.2f} / {kept['object']:.2f} | " + ("—" if np.isnan(share) else f"{share:.1%}") + " |")
        d = paired_difference([r["action_mse"] for r in rows["inverse"][name]], [r["action_mse"] for r in rows["dense_inverse"][name]])
        lines.append(f"| {name} | sparse − vanilla MSE | {d['mean']:+.4f} (paired t p={d['p_ttest']:.3g}) |" + " |" * (len(DIMS) + 2))
        if name == "eval":
            for label, rs in reference.items():
                if rs:
                    mse, lo_, hi_ = mean_ci([r["action_mse"] for r in rs])
                    r2 = r2_table(rs)
                    lines.append(f"| eval | reference {label} | {mse:.4f} [{lo_:.4f}, {hi_:.4f}] | "
                                 + " | ".join(f"{m:.2f} ({n:.2f})" for m, n in zip(r2.mean(0), r2.min(0))) + " | — | — |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    if args.json:
        shares = {name: [_object_share(r, data.test.layout) for r in rows["inverse"][name]] for name in rows["inverse"]}
        Path(args.json).write_text(json.dumps({"task": exp.task, "warmup": args.warmup, "seeds": seeds, "preset": args.preset,
                                               "data": args.data, "machine": cpu_description(), "rows": rows, "object_share": shares,
                                               "seconds": seconds, "reference": reference}, indent=1) + "\n")
    print("\n".join(lines))


def r2_table(rows: list[dict]) -> np.ndarray:
    """(seeds, action dims) R^2 of diagnostic rows, NaN where a dimension had no variance (recorded as None)."""
    return np.array([[np.nan if x is None else x for x in r["r2_by_dim"]] for r in rows], float)


def overview(runs: list[dict], out: str, paths: list[str]) -> None:
    """Issue 13's inverse-model targets over tasks, from `--json` records: R^2 >= 0.9 on the eval partition, at most
    10% `object` among the kept features, sparse better than vanilla on the explore partition's unseen checkpoints."""
    lines = ["# Robot inverse models over tasks: issue 13's targets (sparse vs vanilla, warm-up 50, preset `cpu`)", "",
             f"From `python benchmarks/robot_inverse.py --overview {' '.join(paths)} --out {out}`; each task's own table is"
             " `robot_inverse_<task>.md` beside this file, with its command and machine.", "",
             "Mean over seeds, [95% CI] or (min-max over seeds). `dims >= 0.9`: action dimensions whose R^2 (mean over seeds) reaches 0.9 on "
             "the eval partition. `object share`: share of the features the sparse mask keeps that are `object` features. "
             "`explore`: the rollouts of checkpoints that never enter the warm-up set; `sparse − vanilla` is paired by seed (t test).", "",
             "| task | seeds | eval MSE sparse | eval MSE vanilla | sparse R^2 per dim (x y z rx ry rz grip) | dims >= 0.9 | object share (min-max) "
             "| explore MSE sparse | explore MSE vanilla | explore sparse − vanilla (p, sparse lower in) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    met = {"r2": [], "share": [], "explore": []}
    for run in runs:
        rows, n = run["rows"], len(run["seeds"])
        cell = {}
        for name in ("eval", "explore"):
            for part in ("inverse", "dense_inverse"):
                m, lo, hi = mean_ci([r["action_mse"] for r in rows[part][name]])
                cell[name, part] = f"{m:.4f} [{lo:.4f}, {hi:.4f}]"
        r2 = r2_table(rows["inverse"]["eval"]).mean(0)
        share = np.array(run["object_share"]["eval"], float)
        sp, va = [r["action_mse"] for r in rows["inverse"]["explore"]], [r["action_mse"] for r in rows["dense_inverse"]["explore"]]
        d = paired_difference(sp, va)
        lower = sum(a < b for a, b in zip(sp, va))
        met["r2"].append((run["task"], int((r2 >= 0.9).sum())))
        met["share"].append((run["task"], float(share.mean())))
        met["explore"].append((run["task"], d["mean"] < 0 and d["p_ttest"] < 0.05))
        lines.append(f"| {run['task']} | {n} | {cell['eval', 'inverse']} | {cell['eval', 'dense_inverse']} | {' '.join(f'{x:.2f}' for x in r2)} "
                     f"| {int((r2 >= 0.9).sum())} of {len(r2)} | {share.mean():.1%} ({share.min():.1%}-{share.max():.1%}) | {cell['explore', 'inverse']} "
                     f"| {cell['explore', 'dense_inverse']} | {d['mean']:+.4f} (p={d['p_ttest']:.3g}, {lower}/{n}) |")
    k = len(runs)
    full = [t for t, c in met["r2"] if c == 7]
    share_ok = [t for t, s in met["share"] if s <= 0.10]
    better = [t for t, ok in met["explore"] if ok]
    lines += ["", "| target | tasks | status |", "|---|---|---|",
              f"| action R^2 >= 0.9 on the eval partition (every dimension) | {len(full)} of {k}{': ' + ', '.join(full) if full else ''} "
              f"| {'met' if len(full) == k else 'missed'} |",
              f"| at most 10% of the kept features are `object` (mean over seeds) | {len(share_ok)} of {k} | {'met' if len(share_ok) == k else 'missed'} |",
              f"| sparse better than vanilla on checkpoints it never saw (paired p < 0.05) | {len(better)} of {k}{': ' + ', '.join(better) if better else ''} "
              f"| {'met' if len(better) == k else 'missed'} |"]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _reference_mlp(train: list, test, seed: int, steps: int = 3000) -> dict:
    """An MLP from the flattened (s_{t-1}, s_t, s_{t+1}) to a_t (inputs standardised on its training rows),
    Adam 1e-3, batches of 256; action MSE and R^2 per dim on `test`."""
    import torch

    from wav.data.sequences import inverse_triples

    def xy(sets):
        ctx, acts, nxt = inverse_triples([t for d in sets for t in d.trajectories])
        return torch.cat([ctx.flatten(1), nxt], 1), acts

    x, y = xy(train)
    xt, yt = xy([test])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mu) / sd, (xt - mu) / sd
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.SiLU(), torch.nn.Linear(256, 256), torch.nn.SiLU(),
                              torch.nn.Linear(256, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        i = torch.randint(0, len(x), (256,), generator=g)
        loss = ((net(x[i]) - y[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return action_fit(yt.double().numpy(), net(xt).clamp(-1, 1).double().numpy())


def _object_share(row: dict, layout: dict) -> float:
    """Share of the kept features that are `object` features (kept_by_group is a per-group share)."""
    sizes = {}
    for g, n in zip(layout["groups"], layout["sizes"]):
        sizes[g] = sizes.get(g, 0) + int(n)
    kept = {g: row["kept_by_group"].get(g, 0.0) * sizes.get(g, 0) for g in sizes}
    total = sum(kept.values())
    return kept.get("object", 0.0) / total if total > 0 else float("nan")


if __name__ == "__main__":
    main()
