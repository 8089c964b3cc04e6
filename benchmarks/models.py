"""Cost of the verifier's MiniGrid models: one verification pass over 28,000 states (sample a subgoal,
infer the action, predict, score), training time of each model at the `paper` preset, peak memory.

    nice -n 5 python benchmarks/models.py --data /work/shared/official-minigrid --out benchmarks/results/models.md

Targets (issue 3): verification pass <= 2 s on 2 cores; each model's training <= 5 minutes on 2 cores.
Training data: world model on the o6 train set (2,000), inverse model on the 200 seed transitions,
subgoal generator on the 25k video set. `--skip-train` times the pass only (untrained weights: the
cost does not depend on them, except that a trained sparse mask lets the inverse model encode fewer
tokens: `--ckpts` times the pass with trained checkpoints too).
"""

from __future__ import annotations

import argparse
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from wav.config import TrainConfig, model_preset
from wav.cycle import verify
from wav.data.io import load_transitions
from wav.envs.minigrid.encoding import to_features
from wav.envs.minigrid.states import random_states
from wav.models import GridWorldModel, MixtureSubgoalGenerator, SparseInverseModel
from wav.runtime import cpu_description, set_threads, torch_generator
from wav.domains.minigrid import train_inverse, train_subgoal, train_world_model
from wav.train import build, load_checkpoint

FILES = {
    "pool": "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz",
    "o6_train": "MiniGrid-Empty-Interact-6x6-o6-v0_train.npz",
    "seed": "random_selected_data.npz",
    "video": "MiniGrid-Empty-Interact-6x6-o3-v0_video_pretraing.npz",
}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def verification_pass(states: torch.Tensor, sg, inv, wm, repeats: int = 3) -> dict[str, float]:
    """Best-of-`repeats` seconds of one reverse cycle (K = 1) over all states, in chunks of 4,096."""
    best = float("inf")
    for r in range(repeats):
        g = torch_generator(r)
        t = time.perf_counter()
        for i in range(0, len(states), 4096):
            verify(states[i : i + 4096], sg, inv, wm, k=1, generator=g)
        best = min(best, time.perf_counter() - t)
    return {"seconds": best, "states": len(states)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="folder of the published files (else random states, no training)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--skip-train", action="store_true", help="time the verification pass only")
    p.add_argument("--ckpts", nargs=3, default=None, metavar=("SUBGOAL", "INVERSE", "WORLD_MODEL"),
                   help="also time the pass with these trained checkpoints (from `wav train ...`)")
    p.add_argument("--out", default=None, help="write the results as markdown here")
    args = p.parse_args()
    set_threads(args.threads)
    preset = model_preset("paper")
    rows = []
    if args.data:
        pool, _ = load_transitions(Path(args.data) / FILES["pool"]).features()
        states = torch.from_numpy(pool[:28000])
    else:
        g, c = random_states(np.random.default_rng(0), 28000)
        states = torch.from_numpy(to_features(g, c))
    untrained = [build(c, cfg, 0) for c, cfg in ((MixtureSubgoalGenerator, preset.subgoal), (SparseInverseModel, preset.inverse), (GridWorldModel, preset.world_model))]
    v = verification_pass(states, *untrained)
    rows.append((f"verification pass (subgoal -> inverse -> world model -> score), {v['states']:,} states, K = 1, untrained weights", f"{v['seconds']:.2f} s", "<= 2 s"))
    if args.ckpts:
        trained = [load_checkpoint(path, kind) for path, kind in zip(args.ckpts, ("subgoal", "inverse", "world-model"))]
        v = verification_pass(states, *trained)
        rows.append((f"verification pass, trained checkpoints (sparse mask: fewer inverse-model tokens), {v['states']:,} states, K = 1", f"{v['seconds']:.2f} s", "<= 2 s"))
    if args.data and not args.skip_train:
        small = load_transitions(Path(args.data) / FILES["o6_train"]).subset(slice(0, 300))
        _, hist = train_world_model(small, preset.world_model, TrainConfig(epochs=300, lr=1e-4, batch_size=64, val_fraction=0.0), seed=0)
        rows.append(("world-model retraining as in the acquisition rounds (300 transitions, 300 epochs, batch 64)", f"{hist.seconds:.1f} s", "a few seconds"))
        for name, fn, file, cfg, tcfg in (
            ("world model", train_world_model, "o6_train", preset.world_model, preset.world_model_train),
            ("sparse inverse model", train_inverse, "seed", preset.inverse, preset.inverse_train),
            ("subgoal generator", train_subgoal, "video", preset.subgoal, preset.subgoal_train),
        ):
            tr = load_transitions(Path(args.data) / FILES[file])
            _, hist = fn(tr, cfg, tcfg, seed=0)
            rows.append((f"train {name} (paper preset, {len(tr):,} transitions, {len(hist.train_loss)} epochs)", f"{hist.seconds:.0f} s", "<= 300 s"))
    rows.append(("peak resident memory of this process", f"{peak_mb():.0f} MB", "reference"))
    cmd = "nice -n 5 python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        "# Model costs (benchmarks/models.py)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {cpu_description()}, Python {platform.python_version()}, torch {torch.__version__}, {args.threads} torch thread(s), "
        f"on a shared 2-core box (other jobs running); measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
