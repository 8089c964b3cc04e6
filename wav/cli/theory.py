"""`wav theory prop32` and `wav theory learned`: parse, call wav.theory, print. With --json the last stdout
line is one JSON object."""

from __future__ import annotations

import json
import time
from pathlib import Path

from wav.cli.checks import add_parser, guard, output_dir, positive_int


@guard
def _prop32(args) -> int:
    from wav.runtime import set_threads
    from wav.theory import prop32

    set_threads(1)  # numpy's BLAS is pinned by OMP_NUM_THREADS=1 in the documented command
    cfg = prop32.Prop32Config(seed=args.seed, rse=args.rse, min_reps=args.min_reps, max_reps=args.max_reps,
                              tolerance=args.tolerance, debug=args.preset == "debug")
    out = Path(args.out)
    t0, c0 = time.perf_counter(), time.process_time()
    results = prop32.run(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    prop32.write_records(results, cfg, out)
    (out / "table.md").write_text(prop32.format_table(results) + "\n")
    png = prop32.plot(results, out / "prop32.png")
    s = prop32.summarize(results)
    w = s["worst"]
    print(f"Proposition 3.2, Monte Carlo vs closed form: {s['points_total']} grid points, "
          f"{s['points']} with n >= d_s + d_a + 10 (the accuracy target {100 * cfg.tolerance:g}%)")
    print(f"  worst relative error (targeted): {100 * s['max_rel_error']:.2f}% at d_s={w['d_s']} d_a={w['d_a']} "
          f"d_z={w['d_z']} sigma_s={w['sigma_s']:g} sigma_a={w['sigma_a']:g} lambda={w['lam']:g} n={w['n']}: "
          f"simulated {w['ratio']:.4g} ± {w['ratio_se']:.2g} (MC se) vs formula {w['formula']:.4g}")
    print(f"  largest |simulated - formula| / MC se over targeted points: {s['max_abs_z']:.2f}")
    print(f"  worst relative error including near-threshold points: {100 * s['max_rel_error_all']:.2f}%")
    print(f"  time: {wall:.1f} s wall, {cpu:.1f} s CPU")
    print(f"  wrote {out / 'metrics.jsonl'}, {out / 'table.md'}, {png}")
    ok = s["max_rel_error"] <= cfg.tolerance
    if not ok:
        print(f"  FAIL: worst relative error above {100 * cfg.tolerance:g}%")
    if args.json:
        print(json.dumps({"points": s["points"], "max_rel_error": round(s["max_rel_error"], 6)}))
    return 0 if ok else 1


@guard
def _learned(args) -> int:
    from wav.runtime import set_threads
    from wav.theory import learned

    set_threads(args.threads)
    cfg = learned.LearnedConfig(seeds=args.seeds, n=args.n, debug=args.preset == "debug")
    out = Path(args.out)
    t0 = time.perf_counter()
    result = learned.run(cfg)
    learned.write_records(result, cfg, out)
    png = learned.plot(result, out / "learned.png")
    print(learned.format_report(result))
    print(f"  time: {time.perf_counter() - t0:.1f} s; wrote {out / 'metrics.jsonl'}, {png}")
    if args.json:
        print(json.dumps(learned.json_summary(result)))
    return 0


def register(top, groups) -> None:
    p = add_parser(
        groups["theory"], "prop32", help="Monte-Carlo check of Proposition 3.2 (forward / inverse error ratio)",
        description="Simulate the linear-Gaussian model of docs/theory.md over a grid of (d_s, d_a, d_z, sigma_s, "
                    "sigma_a, lambda, n), fit both regressions by least squares, and compare the ratio of mean "
                    "excess risks with (d_s+d_a)/(2 d_z) * (sigma_s/(lambda sigma_a))^2 * (n-2d_z-1)/(n-d_s-d_a-1).")
    p.add_argument("--seed", type=int, default=0, help="root seed; every grid point gets its own child stream")
    p.add_argument("--rse", type=float, default=0.0035, help="target relative MC standard error of each mean error")
    p.add_argument("--min-reps", type=positive_int, default=200, help="fewest MC repetitions per model and point")
    p.add_argument("--max-reps", type=positive_int, default=20000, help="most MC repetitions per model and point")
    p.add_argument("--tolerance", type=float, default=0.03, help="accuracy target for points with n >= d_s + d_a + 10")
    p.add_argument("--preset", default="paper", choices=["debug", "paper"], help="paper: the full grid; debug: 6 points at twice the MC standard error (CI smoke run)")
    p.add_argument("--out", default="runs/theory/prop32", type=output_dir, help="run directory: config.json, metrics.jsonl, table.md, prop32.png")
    p.add_argument("--json", action="store_true", help='last stdout line: {"points": N, "max_rel_error": e}')
    p.set_defaults(func=_prop32)

    p = add_parser(
        groups["theory"], "learned", help="learned-model version of Proposition 3.2 (MLP world model vs sparse inverse model)",
        description="Train the MLP world model and the sparse continuous inverse model on a synthetic linear-Gaussian "
                    "environment with distractor dimensions; sweep d_s / d_z and sigma_s and compare the measured "
                    "error ratio with the formula's trend.")
    p.add_argument("--seeds", type=positive_int, default=5, help="seeds per sweep point")
    p.add_argument("--n", type=positive_int, default=400, help="labelled transitions per training set")
    p.add_argument("--preset", default="paper", choices=["debug", "paper"], help="paper: the whole sweep; debug: two sweep points, one seed, few epochs (CI smoke run)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads")
    p.add_argument("--out", default="runs/theory/learned", type=output_dir, help="run directory: config.json, metrics.jsonl, learned.png")
    p.add_argument("--json", action="store_true", help="last stdout line: one JSON object of the sweep results")
    p.set_defaults(func=_learned)
