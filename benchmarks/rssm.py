"""Cost and data scaling of the robot world model (issue 13 item 1) and the latent inverse model (item 2) on
the synthetic linear-Gaussian world of `wav.data.sequences.linear_world` (D = 50: a 14-D block the 7-D
action moves, 36 noise-driven distractors).

    WAV_THREADS=1 nice -n 5 python benchmarks/rssm.py --out benchmarks/results/rssm.md

1. One RSSM update (16 windows x 32 steps, Adam, clip) at `debug`, `cpu`, `cpu` with the open-loop loss
   (`openloop_scale`), `cpu` with a 5-member ensemble,
   `paper` (3 updates) and `paper` with 6-channel 64x64 images (2 updates), each in its own process so
   that its peak resident memory is its own. Target: `cpu` <= 60 ms on 2 cores.
2. Open-loop error (posterior on frame 1, prior rolled 31 steps with the true actions, squared error in
   state units, mean over dims) on 32 held-out trajectories versus training trajectories, `cpu` preset,
   a fixed number of updates per size (so only the data changes). Does it still fall with more data?
3. The latent inverse model (`cpu` preset, sparse and dense): action R^2 per dim on held-out
   trajectories and the fraction of each layout block its mask keeps.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from wav.data.sequences import ImageSequenceBatch, Windows, eval_windows, inverse_triples, linear_world
from wav.models.latent_inverse import LatentInverseModel
from wav.models.latent_inverse import preset as inverse_preset
from wav.models.rssm import RSSM, count_parameters, preset
from wav.runtime import cpu_description, set_threads
from wav.train import Rows


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def updates(model, sampler, n: int, lr: float, batch_size: int, seed: int = 0) -> list[float]:
    """`n` Adam updates with the model's gradient clip (the shared loop's step); seconds of each."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    seconds: list[float] = []
    while len(seconds) < n:
        for batch in sampler.epoch(batch_size, g):
            t = time.perf_counter()
            loss = model.training_loss(*batch, generator=g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), model.clip_grad)
            opt.step()
            seconds.append(time.perf_counter() - t)
            if len(seconds) == n:
                break
    model.eval()
    return seconds


class WithImages:
    """Windows plus random images: the conv encoder/decoder's cost does not depend on what they show."""

    def __init__(self, windows: Windows, channels: int):
        self.windows, self.channels = windows, channels

    def epoch(self, batch_size: int, generator: torch.Generator):
        for (b,) in self.windows.epoch(batch_size, generator):
            images = torch.rand(*b.states.shape[:2], self.channels, 64, 64, generator=generator)
            yield (ImageSequenceBatch(b.states, b.actions, b.is_first, images),)


def parse_spec(spec: str) -> tuple[str, dict]:
    """'cpu' or 'cpu:members=5,image_channels=6' -> (preset name, integer overrides)."""
    name, _, rest = spec.partition(":")
    return name, {k: int(v) for k, v in (kv.split("=") for kv in rest.split(",") if kv)}


def time_one(spec: str, n: int) -> dict:
    """Run in a child process: median seconds of one update at a preset spec, and peak memory."""
    set_threads()
    trajs, _ = linear_world(24, 63, np.random.default_rng(0))
    base = peak_mb()
    name, overrides = parse_spec(spec)
    torch.manual_seed(0)
    model = RSSM(preset(name, **overrides))
    sampler = Windows(trajs, 32)
    if model.cfg.image_channels:
        sampler = WithImages(sampler, model.cfg.image_channels)
    secs = updates(model, sampler, n, lr=model.cfg.lr, batch_size=16)
    timed = secs[1:] if len(secs) > 1 else secs  # the first update pays one-off allocations
    return {"preset": spec, "params": count_parameters(model), "updates": n, "median_ms": 1000 * float(np.median(timed)),
            "first_ms": 1000 * secs[0], "peak_mb": peak_mb(), "import_mb": base, "threads": torch.get_num_threads()}


def open_loop(n_train: int, n_updates: int, lr: float, seed: int = 0) -> dict:
    """Train a `cpu` RSSM on `n_train` trajectories for `n_updates` updates; held-out open-loop error."""
    trajs, layout = linear_world(n_train, 63, np.random.default_rng(seed))
    ev = eval_windows(linear_world(32, 63, np.random.default_rng(1000))[0], 32)  # 64 windows of 32
    torch.manual_seed(seed)
    model = RSSM(preset("cpu"))
    t = time.perf_counter()
    updates(model, Windows(trajs, 32), n_updates, lr=lr, batch_size=16, seed=seed)
    seconds = time.perf_counter() - t
    with torch.no_grad():
        err = model.open_loop_error(ev)  # (64, 31)
        ctx = type(ev)(ev.states[:, :1], ev.actions[:, :1], ev.is_first[:, :1])
        sq = (model.imagine(model.observe(ctx), ev.actions[:, :-1]) - ev.states[:, 1:]) ** 2
    copy = float(((ev.states[:, 1:] - ev.states[:, :1]) ** 2).mean())
    return {"n_train": n_train, "updates": n_updates, "lr": lr, "error": float(err.mean()), "error_ee": float(sq[..., layout["ee"]].mean()),
            "error_object": float(sq[..., layout["object"]].mean()), "error_step1": float(err[:, 0].mean()), "copy_baseline": copy, "seconds": seconds}


def inverse(dense: bool, n_train: int = 32, n_updates: int = 1500) -> dict:
    trajs, layout = linear_world(n_train, 63, np.random.default_rng(0))
    s, a, sn = inverse_triples(linear_world(16, 63, np.random.default_rng(1000))[0])
    torch.manual_seed(0)
    model = LatentInverseModel(inverse_preset("cpu", dense=dense))
    t = time.perf_counter()
    updates(model, Rows(*inverse_triples(trajs)), n_updates, lr=model.cfg.lr, batch_size=128)
    seconds = time.perf_counter() - t
    with torch.no_grad():
        pred, mask = model.infer_with_mask(s, sn)
    r2 = 1 - ((pred - a) ** 2).sum(0) / ((a - a.mean(0)) ** 2).sum(0)
    kept = mask.mean(0)
    return {"dense": dense, "mse": float(((pred - a) ** 2).mean()), "r2": [round(float(x), 4) for x in r2], "seconds": seconds,
            "kept_position": float(kept[0:7].mean()), "kept_velocity": float(kept[7:14].mean()), "kept_object": float(kept[layout["object"]].mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/rssm.md")
    p.add_argument("--sizes", default="8,16,32,64,128", help="training trajectories for the scaling sweep")
    p.add_argument("--updates", type=int, default=1500, help="updates per scaling run")
    p.add_argument("--lr", type=float, default=None, help="learning rate of the scaling runs (default: the cpu preset's)")
    p.add_argument("--compare-lr", type=float, default=1e-3, help="one more run at the largest size with this learning rate")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=20, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(time_one(args.one, args.n)))
        return
    command = "WAV_THREADS=1 nice -n 5 python " + shlex.join(["benchmarks/rssm.py", *sys.argv[1:]])
    set_threads()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    timings = []
    for name, n in (("debug", 30), ("cpu", 30), ("cpu:openloop_scale=1", 30), ("cpu:members=5", 20), ("paper", 3), ("paper:image_channels=6", 2)):
        out = subprocess.run([sys.executable, __file__, "--one", name, "--n", str(n)], capture_output=True, text=True, check=True)
        timings.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(timings[-1], flush=True)
    sizes = [int(x) for x in args.sizes.split(",")]
    lr = preset("cpu").lr if args.lr is None else args.lr
    scaling = []
    for n in sizes:
        scaling.append(open_loop(n, args.updates, lr))
        print(scaling[-1], flush=True)
    other = open_loop(sizes[-1], args.updates, args.compare_lr) if args.compare_lr and args.compare_lr != lr else None
    inv = [inverse(False), inverse(True)]
    for row in inv:
        print(row, flush=True)

    lines = [
        "# RSSM world model and latent inverse model (benchmarks/rssm.py)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {cpu_description()}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s), on a shared 2-core box (another engineer's jobs running); measured {stamp}.",
        "Data: `wav.data.sequences.linear_world` (D = 50 = 7 position + 7 velocity moved by the 7-D action + 36 noise-driven "
        "distractors), trajectories of 63 actions.",
        "",
        "## One update (16 windows x 32 steps, D = 50, A = 7)",
        "",
        "| preset (overrides) | parameters | median update | first update | peak RSS (after import) | target |",
        "|---|---|---|---|---|---|",
    ]
    for t in timings:
        target = {"cpu": "<= 60 ms on 2 cores", "cpu:members=5": "< 5x cpu (one grouped call per layer)"}.get(t["preset"], "")
        lines.append(f"| {t['preset']} | {t['params']:,} | {t['median_ms']:.1f} ms (of {t['updates']}) | {t['first_ms']:.0f} ms | "
                     f"{t['peak_mb']:.0f} MB ({t['import_mb']:.0f} MB) | {target} |")
    lines += ["", "Presets: " + "; ".join(f"`{k}` {json.dumps({f: v for f, v in asdict(preset(k)).items() if f in ('deter', 'hidden', 'stoch', 'classes', 'units', 'layers', 'lr')})}" for k in ("debug", "cpu", "paper")), ""]
    lines += [
        f"## Open-loop error vs training data (`cpu`, {args.updates} updates at lr {lr:g}, batch 16 x 32, seed 0)",
        "",
        "Held out: 32 trajectories cut into 64 windows of 32; posterior on frame 1, prior rolled 31 steps with the true actions. "
        "`copy` = predicting the first frame for every step.",
        "",
        "| training trajectories | error (all dims) | action block | distractors | step 1 | copy baseline | train seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in scaling + ([other] if other else []):
        tag = "" if r["lr"] == lr else f" (lr {r['lr']:g})"
        lines.append(f"| {r['n_train']}{tag} | {r['error']:.3f} | {r['error_ee']:.3f} | {r['error_object']:.3f} | {r['error_step1']:.3f} | "
                     f"{r['copy_baseline']:.3f} | {r['seconds']:.0f} |")
    lines += [
        "",
        "## Latent inverse model (`cpu` preset, 32 training trajectories, 1500 updates, batch 128)",
        "",
        "| model | action MSE | R^2 per action dim | kept: position | velocity | distractors | train seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in inv:
        lines.append(f"| {'dense (vanilla)' if r['dense'] else 'sparse'} | {r['mse']:.4f} | {', '.join(f'{x:.3f}' for x in r['r2'])} | "
                     f"{r['kept_position']:.2f} | {r['kept_velocity']:.2f} | {r['kept_object']:.2f} | {r['seconds']:.0f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
