"""How far does pretraining on the 25k corpus take the `generic` world model, before any acquisition?

REFERENCE §4: the published world models are not trained from scratch but from a model trained on the
25k-transition video file. This measures, on a DEVELOPMENT policy set (make-testset seed 31,000, not the
acquisition test set), the Prediction Error and dynamic accuracy of the `generic` world model
(1) trained on the 200 published seed transitions from scratch, (2) after pretraining on the video file
for E epochs, with its recorded actions or with actions inferred by a sparse inverse model fit on the
seed set (action-free), and (3) after that pretraining plus the seed-set fit of the acquisition protocol.
It chose the `world_model_pretrain` schedule's epoch count.

`--part finetune` instead fine-tunes one pretrained model (recorded actions, `--epochs`) on the seed set
with three recipes: the protocol's seed-set fit, the published schedule (300 epochs, lr 1e-4, batch 64)
on every weight, and that schedule with the conv trunk frozen (the heads only, as the published code
freezes its encoder): how much of the net the labels may move.

    python benchmarks/world_pretrain.py --official $WAV_OFFICIAL_DATA --epochs 1,3,10,20 \
        --out benchmarks/results/world_pretrain.md
    python benchmarks/world_pretrain.py --official $WAV_OFFICIAL_DATA --part finetune --epochs 10 \
        --out benchmarks/results/world_finetune.md
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import replace
from pathlib import Path

VIDEO = "MiniGrid-Empty-Interact-6x6-o3-v0_video_pretraing.npz"
SEED = "random_selected_data.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"), required=os.environ.get("WAV_OFFICIAL_DATA") is None)
    ap.add_argument("--epochs", default="1,3,10,20", help="comma-separated pretraining epoch counts")
    ap.add_argument("--per-action", type=int, default=300, help="transitions per action of the development policy set")
    ap.add_argument("--part", default="sweep", choices=["sweep", "finetune"], help="sweep: epochs x labels; finetune: fine-tune recipes")
    ap.add_argument("--seeds", default="0,1", help="fine-tune seeds (--part finetune)")
    ap.add_argument("--work", default="runs/bench-world-pretrain")
    ap.add_argument("--out", default="benchmarks/results/world_pretrain.md")
    args = ap.parse_args()
    epochs = [int(e) for e in args.epochs.split(",")]
    if min(epochs) < 1:
        raise SystemExit("--epochs: every count must be >= 1")

    from wav.config import model_preset
    from wav.data.io import load_transitions
    from wav.domains.minigrid import pretrain_world_model, test_metrics, train_world_model
    from wav.experiments.common import development_set
    from wav.runtime import cpu_description, set_threads

    set_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    video = load_transitions(os.path.join(args.official, VIDEO))
    seed_set = load_transitions(os.path.join(args.official, SEED))
    dev = development_set(work, args.per_action)
    p = model_preset("generic")

    def score(model) -> str:
        m = test_metrics(model, dev)
        return f"{m['pred_error']:.3f} | {m['dynamic_accuracy']:.3f}"

    if args.part == "finetune":
        return finetune(args, epochs[0], video, seed_set, dev, p, score)
    rows = []
    scratch, _ = train_world_model(seed_set, p.world_model, p.world_model_train, 0)
    rows.append(f"| none | — | — | — | — | {score(scratch)} | — |")
    print(rows[-1], flush=True)
    for e in epochs:
        for labels in ("recorded", "inferred"):
            t = time.perf_counter()
            pre, info = pretrain_world_model(video, p.world_model, replace(p.world_model_pretrain, epochs=e), labels, seed_set, p.inverse, p.inverse_train)
            wall = time.perf_counter() - t
            fine, _ = train_world_model(seed_set, p.world_model, p.world_model_train, 0, copy.deepcopy(pre))
            agree = f"{info['label_agreement']:.3f}" if "label_agreement" in info else "1 (recorded)"
            rows.append(f"| {labels} | {e} | {agree} | {score(pre)} | {score(fine)} | {wall:.0f} |")
            print(rows[-1], flush=True)
    write(args.out, [
        "# World-model pretraining on the 25k video file (`python benchmarks/world_pretrain.py`)",
        "",
        f"Development policy set: make-testset seed 31,000, {len(dev)} transitions ({args.per_action} per action), not the",
        "acquisition test set. `generic` world model; seed set = the 200 published seed transitions; the seed-set fit is the",
        "acquisition protocol's (`world_model_train`). Pretraining seconds: wall time on one thread (inferred: with the",
        f"inverse model's fit), under whatever load the machine had; {cpu_description()}.",
        "",
        "| labels | pretraining epochs | inferred = recorded | pretrained: error | dyn. acc. | + seed-set fit: error | dyn. acc. | pretraining s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])


def write(path: str, lines: list[str]) -> None:
    """The markdown report: written to `path` and printed."""
    text = "\n".join(lines)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    print(text)


def finetune(args, epochs: int, video, seed_set, dev, p, score) -> None:
    """One pretrained model, three ways to fine-tune it on the seed set."""
    from wav.config import TrainConfig
    from wav.domains.minigrid import pretrain_world_model, train_world_model
    from wav.runtime import cpu_description

    t = time.perf_counter()
    pre, _ = pretrain_world_model(video, p.world_model, replace(p.world_model_pretrain, epochs=epochs), "recorded")
    wall = time.perf_counter() - t
    published = TrainConfig(epochs=300, lr=1e-4, batch_size=64, val_fraction=0.0)
    rows = [f"| pretrained only | — | {score(pre)} |"]
    print(rows[-1], flush=True)
    for seed in (int(k) for k in args.seeds.split(",")):
        for name, train, frozen in (("protocol seed-set fit (`world_model_train`)", p.world_model_train, False),
                                    ("300 epochs, lr 1e-4, every weight", published, False),
                                    ("300 epochs, lr 1e-4, conv trunk frozen", published, True)):
            model = copy.deepcopy(pre)
            for n, w in model.named_parameters():
                w.requires_grad_(not (frozen and n.startswith("trunk")))
            model, _ = train_world_model(seed_set, p.world_model, train, seed, model)
            rows.append(f"| {name} | {seed} | {score(model)} |")
            print(rows[-1], flush=True)
    write(args.out, [
        "# Fine-tuning a pretrained world model on the seed set (`python benchmarks/world_pretrain.py --part finetune`)",
        "",
        f"`generic` world model pretrained {epochs} epochs on the 25k video file with its recorded actions ({wall:.0f} s, one thread,",
        f"{cpu_description()}), then fine-tuned on the 200 published seed transitions. Development policy set: make-testset",
        f"seed 31,000, {len(dev)} transitions, not the acquisition test set.",
        "",
        "| fine-tune | seed | error | dyn. acc. |",
        "|---|---|---|---|",
        *rows,
        "",
    ])


if __name__ == "__main__":
    main()
