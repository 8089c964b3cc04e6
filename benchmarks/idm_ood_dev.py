"""A development version of the Key-Delivery -> Ball-Delivery split, collected by our env (issue 15 part 2):
vanilla against the sparse inverse model at several L1 weights, with the current InverseConfig defaults.

The published OOD files are a test set; this split (scripted Key-Delivery seed 13000 for training,
Ball-Delivery seed 14000 for testing, 5,400 transitions each) is where settings may be compared. Per seed, 1,000
training transitions are drawn as `wav reproduce idm-ood` draws them, with its schedule.

    WAV_THREADS=1 python benchmarks/idm_ood_dev.py --out benchmarks/results/idm_ood_dev.md
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from wav.config import model_preset
from wav.data.collect import collect
from wav.domains.minigrid import train_inverse
from wav.evaluate import inverse_metrics
from wav.experiments.common import scaled_schedule
from wav.runtime import Progress, set_threads

ACTIONS = ("left", "right", "forward", "pickup", "drop", "toggle", "swap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    ap.add_argument("--l1", default="0.1,0.3,1.0", help="L1 weights of the sparse model, comma-separated")
    ap.add_argument("--out", type=Path, default=None, help="markdown report")
    args = ap.parse_args()
    try:
        l1s = [float(x) for x in args.l1.split(",")]
    except ValueError:
        raise SystemExit(f"idm_ood_dev: --l1 must be comma-separated numbers, got {args.l1!r}") from None
    set_threads(1)
    t0 = time.time()
    train = collect("WAV/KeyDelivery-v0", None, "scripted", 5400, 13000, progress=False)[0]
    test = collect("WAV/BallDelivery-v0", None, "scripted", 5400, 14000, progress=False)[0]
    p = model_preset("paper")
    schedule = scaled_schedule(p.inverse_train, 1000, 60_000)
    L = ["# Key-Delivery -> Ball-Delivery, development split of our env (issue 15 part 2)", "",
         f"Train: scripted Key-Delivery, seed 13000; test: scripted Ball-Delivery, seed 14000 ({len(test)} transitions). "
         f"Seeds 0-{args.seeds - 1}, 1,000 training transitions each; InverseConfig defaults of this commit "
         f"(fill_flags {p.inverse.fill_flags}, visible_flags {p.inverse.visible_flags}, changed_only {p.inverse.changed_only}), "
         f"{schedule.epochs} epochs, restarts {schedule.restarts}. Per-action top-1 accuracy (%), mean [min-max] over seeds.", "",
         "| model | l1 | " + " | ".join(ACTIONS) + " | mask size |", "|---|---|" + "---|" * (len(ACTIONS) + 1)]
    progress = Progress("idm_ood_dev")
    for name, l1, dense in [("vanilla", 0.0, True)] + [("sparse", x, False) for x in l1s]:
        rows = []
        for seed in range(args.seeds):
            progress(lambda: f"{name} l1 {l1:g}, seed {seed}, {time.time() - t0:.0f} s")
            sub = train.subset(np.sort(np.random.default_rng([seed, 7]).choice(len(train), 1000, replace=False)))
            model, _ = train_inverse(sub, replace(p.inverse, l1=l1, dense=dense), schedule, seed)
            rows.append(inverse_metrics(model, test, "swap"))
        acc = {a: np.array([r["per_action"][a] for r in rows]) * 100 for a in ACTIONS}
        L.append(f"| {name} | {l1:g} | " + " | ".join(f"{acc[a].mean():.0f} [{acc[a].min():.0f}-{acc[a].max():.0f}]" for a in ACTIONS)
                 + f" | {np.mean([r['mask_size'] for r in rows]):.1f} |")
        print(L[-1], flush=True)
    L += ["", f"Wall time {time.time() - t0:.0f} s, one torch thread, on the shared 2-core machine.", ""]
    text = "\n".join(L)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
