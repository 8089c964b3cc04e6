"""The oracle-generator ablation (issue 15 part 1): how much of WAV's ranking of the MiniGrid pool is limited by its
subgoal generator.

Per seed, the round-1 seed-set models of `wav reproduce acquisition` (published pool, published 200 seed transitions,
the `generic` world model, the `paper` round preset; fitted by the experiment's own `train_shared_part`) score the
SAME candidate pool with the `wav` strategy (`make_strategy("wav").score`), changing only the subgoal generator:

* learned: the frozen generator the experiment uses (`--subgoal`, default runs/subgoal-paper.pt), its weighted modes;
* true: `TrueSubgoalGenerator` (the true successor of a uniformly random action). The experiment's ScoringConfig has
  k=None (the generator's weighted modes), so the true generator proposes its exact distribution: the 7 true
  successors, 1/7 each (a `propose` added here; `sample` is unchanged);
* the same two without the score cap (ScoringConfig.score_cap=None).

For each: Spearman and Kendall of the scores against the seed-set world model's true error on every candidate
(`pool_oracle`), and the mean true error of the 50 top-scored candidates (what a round takes; ties at the top,
e.g. at the cap, broken at random, reported as the expectation over the tie-break), next to the oracle's own
top 50 and random's (the pool mean).

    python benchmarks/generator_ablation.py --official /work/shared/official-minigrid --subgoal runs/subgoal-paper.pt \
        --seeds 0-4 --out benchmarks/results/generator_ablation.md
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wav.acquire import Models, make_strategy, select  # noqa: E402
from wav.data.io import load_transitions  # noqa: E402
from wav.domains.minigrid import frozen_subgoals  # noqa: E402
from wav.envs.minigrid.dynamics import successors  # noqa: E402
from wav.envs.minigrid.encoding import N_ACTIONS, from_features, to_features  # noqa: E402
from wav.envs.minigrid.oracles import TrueSubgoalGenerator, TrueWorldModel  # noqa: E402
from wav.experiments.acquisition import AcquisitionExperiment, subgoal_model  # noqa: E402
from wav.loop import pool_oracle, train_shared_part  # noqa: E402
from wav.metrics import rank_correlation  # noqa: E402
from wav.runtime import cpu_description, set_threads, torch_generator  # noqa: E402

POOL = "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"
SEED_SET = "random_selected_data.npz"
AFS = "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz"
TOP = 50


class TrueSuccessorSet(TrueSubgoalGenerator):
    """`TrueSubgoalGenerator` as weighted modes (the cycle's k=None): every state's 7 true successors, 1/7 each."""

    def propose(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, c = from_features(states.numpy())
        sg, sc = successors(g, c, self.box_toggle)  # (B, 7, W, H, 3), (B, 7, 2)
        b = len(g)
        succ = to_features(sg.reshape(b * N_ACTIONS, *g.shape[1:]), sc.reshape(b * N_ACTIONS, 2)).reshape(b, N_ACTIONS, -1)
        return torch.from_numpy(succ), torch.full((b, N_ACTIONS), 1.0 / N_ACTIONS)


class Heartbeat:
    """Prints the current stage to stderr at least every `every` seconds (fits run for longer than that)."""

    def __init__(self, every: float = 10.0):
        self.stage, self.t0, self.every = "start", time.perf_counter(), every
        self._stop = threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def set(self, stage: str) -> None:
        self.stage = stage
        self.say(stage)

    def say(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self.say(f"... {self.stage}")

    def stop(self) -> None:
        self._stop.set()


def expected_top(scores: np.ndarray, oracle: np.ndarray, actions: np.ndarray, n: int) -> tuple[float, np.ndarray, int]:
    """Mean true error and action counts of the `n` top-scored candidates, in expectation over a random tie-break
    at the boundary (as `select` breaks ties), and how many candidates tie at the boundary score."""
    t = np.sort(scores)[::-1][n - 1]
    above, tied = scores > t, scores == t
    m = n - int(above.sum())  # slots the tied candidates share
    err = (oracle[above].sum() + m * oracle[tied].mean()) / n
    counts = np.bincount(actions[above], minlength=N_ACTIONS) + m * np.bincount(actions[tied], minlength=N_ACTIONS) / tied.sum()
    return float(err), counts, int(tied.sum())


def over_cap(scores: np.ndarray, oracle: np.ndarray, cap: float) -> dict:
    """How many candidates score >= cap, and that set against the candidates whose true error is >= cap:
    precision (share of it with true error >= cap) and recall (share of those it holds)."""
    hit, true = scores >= cap, oracle >= cap
    both = int((hit & true).sum())
    return {"over": int(hit.sum()), "precision": both / hit.sum() if hit.any() else float("nan"), "recall": both / true.sum() if true.any() else float("nan")}


def _f(x: float) -> str:
    return "—" if np.isnan(x) else f"{x:.4f}"


def _over(r: dict, digits: int = 0) -> str:
    return "—" if np.isnan(r["over"]) else f"{r['over']:.{digits}f} ({r['precision']:.2f}, {r['recall']:.2f})"


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def record_check(records: Path, seed: int) -> dict | None:
    """Round 1 of the experiment's recorded `wav` run of this seed (to check the models are rebuilt exactly)."""
    import json

    path = records / "runs" / "wav" / f"seed{seed}" / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return next((r for r in rows if r.get("round") == 1), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None,
                    help="folder of the published MiniGrid files (default $WAV_OFFICIAL_DATA)")
    ap.add_argument("--subgoal", default="runs/subgoal-paper.pt", help="the experiment's trained generator checkpoint")
    ap.add_argument("--models", default="generic", help="world-model preset of the experiment (README: generic)")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--records", default="runs/acq/generic-overlap",
                    help="an `wav reproduce acquisition` output folder whose round-1 wav records are compared (skipped if absent)")
    ap.add_argument("--out", default="benchmarks/results/generator_ablation.md")
    args = ap.parse_args()
    set_threads(1)
    beat = Heartbeat()
    t_start = time.perf_counter()
    seeds = parse_seeds(args.seeds)

    off = Path(args.official)
    exp = AcquisitionExperiment(models=args.models, test_overlap=True, pool=str(off / POOL), seed_data=str(off / SEED_SET), afs_data=str(off / AFS),
                                subgoal=args.subgoal, seeds=tuple(seeds), strategies=("wav",))
    domain, scoring = exp.domain, exp.round.scoring
    pool, seed_set = load_transitions(exp.pool), load_transitions(exp.seed_data)
    cand = domain.batch(pool)
    actions = cand.actions.numpy().astype(np.int64)
    wav = make_strategy("wav", dict(exp.round.random_mix).get("wav"))
    learned = frozen_subgoals(subgoal_model(exp, {}))
    true_gen = TrueSuccessorSet(domain.box_toggle)
    # how true the "true" generator is on this pool: does the recorded s' equal the true outcome of (s, a)?
    agree = float((TrueWorldModel(domain.box_toggle).loss(cand.states, cand.actions, cand.next_states) == 0).double().mean())
    beat.say(f"pool {len(pool):,} candidates ({len(np.unique(cand.states.numpy(), axis=0)):,} distinct states); recorded s' = true step: {agree:.4f}; "
             f"scoring {scoring}")

    variants = [("learned", learned, scoring), ("true", true_gen, scoring)]
    if scoring.score_cap is not None:
        nocap = replace(scoring, score_cap=None)
        variants += [("learned, no cap", learned, nocap), ("true, no cap", true_gen, nocap)]
    cap = scoring.score_cap if scoring.score_cap is not None else 20.0  # the threshold of the score >= cap columns
    rows: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    rows["oracle"], rows["random"] = [], []
    checks, fit_seconds, score_seconds = [], [], {name: [] for name, _, _ in variants}
    for seed in seeds:
        t = time.perf_counter()
        beat.set(f"seed {seed}: fitting the seed-set world model")
        wm = train_shared_part(domain, seed_set, exp.round, seed, "world_model")
        beat.set(f"seed {seed}: fitting the sparse inverse model")
        inv = train_shared_part(domain, seed_set, exp.round, seed, "inverse")
        fit_seconds.append(time.perf_counter() - t)
        beat.set(f"seed {seed}: oracle error of the pool")
        oracle = pool_oracle(domain, wm, pool)
        top = np.sort(oracle)[::-1][:TOP]
        rows["oracle"].append({"seed": seed, "spearman": 1.0, "kendall": 1.0, "top": float(top.mean()),
                               "actions": expected_top(oracle, oracle, actions, TOP)[1], "tied": 0, **over_cap(oracle, oracle, cap)})
        rows["random"].append({"seed": seed, "spearman": float("nan"), "kendall": float("nan"), "top": float(oracle.mean()),
                               "actions": np.bincount(actions, minlength=N_ACTIONS) * TOP / len(actions), "tied": 0,
                               "over": float("nan"), "precision": float("nan"), "recall": float("nan")})
        for name, gen, sc in variants:
            beat.set(f"seed {seed}: wav scores, {name} generator")
            t = time.perf_counter()
            models = Models(world_model=wm, space=domain.space, subgoal=gen, inverse=inv)
            scores = wav.score(cand, models, sc, torch_generator(seed)).double().numpy()
            score_seconds[name].append(time.perf_counter() - t)
            rc = rank_correlation(scores, oracle)
            err, counts, tied = expected_top(scores, oracle, actions, TOP)
            rows[name].append({"seed": seed, **rc, "top": err, "actions": counts, "tied": tied, **over_cap(scores, oracle, cap)})
            beat.say(f"seed {seed} {name}: Spearman {rc['spearman']:.4f}, top-{TOP} error {err:.2f} ({tied} tied at the boundary)")
            if name == "learned":
                rec = record_check(Path(args.records), seed)
                if rec is not None:  # the experiment's own draw: its rng stream and `select` on these scores
                    rng = np.random.default_rng(np.random.SeedSequence([seed, sum(map(ord, "wav"))]))
                    chosen = select(scores, TOP, wav.random_mix, rng)
                    checks.append((seed, rc["spearman"], rec["spearman"], float(oracle[chosen].mean()), rec["oracle_error_of_chosen"]))
        beat.say(f"seed {seed} done: oracle top-{TOP} {rows['oracle'][-1]['top']:.2f}, random {rows['random'][-1]['top']:.2f}")
    beat.stop()
    wall = time.perf_counter() - t_start

    order = [name for name, _, _ in variants[:2]] + [name for name, _, _ in variants[2:]] + ["oracle", "random"]
    label = {"learned": f"wav, learned generator (`{args.subgoal}`), cap {scoring.score_cap:g}" if scoring.score_cap is not None else "wav, learned generator",
             "true": "wav, true generator (7 true successors, 1/7 each)" + (f", cap {scoring.score_cap:g}" if scoring.score_cap is not None else ""),
             "learned, no cap": "wav, learned generator, no cap", "true, no cap": "wav, true generator, no cap",
             "oracle": f"oracle (true error, top {TOP})", "random": "random (expectation = pool mean)"}
    cmd = (f"python benchmarks/generator_ablation.py --official {args.official} --subgoal {args.subgoal} --models {args.models} "
           f"--seeds {args.seeds} --records {args.records} --out {args.out}")
    lines = [f"# Oracle-generator ablation: WAV's pool ranking with the learned vs the true subgoal generator (seeds {args.seeds})", "",
             f"Command: `{cmd}`  ",
             f"Machine: {cpu_description()}, torch {torch.__version__}, one torch thread, 2 cores shared with other jobs (niced); "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {wall:.0f} s wall in all (seed-set fits {np.mean(fit_seconds):.1f} s per seed; "
             + ", ".join(f"{n} scoring {np.mean(v):.1f} s" for n, v in score_seconds.items()) + " per seed).", "",
             f"Round 1 of `wav reproduce acquisition` (preset `{exp.preset}`, models `{args.models}`): the published pool ({len(pool):,} candidates) "
             f"scored by the seed-set world model and sparse inverse model of each seed, fitted on the published {len(seed_set)} seed transitions "
             f"by `wav.loop.train_shared_part`; ScoringConfig k={scoring.k} (weighted modes), reduce={scoring.reduce}, cap={scoring.score_cap}. "
             f"Only the generator (and the cap) changes between rows. Top-{TOP} error: the mean true error (`pool_oracle`) of the {TOP} "
             f"top-scored candidates, in expectation over the random tie-break at the boundary; 'tied' is how many candidates share the "
             f"boundary score (at the cap, every candidate scoring >= the cap). On this pool the recorded next state equals the true "
             f"dynamics' outcome for {agree:.2%} of the candidates.", "",
             f"Score >= {cap:g}: how many candidates score at least {cap:g} (the cap), and that set against the candidates whose true "
             f"error is at least {cap:g} (precision: share of it with true error >= {cap:g}; recall: share of those it holds).", "",
             f"| seed | scorer | Spearman | Kendall | top-50 true error | tied at the boundary | score >= {cap:g} (precision, recall) | top-50 actions (L R F P D T S) |",
             "|---|---|---|---|---|---|---|---|"]
    for i, seed in enumerate(seeds):
        for name in order:
            r = rows[name][i]
            lines.append(f"| {seed} | {label[name]} | {_f(r['spearman'])} | {_f(r['kendall'])} | {r['top']:.2f} | {r['tied']} | {_over(r)} | "
                         + " ".join(f"{c:.0f}" for c in r["actions"]) + " |")
    lines += ["", f"Over the {len(seeds)} seeds (mean / min; for the top-50 error also the max):", "",
              f"| scorer | Spearman mean | Spearman min | Kendall mean | Kendall min | top-50 error mean | top-50 error min | top-50 error max | "
              f"score >= {cap:g}, mean (precision, recall) | top-50 actions, mean (L R F P D T S) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in order:
        rs = rows[name]
        sp, kd, tp = (np.array([r[k] for r in rs]) for k in ("spearman", "kendall", "top"))
        acts = np.mean([r["actions"] for r in rs], 0)
        mean_over = {k: float(np.mean([r[k] for r in rs])) for k in ("over", "precision", "recall")}
        lines.append(f"| {label[name]} | {_f(sp.mean())} | {_f(sp.min())} | {_f(kd.mean())} | {_f(kd.min())} | {tp.mean():.2f} | {tp.min():.2f} | {tp.max():.2f} | "
                     + f"{_over(mean_over, 0)} | " + " ".join(f"{c:.1f}" for c in acts) + " |")
    if checks:
        lines += ["", f"Rebuild check against the experiment's recorded round 1 (`{args.records}`, strategy wav): per seed, Spearman here / recorded "
                  f"and the true error of the {TOP} candidates the experiment's own rng stream and `select` take from these scores / recorded "
                  "`oracle_error_of_chosen`: "
                  + "; ".join(f"seed {s}: {a:.4f} / {b:.4f}, {c:.2f} / {d:.2f}" for s, a, b, c, d in checks) + "."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
