"""Issue 15 part 2, second half: the sparse inverse model fit on the 200 published seed transitions varies
82-99% dynamic accuracy on `o6` test across seeds. Does keeping the best of N restarts (lowest deterministic
loss on the 200 training transitions, `TrainConfig.restarts`) remove the bad seeds; do the identity-free
flags (`fill_flags`, `visible_flags`) remove the recolour-toggle misses; does a mask that may only keep
the slots an action changed (`changed_only`) generalise to the compositions the 200 transitions lack?

The recipe is CHOSEN on a development set: random play of our env with 6 objects and recolouring box
toggles (like `o6`, but collected here, seed 4242), over development seeds 10-19. The published `o6` test
file is then read for seeds 0-9 (the report seeds). Every fit is one member: the model is built from seed s
and fitted with seed s + 1000 j (j = 0, 1, 2), exactly as member j of `TrainConfig(restarts=3)`; "best of
N" keeps, per seed, the first N members' lowest training loss, so restarts are read off the same fits.

    python benchmarks/inverse_seed_stability.py --official $WAV_OFFICIAL_DATA --out benchmarks/results/inverse_seed_stability.md

Each fit is cached in `--cache` (jsonl), so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from wav.config import model_preset
from wav.data.io import load_transitions
from wav.domains.minigrid import batch
from wav.evaluate import inverse_metrics
from wav.experiments.asymmetry import inverse_ceiling, random_play
from wav.models.inverse import SparseInverseModel
from wav.runtime import Progress, set_threads
from wav.train import MEMBER_SEED_STRIDE, Rows, build, fit, _eval_loss

RECIPES = {  # name -> InverseConfig fields over the `paper` preset's (spelled out in full, whatever the preset's defaults)
    "token (before this study)": dict(fill_flags=False, visible_flags=False, changed_only=False),
    "token + flags": dict(fill_flags=True, visible_flags=True, changed_only=False),
    "what changed + flags": dict(fill_flags=True, visible_flags=True, changed_only=True),
}
DEV_SEEDS, REPORT_SEEDS, MEMBERS = range(10, 20), range(0, 10), 3


def fit_member(train, recipe: str, seed: int, member: int) -> tuple[SparseInverseModel, float]:
    p = model_preset("paper")
    model = build(SparseInverseModel, replace(p.inverse, **RECIPES[recipe]), seed)
    rows = Rows(*batch(train).tensors())
    fit(model, rows, replace(p.inverse_train, restarts=1), seed + MEMBER_SEED_STRIDE * member)
    return model, _eval_loss(model, rows)


def summary(rec: dict, box: str) -> dict:
    return {"dyn": rec["dynamic_accuracy"], "left": rec["per_action"]["left"], "right": rec["per_action"]["right"],
            "toggle": rec["per_action"]["toggle"], "mask": rec["mask_size"]}


def best_of(fits: list[dict], n: int) -> dict:
    return min(fits[:n], key=lambda f: f["train_loss"])


def table(rows: dict, seeds, split: str, title: str) -> list[str]:
    out = [f"### {title}", "", "| recipe | best of | dynamic accuracy per seed (%) | mean | min | seeds < 95% | training loss of the kept fit, max |",
           "|---|---|---|---|---|---|---|"]
    for recipe in RECIPES:
        for n in range(1, MEMBERS + 1):
            kept = [best_of(rows[(recipe, s)], n) for s in seeds]
            acc = np.array([k[split]["dyn"] for k in kept]) * 100
            low = [s for s, a in zip(seeds, acc) if a < 95]
            out.append(f"| {recipe} | {n} | {' / '.join(f'{a:.1f}' for a in acc)} | {acc.mean():.1f} | {acc.min():.1f} | {low} | "
                       f"{max(k['train_loss'] for k in kept):.3f} |")
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, required=True, help="folder of the published MiniGrid files")
    ap.add_argument("--cache", type=Path, default=Path("runs/inverse-seed-stability.jsonl"), help="per-fit records (resume)")
    ap.add_argument("--out", type=Path, default=None, help="markdown report")
    args = ap.parse_args()
    train_path, o6_path = args.official / "random_selected_data.npz", args.official / "MiniGrid-Empty-Interact-6x6-o6-v0_test.npz"
    for f in (train_path, o6_path):
        if not f.exists():
            raise SystemExit(f"inverse_seed_stability: {f} not found")
    set_threads(1)
    t0 = time.time()
    train, o6 = load_transitions(train_path), load_transitions(o6_path)
    dev = random_play(6, 0, 2000, 4242)
    done = {}
    if args.cache.exists():
        for line in args.cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["recipe"], r["seed"], r["member"])] = r
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(r, s, j) for r in RECIPES for s in (*DEV_SEEDS, *REPORT_SEEDS) for j in range(MEMBERS)]
    progress = Progress("inverse fits")
    for i, (recipe, seed, j) in enumerate(jobs):
        progress(lambda: f"{i}/{len(jobs)} fits, {time.time() - t0:.0f} s")
        if (recipe, seed, j) in done:
            continue
        model, loss = fit_member(train, recipe, seed, j)
        tr = inverse_metrics(model, train, "swap")
        r = {"recipe": recipe, "seed": seed, "member": j, "train_loss": loss, "train_accuracy": tr["accuracy"],
             "dev": summary(inverse_metrics(model, dev, "recolor"), "recolor"), "o6": summary(inverse_metrics(model, o6, "recolor"), "recolor")}
        done[(recipe, seed, j)] = r
        with args.cache.open("a") as f:
            f.write(json.dumps(r) + "\n")
    rows = {(r, s): [done[(r, s, j)] for j in range(MEMBERS)] for r in RECIPES for s in (*DEV_SEEDS, *REPORT_SEEDS)}
    L = ["# Inverse model on the 200 seed transitions: seed stability (issue 15 part 2)", "",
         f"Development set: random play of our env, 6 objects, recolouring box toggles, 2,000 transitions (seed 4242; "
         f"perfect-inverse ceiling {inverse_ceiling(dev) * 100:.1f}%). Report set: published `o6` test ({len(o6)} transitions, "
         f"ceiling {inverse_ceiling(o6) * 100:.1f}%). Best of N = of members 0..N-1, the lowest deterministic loss on the 200 "
         "training transitions (what `TrainConfig(restarts=N)` keeps).", ""]
    L += table(rows, DEV_SEEDS, "dev", "Development set, seeds 10-19 (the recipe is chosen here)")
    L += table(rows, REPORT_SEEDS, "o6", "Published `o6` test, seeds 0-9 (report)")
    L += ["### Does the training loss see the bad fits? (all members, both seed ranges)", "",
          "| recipe | fits | training accuracy < 100%: fits, their mean dev accuracy | training accuracy 100%: fits, mean dev accuracy |", "|---|---|---|---|"]
    for recipe in RECIPES:
        fits = [f for s in (*DEV_SEEDS, *REPORT_SEEDS) for f in rows[(recipe, s)]]
        bad, good = [f for f in fits if f["train_accuracy"] < 1], [f for f in fits if f["train_accuracy"] == 1]
        m = lambda fs: f"{np.mean([f['dev']['dyn'] for f in fs]) * 100:.1f}" if fs else "-"
        L.append(f"| {recipe} | {len(fits)} | {len(bad)}, {m(bad)} | {len(good)}, {m(good)} |")
    L += ["", f"Wall time {time.time() - t0:.0f} s (cached fits not counted), one torch thread, on the shared 2-core machine.", ""]
    text = "\n".join(L)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
