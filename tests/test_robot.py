"""Robot setting (wav.envs.manipulation, wav.robot, wav.data.robot_io). Simulator tests skip cleanly
without the extras; layout, schedule and partition tests need only the core install."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from wav.data.robot_io import Trajectory
from wav.envs.manipulation import TASKS, StateLayout
from wav.robot.build import partition
from wav.robot.policy import ChunkActor, DiffusionPolicy, PolicyConfig, alphas_cumprod, train_policy, windows

ROBOSUITE_TASKS = [t for t, s in TASKS.items() if s.backend == "robosuite"]
MANISKILL_TASKS = [t for t, s in TASKS.items() if s.backend == "maniskill"]


def _traj(t=5, d=4, source="expert", success=True, seed=0):
    rng = np.random.default_rng(seed)
    return Trajectory(
        states=rng.normal(size=(t + 1, d)).astype(np.float32),
        actions=rng.uniform(-1, 1, (t, 7)).astype(np.float32),
        rewards=np.zeros(t, np.float32),
        dones=np.zeros(t, bool),
        success=success,
        source=source,
        seed=seed,
    )


LAYOUT = StateLayout(("eef", "grip", "cube"), (2, 1, 1), ("ee", "ee", "object"))
ENV_ARGS = {"task": "Fake", "layout": LAYOUT.to_dict()}


# ----- core: layout, schedule, policy, partitions -------------------------------------------------


def test_layout_slices_and_masks():
    assert LAYOUT.dim == 4
    assert LAYOUT.slices == {"eef": slice(0, 2), "grip": slice(2, 3), "cube": slice(3, 4)}
    np.testing.assert_array_equal(LAYOUT.mask("ee"), [True, True, True, False])
    np.testing.assert_array_equal(LAYOUT.split(np.arange(4.0))["cube"], [3.0])
    assert StateLayout.from_dict(LAYOUT.to_dict()) == LAYOUT
    with pytest.raises(ValueError, match="unknown group"):
        StateLayout(("a",), (1,), ("arm",))


def test_env_ids_are_registered_without_importing_simulators():
    import gymnasium as gym

    from wav.envs.manipulation import ENV_IDS

    assert len(ENV_IDS) == 6 and all(i in gym.registry for i in ENV_IDS)


def test_pose_action_on_hand_computed_cases():
    from scipy.spatial.transform import Rotation

    from wav.robot.experts import MANISKILL_SCALE, ROBOSUITE_SCALE, _wrap, pose_action

    eye, turn = np.eye(3), Rotation.from_euler("z", 0.25).as_matrix()
    a = pose_action(np.zeros(3), eye, [0.025, 0, -1.0], turn, gripper=1.0, scale=ROBOSUITE_SCALE)
    np.testing.assert_allclose(a, [0.5, 0, -1.0, 0, 0, 0.5, 1.0], atol=1e-9)  # 2.5 cm / 5 cm; 0.25 / 0.5 rad; z clipped
    b = pose_action(np.zeros(3), eye, np.zeros(3), Rotation.from_euler("z", 0.05).as_matrix(), -1.0, MANISKILL_SCALE)
    np.testing.assert_allclose(b[3:6], [0, 0, -0.5], atol=1e-9)  # ManiSkill's rotation scale is -0.1 rad
    assert _wrap(np.pi / 2 + 0.1, np.pi / 2) == pytest.approx(0.1)
    assert _wrap(-np.pi + 0.2, np.pi) == pytest.approx(0.2)  # a gripper yaw is only defined modulo pi


def test_square_nut_yaw_is_square_and_keeps_the_handle_within_reach():
    from wav.robot.experts import square_yaw

    q = np.pi / 2
    assert square_yaw(q + 0.1) == pytest.approx(q)  # nearest multiple of pi/2
    assert square_yaw(np.pi - 0.2) == pytest.approx(np.pi)
    assert square_yaw(-q - 0.3) == pytest.approx(-q)
    assert square_yaw(0.3) == pytest.approx(q)  # never 0: the handle (+x) would point away from the robot
    assert square_yaw(-0.3) == pytest.approx(-q)
    assert square_yaw(2 * np.pi + 0.1) == pytest.approx(2 * np.pi + q)


def test_square_grasp_yaw_keeps_the_wrist_inside_its_range():
    from wav.robot.experts import grasp_yaw

    # Wrist at 0.8 rad: a -1.5 rad hand turn would take it to 2.3 (and 2.4 after a -0.1 turn), past the
    # 2.2 rad limit, so the gripper turns the other way round (+pi) to the same grasp.
    assert grasp_yaw(-1.5, -0.1, wrist=0.8) == pytest.approx(-1.5 + np.pi)
    assert grasp_yaw(-1.0, 0.0, wrist=0.8) == pytest.approx(-1.0)  # fits: the smallest turn
    # Nothing fits (wrist -0.5, reach 2.3 for 0.3, 2.34 for 0.3 - pi, 3.94 for 0.3 + pi): the least reach.
    assert grasp_yaw(0.3, 1.5, wrist=-0.5) == pytest.approx(0.3)


def test_cosine_schedule_is_monotone_from_one_to_zero():
    ab = alphas_cumprod(100)
    assert ab.shape == (100,)
    assert 0.99 < ab[0] <= 1.0 and ab[-1] < 1e-3
    assert torch.all(ab[1:] < ab[:-1])


def test_checkpoint_steps_are_ten_and_end_at_train_steps():
    steps = PolicyConfig(train_steps=300).checkpoint_steps()
    assert len(steps) == 10 and steps[-1] == 300 and steps[0] < 300 / 10
    assert PolicyConfig(train_steps=4000).checkpoint_steps() == [4, 32, 108, 256, 500, 864, 1372, 2048, 2916, 4000]  # 4000 (k/10)^3
    assert PolicyConfig(train_steps=100).checkpoint_steps() == [1, 2, 3, 6, 12, 22, 34, 51, 73, 100]  # rounding ties pushed on
    with pytest.raises(ValueError, match="checkpoints"):
        PolicyConfig(train_steps=5)


def test_windows_pad_history_with_the_first_state_and_chunks_with_the_last_action():
    states = np.arange(4, dtype=np.float32)[:, None]  # (T+1, 1) = 0, 1, 2, 3
    actions = 10 + np.arange(3, dtype=np.float32)[:, None]  # (T, 1) = 10, 11, 12
    obs, act = windows([(states, actions), (states[:2], actions[:1])], obs_horizon=2, pred_horizon=3)
    assert obs.shape == (4, 2, 1) and act.shape == (4, 3, 1)
    np.testing.assert_array_equal(obs[..., 0], [[0, 0], [0, 1], [1, 2], [0, 0]])
    np.testing.assert_array_equal(act[..., 0], [[10, 11, 12], [11, 12, 12], [12, 12, 12], [10, 10, 10]])


def test_policy_config_rejects_an_action_horizon_longer_than_the_chunk():
    with pytest.raises(ValueError, match="action_horizon"):
        PolicyConfig(pred_horizon=4, action_horizon=5)


def test_diffusion_policy_learns_a_state_dependent_chunk():
    # States s_t = (s0, s1, t / 8), actions a_t = (0.8 sign(s0), -0.5 + 0.1 t, 0, ...): DDIM must reproduce
    # the mode chosen by the state and the ramp along the chunk.
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(128):
        s = np.zeros((9, 3), np.float32)
        s[:, :2], s[:, 2] = rng.normal(size=2), np.arange(9) / 8
        a = np.zeros((8, 7), np.float32)
        a[:, 0], a[:, 1] = np.sign(s[0, 0]) * 0.8, -0.5 + 0.1 * np.arange(8)
        episodes.append((s, a))
    cfg = PolicyConfig(hidden=64, layers=2, obs_horizon=2, pred_horizon=4, action_horizon=2, train_steps=800, batch_size=128, ema=0.9)
    saved = []
    train_policy(episodes, cfg, seed=0, save=lambda p, step, i: saved.append((step, p)), progress=False)
    pol = saved[-1][1]
    obs = torch.tensor([[2.0, 0, 0], [-2.0, 0, 0]])[:, None].repeat(1, 2, 1)  # (2, O, 3), start of an episode
    out = pol.sample(obs, torch.Generator().manual_seed(0)).numpy()  # (2, H, 7)
    assert out.shape == (2, 4, 7)
    assert (out[0, :, 0] > 0.5).all() and (out[1, :, 0] < -0.5).all()
    np.testing.assert_allclose(out[:, :, 1], np.tile(-0.5 + 0.1 * np.arange(4), (2, 1)), atol=0.2)


def test_chunk_actor_executes_action_horizon_steps_per_sample():
    pol = DiffusionPolicy(2, 7, PolicyConfig(hidden=8, layers=1, obs_horizon=3, pred_horizon=5, action_horizon=3))
    seen = []

    def sample(obs, gen):  # chunk k holds k + step-in-chunk in its first coordinate
        seen.append(obs.numpy().copy())
        chunk = torch.zeros(1, 5, 7)
        chunk[0, :, 0] = len(seen) * 10 + torch.arange(5)
        return chunk

    pol.sample = sample
    actor = ChunkActor(pol, torch.Generator())
    firsts = [actor(np.full(2, t, np.float32))[0] for t in range(7)]
    assert firsts == [10, 11, 12, 20, 21, 22, 30]  # re-planned every 3 steps; actions 4, 5 of a chunk unused
    np.testing.assert_array_equal(seen[0][0, :, 0], [0, 0, 0])  # history padded with the first state
    np.testing.assert_array_equal(seen[1][0, :, 0], [1, 2, 3])
    actor.reset()
    actor(np.full(2, 9, np.float32))
    np.testing.assert_array_equal(seen[-1][0, :, 0], [9, 9, 9])


def test_policy_save_load_roundtrip(tmp_path):
    pol = DiffusionPolicy(4, 7, PolicyConfig(hidden=16, layers=1), np.ones(4), 2 * np.ones(4))
    pol.save(tmp_path / "p.pt", task="Fake")
    back = DiffusionPolicy.load(tmp_path / "p.pt")
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 4)  # (B, O, D)
    torch.testing.assert_close(pol.sample(x, g1), back.sample(x, g2))
    assert back.meta["task"] == "Fake"


def test_partition_follows_the_published_protocol():
    trajs = [_traj(source="expert", seed=i) for i in range(10)]
    for k, rate in enumerate([0.0, 0.2, 0.5, 0.9, 1.0], start=1):
        trajs += [_traj(source=f"ckpt{k}", success=bool(j < rate * 10), seed=100 * k + j) for j in range(10)]
    masks = partition(trajs, warmup_sizes=(10, 20), best_checkpoints=2, eval_fraction=0.2, seed=0)
    ev, warm, explore = set(masks["eval"]), set(masks["warmup_20"]), set(masks["explore"])
    assert set(masks["warmup_10"]) <= warm and len(warm) == 20
    assert not (ev & warm) and not (ev & explore) and not (warm & explore)
    assert len(ev) == 12  # 20% of each of the 6 sources
    warm_sources = {trajs[i].source for i in warm}
    assert warm_sources <= {"expert", "ckpt4", "ckpt5"}  # experts first, then the two best checkpoints
    assert {trajs[i].source for i in masks["warmup_10"]} <= {"expert", "ckpt4", "ckpt5"}
    # a quarter of every warm-up size are expert demos (published ~50 of 200), the rest noisy rollouts
    assert sum(trajs[i].source == "expert" for i in warm) == 5
    assert sum(trajs[i].source == "expert" for i in masks["warmup_10"]) == round(0.25 * 10)
    only = partition(trajs, warmup_sizes=(10,), best_checkpoints=2, eval_fraction=0.2, seed=0, expert_share=1.0)
    assert sum(trajs[i].source == "expert" for i in only["warmup_10"]) == 8  # all 8 kept experts, then rollouts
    assert all(trajs[i].source != "expert" for i in explore)
    assert {trajs[i].source for i in explore} >= {"ckpt1", "ckpt2", "ckpt3"}
    with pytest.raises(ValueError, match="exceeds"):
        partition(trajs, warmup_sizes=(1000,), best_checkpoints=2, eval_fraction=0.2, seed=0)


# ----- HDF5 storage (needs h5py) ------------------------------------------------------------------


def test_hdf5_roundtrip_with_masks(tmp_path):
    h5py = pytest.importorskip("h5py")
    from wav.data.robot_io import list_masks, load_trajectories, save_trajectories

    trajs = [_traj(t=3 + i, source="expert" if i < 2 else "ckpt1", seed=i) for i in range(4)]
    path = save_trajectories(tmp_path / "pool.hdf5", trajs, ENV_ARGS, masks={"eval": [3], "warmup_2": [0, 1]})
    with h5py.File(path, "r") as f:  # robomimic layout
        assert set(f["data/demo_0"].keys()) >= {"obs", "next_obs", "actions", "rewards", "dones"}
        assert f["data/demo_1/obs/eef"].shape == (4, 2)
        assert json.loads(f["data"].attrs["env_args"])["task"] == "Fake"
    back, env_args = load_trajectories(path)
    assert env_args == ENV_ARGS and len(back) == 4
    for a, b in zip(trajs, back):
        np.testing.assert_allclose(a.states, b.states)
        np.testing.assert_allclose(a.actions, b.actions)
        assert a.source == b.source and a.success == b.success
    ev, _ = load_trajectories(path, filter_key="eval")
    assert [t.seed for t in ev] == [3]
    assert list_masks(path) == {"eval": ["demo_3"], "warmup_2": ["demo_0", "demo_1"]}
    assert not list(tmp_path.glob(".pool*"))  # no temporary left behind


def _write_demo(path, actions, obs_rows=None, extra=None):
    import h5py

    with h5py.File(path, "w") as f:
        g = f.create_group("data/demo_0")
        g.create_dataset("actions", data=actions)
        g.create_dataset("obs/robot0_eef_pos", data=np.zeros((obs_rows or len(actions), 3)))
        g.create_dataset("obs/object", data=np.ones((obs_rows or len(actions), 2)))
        for k, v in (extra or {}).items():
            g.create_dataset(k, data=v)


def test_loader_reads_a_users_robomimic_file_with_obs_keys(tmp_path):
    pytest.importorskip("h5py")
    from wav.data.robot_io import load_trajectories

    _write_demo(tmp_path / "user.hdf5", np.zeros((6, 7)), extra={"rewards": np.zeros(6), "dones": np.zeros(6)})
    (tr,), _ = load_trajectories(tmp_path / "user.hdf5", obs_keys=["robot0_eef_pos", "object"])
    assert tr.states.shape == (7, 5) and len(tr) == 6


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing_file", "no such file"),
        ("not_hdf5", "not a readable HDF5"),
        ("nan_actions", "actions: contains NaN"),
        ("big_actions", r"outside \[-1, 1\]"),
        ("short_obs", "demo_0/obs/robot0_eef_pos: has 5 rows; actions have 6"),
        ("bad_rewards", "rewards: has 2 entries"),
        ("no_layout", "pass obs_keys"),
        ("unknown_key", "obs/gripper: missing"),
        ("no_mask", "no filter key 'eval'"),
    ],
)
def test_loader_errors_name_file_demo_and_field(tmp_path, case, match):
    pytest.importorskip("h5py")
    from wav.data.io import DataError
    from wav.data.robot_io import load_trajectories

    path = tmp_path / "bad.hdf5"
    keys, kwargs = ["robot0_eef_pos", "object"], {}
    a = np.zeros((6, 7))
    if case == "not_hdf5":
        path.write_text("hello")
    elif case == "nan_actions":
        a[2, 3] = np.nan
        _write_demo(path, a)
    elif case == "big_actions":
        a[0, 0] = 3.0
        _write_demo(path, a)
    elif case == "short_obs":
        _write_demo(path, a, obs_rows=5)
    elif case == "bad_rewards":
        _write_demo(path, a, extra={"rewards": np.zeros(2)})
    elif case in ("no_layout", "unknown_key", "no_mask"):
        _write_demo(path, a)
        keys = {"no_layout": None, "unknown_key": ["gripper"], "no_mask": keys}[case]
        kwargs = {"filter_key": "eval"} if case == "no_mask" else {}
    with pytest.raises(DataError, match=match):
        load_trajectories(path, obs_keys=keys, **kwargs)


# ----- simulators (extras robot / maniskill) ------------------------------------------------------


def _check_env(task):
    from wav.envs.manipulation import make_env

    env = make_env(task)
    obs, info = env.reset(seed=3)
    assert obs.shape == (env.layout.dim,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (7,)
    assert env.layout.mask("ee").any() and env.layout.mask("object").any()
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (5, 7))
    first = [obs] + [env.step(a)[0] for a in acts]
    obs2, _ = env.reset(seed=3)
    second = [obs2] + [env.step(a)[0] for a in acts]
    np.testing.assert_allclose(np.stack(first), np.stack(second), atol=1e-5)  # same seed, same rollout
    env.close()


def _expert_success(task, episodes):
    from wav.robot.build import run_experts

    _, rate = run_experts(task, episodes, seed=0, n_jobs=1, progress=False)
    return rate


@pytest.mark.parametrize("task", ROBOSUITE_TASKS)
def test_robosuite_env_api_and_determinism(task):
    pytest.importorskip("robosuite")
    _check_env(task)


@pytest.mark.parametrize("task", MANISKILL_TASKS)
def test_maniskill_env_api_and_determinism(task):
    pytest.importorskip("mani_skill")
    _check_env(task)


@pytest.mark.parametrize("task", ["Lift"])
def test_a_restored_snapshot_replays_the_same_states_bit_for_bit(task):
    pytest.importorskip("robosuite")
    from wav.envs.manipulation import make_env

    env = make_env(task)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for a in rng.uniform(-1, 1, (10, 7)):  # the gripper, controller and observables have history by now
        env.step(a)
    snap = env.snapshot()
    acts = rng.uniform(-1, 1, (8, 7))
    first = [env.step(a)[0] for a in acts]
    t_after = env._t
    for other in rng.uniform(-1, 1, (3, 7)):  # wander off, then come back twice
        env.step(other)
    env.restore(snap)
    assert env._t == t_after - len(acts)
    env.restore(snap)
    second = [env.step(a)[0] for a in acts]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    assert 0.0 <= env.dense_reward() <= 2.25  # robosuite's shaped Lift reward: reaching + grasping, or the lift bonus
    env.close()


def test_a_restored_maniskill_snapshot_replays_positions_and_reads_the_dense_reward():
    """ManiSkill restores poses and velocities but not PhysX's contact caches: positions replay to ~1e-5, the
    joint velocities to ~1e-2 (measured on the expert's path with noise, 3 episodes of each ManiSkill task)."""
    pytest.importorskip("mani_skill")
    from wav.envs.manipulation import make_env
    from wav.robot.experts import make_expert

    env, expert = make_env("PullCube"), make_expert("PullCube")
    env.reset(seed=0)
    expert.reset(env)
    for _ in range(15):  # in contact with the cube by now
        env.step(expert.act(env))
    snap = env.snapshot()
    rng = np.random.default_rng(0)
    acts = [np.clip(expert.act(env) + rng.normal(0, 0.05, 7), -1, 1)]
    first = [env.step(acts[0])[0]]
    for _ in range(7):
        acts.append(np.clip(expert.act(env) + rng.normal(0, 0.05, 7), -1, 1))
        first.append(env.step(acts[-1])[0])
    t_after = env._t
    env.step(np.zeros(7))
    env.restore(snap)
    assert env._t == t_after - len(acts)
    second = np.stack([env.step(a)[0] for a in acts])
    first = np.stack(first)
    velocity = np.zeros(env.layout.dim, bool)
    for name, sl in env.layout.slices.items():
        velocity[sl] = "qvel" in name
    assert np.abs(first[:, ~velocity] - second[:, ~velocity]).max() < 1e-3
    assert np.abs(first[:, velocity] - second[:, velocity]).max() < 0.1
    assert 0.0 <= env.dense_reward() <= 1.0
    env.close()


def test_robosuite_lift_expert_succeeds():
    pytest.importorskip("robosuite")
    assert _expert_success("Lift", 2) == 1.0


def test_maniskill_pullcube_expert_succeeds():
    pytest.importorskip("mani_skill")
    assert _expert_success("PullCube", 2) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASKS))
def test_every_expert_reaches_90_percent(task):
    pytest.importorskip("robosuite" if TASKS[task].backend == "robosuite" else "mani_skill")
    assert _expert_success(task, 20) >= 0.9


def test_a_reused_env_gives_the_episode_a_fresh_env_gives():
    pytest.importorskip("mani_skill")
    from wav.robot.collect import ActorSpec, collect

    both = collect("PullCube", [(ActorSpec("expert"), [11, 12])], n_jobs=1, progress=False)  # one env, two episodes
    alone = collect("PullCube", [(ActorSpec("expert"), [12])], n_jobs=1, progress=False)  # a new env
    np.testing.assert_allclose(both[1].states, alone[0].states, atol=1e-5)
    np.testing.assert_allclose(both[1].actions, alone[0].actions, atol=1e-5)


def test_cli_experts_json_last_line():
    pytest.importorskip("mani_skill")
    out = subprocess.run([sys.executable, "-m", "wav", "robot", "experts", "--task", "PullCube", "--episodes", "2", "--jobs", "1", "--json"],
                         capture_output=True, text=True, timeout=300, check=True)
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last == {"task": "PullCube", "episodes": 2, "success_rate": 1.0}


def test_cli_build_debug_smoke(tmp_path):
    pytest.importorskip("mani_skill")
    pytest.importorskip("h5py")
    from wav.data.robot_io import list_masks, summary

    run = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "wav", "robot", "build", "--task", "PullCube", "--preset", "debug", "--out", str(run),
                    "--expert-episodes", "4", "--rollouts-per-checkpoint", "1", "--train-steps", "100", "--jobs", "1", "--warmup-sizes", "2,4"],
                   capture_output=True, text=True, timeout=600, check=True)
    assert {p.name for p in (run / "checkpoints").iterdir()} == {f"ckpt_{k}.pt" for k in range(1, 11)}
    s = summary(run / "pool.hdf5")
    assert s["trajectories"] == 14 and s["task"] == "PullCube"
    assert set(list_masks(run / "pool.hdf5")) == {"warmup_2", "warmup_4", "explore", "eval"}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == ["experts", "train", "rollout", "partition"]
    assert json.loads((run / "config.json").read_text())["task"] == "PullCube"
