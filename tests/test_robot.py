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
from wav.robot.policy import DiffusionPolicy, PolicyConfig, alphas_cumprod, train_policy

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


def test_cosine_schedule_is_monotone_from_one_to_zero():
    ab = alphas_cumprod(100)
    assert ab.shape == (100,)
    assert 0.99 < ab[0] <= 1.0 and ab[-1] < 1e-3
    assert torch.all(ab[1:] < ab[:-1])


def test_checkpoint_steps_are_ten_and_end_at_train_steps():
    steps = PolicyConfig(train_steps=300).checkpoint_steps()
    assert len(steps) == 10 and steps[-1] == 300 and steps[0] < 300 / 10


def test_diffusion_policy_learns_a_state_dependent_action():
    # a = (sign(s0), -0.5, 0, ...): two modes chosen by the state, which DDIM must reproduce.
    rng = np.random.default_rng(0)
    s = rng.normal(size=(512, 3)).astype(np.float32)
    a = np.zeros((512, 7), np.float32)
    a[:, 0], a[:, 1] = np.sign(s[:, 0]) * 0.8, -0.5
    pol_steps = []
    train_policy(s, a, PolicyConfig(hidden=64, layers=2, train_steps=800, batch_size=128), seed=0,
                 save=lambda p, step, i: pol_steps.append((step, p)), progress=False)
    pol = pol_steps[-1][1]
    out = pol.sample(torch.tensor([[2.0, 0, 0], [-2.0, 0, 0]]), torch.Generator().manual_seed(0)).numpy()
    assert out[0, 0] > 0.5 and out[1, 0] < -0.5
    assert abs(out[0, 1] + 0.5) < 0.2 and abs(out[1, 1] + 0.5) < 0.2


def test_policy_save_load_roundtrip(tmp_path):
    pol = DiffusionPolicy(4, 7, PolicyConfig(hidden=16, layers=1), np.ones(4), 2 * np.ones(4))
    pol.save(tmp_path / "p.pt", task="Fake")
    back = DiffusionPolicy.load(tmp_path / "p.pt")
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x = torch.randn(3, 4)
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


def test_robosuite_lift_expert_succeeds():
    pytest.importorskip("robosuite")
    assert _expert_success("Lift", 2) == 1.0


def test_maniskill_pullcube_expert_succeeds():
    pytest.importorskip("mani_skill")
    assert _expert_success("PullCube", 2) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("task", [pytest.param(t, marks=pytest.mark.xfail(reason="scripted Square expert measured at 75%"))
                                  if t == "Square" else t for t in TASKS])
def test_every_expert_reaches_90_percent(task):
    pytest.importorskip("robosuite" if TASKS[task].backend == "robosuite" else "mani_skill")
    assert _expert_success(task, 20) >= 0.9


def test_cli_experts_json_last_line():
    pytest.importorskip("mani_skill")
    out = subprocess.run([sys.executable, "-m", "wav", "robot", "experts", "--task", "PullCube", "--episodes", "2", "--n-jobs", "1", "--json"],
                         capture_output=True, text=True, timeout=300, check=True)
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last == {"task": "PullCube", "episodes": 2, "success_rate": 1.0}


def test_cli_build_debug_smoke(tmp_path):
    pytest.importorskip("mani_skill")
    pytest.importorskip("h5py")
    from wav.data.robot_io import list_masks, summary

    run = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "wav", "robot", "build", "--task", "PullCube", "--scale", "debug", "--out", str(run),
                    "--expert-episodes", "4", "--rollouts-per-checkpoint", "1", "--train-steps", "100", "--n-jobs", "1", "--warmup-sizes", "2,4"],
                   capture_output=True, text=True, timeout=600, check=True)
    assert {p.name for p in (run / "checkpoints").iterdir()} == {f"ckpt_{k}.pt" for k in range(1, 11)}
    s = summary(run / "pool.hdf5")
    assert s["trajectories"] == 14 and s["task"] == "PullCube"
    assert set(list_masks(run / "pool.hdf5")) == {"warmup_2", "warmup_4", "explore", "eval"}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == ["experts", "train", "rollout", "partition"]
    assert json.loads((run / "config.json").read_text())["task"] == "PullCube"
