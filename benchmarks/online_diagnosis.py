"""Why online errors rise: what refits on exploration data do to the generic world model.

For each seed: 200 uniform-random exploration steps in the multi-task env (episodes of 50, as
`wav reproduce online` random), then, from the seed-set world model and with the online refit recipe:
eight refits on the seed set alone (over-training control), eight refits on the growing exploration data
(as online), one refit on seed + all 200 exploration transitions, one on seed + 200 random POOL
transitions. Also counts how many pickups change the hand, in the exploration data and in the test set.

    python benchmarks/online_diagnosis.py --official $WAV_OFFICIAL_DATA --test runs/acq/generic-overlap/data/test_overlap.npz
"""

from __future__ import annotations

import argparse
import copy
import os

import numpy as np


def explore(seed: int, steps: int = 200, episode_steps: int = 50):
    import gymnasium as gym

    import wav.envs  # noqa: F401
    from wav.domains.minigrid import _hidden_state
    from wav.data.io import Transitions

    env = gym.make("WAV/MultiTask-v0", box_toggle="swap").unwrapped
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("states", "carried", "actions", "next_states", "next_carried")}
    episode = 0
    for t in range(steps):
        grid, carried, _, _ = _hidden_state(env)
        a = int(rng.integers(7))
        obs, _, term, trunc, _ = env.step(a)
        for k, v in zip(cols, (grid, carried, a, obs["grid"], obs["carried"])):
            cols[k].append(v)
        if term or trunc or (t + 1) % episode_steps == 0:
            episode += 1
            env.reset(seed=1000 * seed + episode)
    return Transitions.from_arrays(*(np.stack(cols[k]) for k in cols))


def hand_changes(tr) -> tuple[int, int]:
    s, sn = tr.features()
    pick = tr.actions == 3
    return int(pick.sum()), int((pick & (s[:, 108:] != sn[:, 108:]).any(1)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default=os.environ.get("WAV_OFFICIAL_DATA"))
    ap.add_argument("--test", required=True, help="the online experiment's policy test set")
    ap.add_argument("--seeds", default="0,1")
    args = ap.parse_args()

    from wav.config import model_preset
    from wav.data.io import load_transitions
    from wav.config import ROUND_PRESETS
    from wav.domains.minigrid import test_metrics, train_world_model
    from wav.runtime import set_threads
    from wav.data.io import Transitions

    set_threads(1)
    seed_set = load_transitions(os.path.join(args.official, "random_selected_data.npz"))
    pool = load_transitions(os.path.join(args.official, "MiniGrid-Empty-Interact-6x6-o3-v0_MultiTaskPolicy_data_pool.npz"))
    test = load_transitions(args.test)
    p, refit = model_preset("generic"), ROUND_PRESETS["paper"].refit
    err = lambda m: test_metrics(m, test)["pred_error"]  # noqa: E731
    print(f"test set: pickups {hand_changes(test)[0]}, of which change the hand {hand_changes(test)[1]}")
    for seed in (int(s) for s in args.seeds.split(",")):
        data = explore(seed)
        wm0, _ = train_world_model(seed_set, p.world_model, p.world_model_train, seed)
        ctrl, onl, w, v = [], [], copy.deepcopy(wm0), copy.deepcopy(wm0)
        for t in range(8):
            w, _ = train_world_model(seed_set, p.world_model, refit, seed + t, copy.deepcopy(w))
            ctrl.append(err(w))
            lab = Transitions.concat([seed_set, data.subset(np.arange(25 * (t + 1)))])
            v, _ = train_world_model(lab, p.world_model, refit, seed + t, copy.deepcopy(v))
            onl.append(err(v))
        one, _ = train_world_model(Transitions.concat([seed_set, data]), p.world_model, refit, seed, copy.deepcopy(wm0))
        pooled = Transitions.concat([seed_set, pool.subset(np.random.default_rng(seed).choice(len(pool), 200, replace=False))])
        ref, _ = train_world_model(pooled, p.world_model, refit, seed, copy.deepcopy(wm0))
        per_action = {k: round(float(x), 2) for k, x in test_metrics(v, test)["per_action_error"].items()}
        print(f"seed {seed}: start {err(wm0):.2f} | 8 refits on the seed set {np.round(ctrl, 2).tolist()} | 8 online-like refits {np.round(onl, 2).tolist()}"
              f" | one refit seed + 200 explored {err(one):.2f} | one refit seed + 200 pool {err(ref):.2f}")
        print(f"  exploration pickups {hand_changes(data)[0]}, of which change the hand {hand_changes(data)[1]}; per-action error after online-like: {per_action}")


if __name__ == "__main__":
    main()
