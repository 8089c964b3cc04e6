"""How far does pretraining on the 25k corpus take the `generic` world model, before any acquisition?

REFERENCE §4: the published world models are not trained from scratch but from a model trained on the
25k-transition video file. This measures, on a DEVELOPMENT policy set (make-testset seed 31,000, not the
acquisition test set), the Prediction Error and dynamic accuracy of the `generic` world model
(1) trained on the 200 published seed transitions from scratch, (2) after pretraining on the video file
for E epochs, with its recorded actions or with actions inferred by a sparse inverse model fit on the
seed set (action-free), and (3) after that pretraining plus the seed-set fit of the acquisition protocol.
It chose the `world_model_pretrain` schedule's epoch count.

    python benchmarks/world_pretrain.py --official $WAV_OFFICIAL_DATA --epochs 1,3,10,20 \
        --out benchmarks/results/world_pretrain.md
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
    ap.add_argument("--work", default="runs/bench-world-pretrain")
    ap.add_argument("--out", default="benchmarks/results/world_pretrain.md")
    args = ap.parse_args()
    epochs = [int(e) for e in args.epochs.split(",")]
    if min(epochs) < 1:
        raise SystemExit("--epochs: every count must be >= 1")

    from wav.config import model_preset
    from wav.data.collect import make_testset
    from wav.data.io import load_transitions
    from wav.domains.minigrid import pretrain_world_model, test_metrics, train_world_model
    from wav.experiments.common import cached_transitions
    from wav.runtime import cpu_description, set_threads

    set_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    video = load_transitions(os.path.join(args.official, VIDEO))
    seed_set = load_transitions(os.path.join(args.official, SEED))
    dev = cached_transitions(work / f"dev_{args.per_action}.npz", lambda: make_testset(args.per_action, None, 31_000)[0])
    p = model_preset("generic")

    def score(model) -> str:
        m = test_metrics(model, dev)
        return f"{m['pred_error']:.3f} | {m['dynamic_accuracy']:.3f}"

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
    text = "\n".join([
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
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
