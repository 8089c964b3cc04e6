"""Why the sparse inverse model loses to the vanilla one on Key-Delivery -> Ball-Delivery (issue 15,
Proposition 3.1), and why its seed-set fit varies across seeds on `o6` test. Prints markdown evidence:

1. what the hand and the front cell do under each action in the OOD train and test files;
2. per seed (paper preset, 1,000 OOD-train transitions as in `wav reproduce idm-ood`): which slots the
   mask keeps on the agent, front and carried tokens for each test action, and what it predicts instead;
3. a sweep of the L1 weight, and of the token flags (`fill_flags`: the emptied/filled flags;
   `visible_flags`: the flags bypass the mask, so it hides what a token holds, never how it changed);
4. the inverse model fit on the 200 seed transitions, dynamic accuracy on `o6` test per seed.

    WAV_THREADS=1 nice -n 15 python benchmarks/idm_ood_diagnosis.py --data $D --out benchmarks/results/idm_ood_diagnosis.md

Every fit is a few seconds on one thread (about 60 fits, ~5 minutes). Settings are compared on the test
files here on purpose: this is a diagnosis, and no default is chosen from it.
"""

from __future__ import annotations

import argparse
import collections
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from wav.config import model_preset
from wav.data.io import Transitions, load_transitions
from wav.domains.minigrid import batch
from wav.envs.minigrid.encoding import ACTION_NAMES, DIR_VEC, agent_pose, from_features
from wav.evaluate import inverse_metrics
from wav.experiments.common import scaled_schedule
from wav.models.inverse import SparseInverseModel, tokens
from wav.runtime import set_threads
from wav.train import Rows, fit

FILES = {
    "ood_train": "MiniGrid-Empty-Interact-6x6-o3-train-v0_MultiTaskPolicy_policy_OOD_train_set.npz",
    "ood_test": "MiniGrid-Empty-Interact-6x6-o3-test-v0_MultiTaskPolicy_policy_OOD_test_set.npz",
    "seed": "random_selected_data.npz",
    "o6_test": "MiniGrid-Empty-Interact-6x6-o6-v0_test.npz",
}
TYPE = {1: "empty", 2: "wall", 3: "floor", 5: "key", 6: "ball", 7: "box", 8: "goal", 10: "agent"}
OOD = ("pickup", "drop", "toggle", "swap")


def compositions(tr: Transitions) -> dict[str, collections.Counter]:
    """Per action (pickup..swap): counts of 'hand X->Y; front X->Y' (type; `recolour` when only the colour changes)."""
    s, sn = tr.features()
    (g, c), (gn, cn) = from_features(s), from_features(sn)
    ax, ay, d = agent_pose(g)
    fx, fy, i = ax + DIR_VEC[d, 0], ay + DIR_VEC[d, 1], np.arange(len(s))
    f0, f1 = g[i, fx, fy], gn[i, fx, fy]  # (N, 3) front cell in s and s'
    out = collections.defaultdict(collections.Counter)
    for k in np.flatnonzero(tr.actions >= 3):
        recol = " recolour" if f0[k, 0] == f1[k, 0] and f0[k, 1] != f1[k, 1] else ""
        out[ACTION_NAMES[tr.actions[k]]][f"hand {TYPE[int(c[k, 1])]}->{TYPE[int(cn[k, 1])]}; front {TYPE[int(f0[k, 0])]}->{TYPE[int(f1[k, 0])]}{recol}"] += 1
    return out


def fit_inverse(train: Transitions, seed: int, l1: float = 0.1, fill: bool = False, visible: bool = False, dense: bool = False, schedule=None):
    p = model_preset("paper")
    # the token model this diagnosis studied (no what-changed mask, one fit per seed), whatever the preset's defaults
    cfg = replace(p.inverse, l1=l1, dense=dense, fill_flags=fill, visible_flags=visible, changed_only=False)
    with torch.random.fork_rng(devices=[]):  # as `wav.train.build`
        torch.manual_seed(seed)
        model = SparseInverseModel(cfg)
    fit(model, Rows(*batch(train).tensors()), schedule or replace(p.inverse_train, restarts=1), seed)
    return model


def ood_subset(tr: Transitions, seed: int, n: int = 1000) -> Transitions:
    """The per-seed training subset of `wav reproduce idm-ood`."""
    return tr.subset(np.sort(np.random.default_rng([seed, 7]).choice(len(tr), n, replace=False)))


def kept_slots(model: SparseInverseModel, test: Transitions) -> dict[str, dict]:
    """Per OOD action: accuracy, what it is predicted as, and the kept fraction of each (type, colour, state)
    slot on the agent, front and carried tokens."""
    s, sn = (torch.from_numpy(x) for x in test.features())
    with torch.no_grad():
        logits, m, _ = model(s, sn)
    _, flags = tokens(s, sn)
    pred = logits.argmax(-1).numpy()
    roles = {"agent": flags[..., 1] > 0, "front": flags[..., 2] > 0, "carried": flags[..., 4] > 0}
    out = {}
    for name in OOD:
        a = ACTION_NAMES.index(name)
        sel = test.actions == a
        row = {"acc": float((pred[sel] == a).mean()), "as": {ACTION_NAMES[k]: int(v) for k, v in enumerate(np.bincount(pred[sel], minlength=7)) if v and k != a}}
        for r, rm in roles.items():
            w = rm[torch.from_numpy(sel)].float()  # (n, 37)
            row[r] = ((m[torch.from_numpy(sel)] * w[..., None]).sum((0, 1)) / w.sum().clamp(min=1)).numpy()  # (3,) type, colour, state
        out[name] = row
    return out


def fmt_slots(v: np.ndarray) -> str:
    return "".join(k for k, x in zip("TCS", v) if x > 0.5) or "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of the published files")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--sweep-seeds", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    set_threads(1)
    t0 = time.time()
    d = Path(args.data)
    tr, te = load_transitions(d / FILES["ood_train"]), load_transitions(d / FILES["ood_test"])
    sched = scaled_schedule(replace(model_preset("paper").inverse_train, restarts=1), 1000, 60_000)
    L = ["# Sparse inverse model out of distribution: diagnosis (benchmarks/idm_ood_diagnosis.py)", ""]

    L += ["## 1. What each action does to the hand and the front cell (type of object; counts)", "",
          "| action | Key-Delivery (OOD train) | Ball-Delivery (OOD test) |", "|---|---|---|"]
    ctr, cte = compositions(tr), compositions(te)
    for a in OOD:
        L.append(f"| {a} | {'; '.join(f'{k} ({v})' for k, v in ctr[a].most_common())} | {'; '.join(f'{k} ({v})' for k, v in cte[a].most_common())} |")
    L.append("")

    L += ["## 2. Per seed: accuracy on the OOD test file, what the errors are predicted as, slots kept (T type, C colour, S state) on the agent / front / carried tokens",
          "", "| seed | mask size | " + " | ".join(OOD) + " |", "|---|---|" + "---|" * len(OOD)]
    for seed in range(args.seeds):
        model = fit_inverse(ood_subset(tr, seed), seed, schedule=sched)
        k = kept_slots(model, te)
        size = inverse_metrics(model, te)["mask_size"]
        cells = [f"{100 * r['acc']:.0f}% {r['as'] or ''} A:{fmt_slots(r['agent'])} F:{fmt_slots(r['front'])} H:{fmt_slots(r['carried'])}" for r in k.values()]
        L.append(f"| {seed} | {size:.1f} | " + " | ".join(cells) + " |")
        print(L[-1], flush=True)
    L.append("")

    L += ["## 3. Sweep: L1 weight and token flags (OOD test per-action accuracy %, mean over seeds, [min-max]; mask size)", "",
          f"Seeds 0-{args.sweep_seeds - 1}, 1,000 OOD-train transitions, 60 epochs. `fill`: emptied/filled flags; `visible`: flags not gated by the mask.", "",
          "| model | l1 | " + " | ".join(OOD) + " | left/right | mask |", "|---|---|" + "---|" * (len(OOD) + 2)]
    grid = [("vanilla", 0.0, False, False, True)] + [("sparse", l1, False, False, False) for l1 in (0.0, 0.01, 0.03, 0.1, 0.3)] + \
           [("sparse, fill + visible flags", l1, True, True, False) for l1 in (0.1, 0.3, 1.0)]
    for name, l1, fill, vis, dense in grid:
        rows = [inverse_metrics(fit_inverse(ood_subset(tr, s), s, l1, fill, vis, dense, sched), te) for s in range(args.sweep_seeds)]
        acc = {a: np.array([r["per_action"][a] for r in rows]) * 100 for a in OOD + ("left", "right")}
        lr = (acc["left"] + acc["right"]) / 2
        L.append(f"| {name} | {l1:g} | " + " | ".join(f"{acc[a].mean():.0f} [{acc[a].min():.0f}-{acc[a].max():.0f}]" for a in OOD)
                 + f" | {lr.mean():.0f} [{lr.min():.0f}-{lr.max():.0f}] | {np.mean([r['mask_size'] for r in rows]):.1f} |")
        print(L[-1], flush=True)
    L.append("")

    seed_set, o6 = load_transitions(d / FILES["seed"]), load_transitions(d / FILES["o6_test"])
    L += ["## 4. Inverse model fit on the 200 seed transitions, `o6` test (box toggle recolours), dynamic accuracy per seed", "",
          "| model | l1 | dynamic accuracy per seed 0.. (%) | mean | min | seeds with left or right < 90% | seeds with toggle < 90% |", "|---|---|---|---|---|---|---|"]
    for name, l1, fill, vis in (("sparse (default)", 0.1, False, False), ("sparse, fill + visible flags", 0.1, True, True), ("sparse, fill + visible flags", 0.3, True, True)):
        rows = [inverse_metrics(fit_inverse(seed_set, s, l1, fill, vis), o6, "recolor") for s in range(args.seeds)]
        dyn = np.array([r["dynamic_accuracy"] for r in rows]) * 100
        lr = [s for s, r in enumerate(rows) if min(r["per_action"]["left"], r["per_action"]["right"]) < 0.9]
        tg = [s for s, r in enumerate(rows) if r["per_action"]["toggle"] < 0.9]
        L.append(f"| {name} | {l1:g} | {' / '.join(f'{x:.1f}' for x in dyn)} | {dyn.mean():.1f} | {dyn.min():.1f} | {lr} | {tg} |")
        print(L[-1], flush=True)
    L += ["", f"Wall time {time.time() - t0:.0f} s, one torch thread, on the shared 2-core machine.", ""]
    text = "\n".join(L)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
