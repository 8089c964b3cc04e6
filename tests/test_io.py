"""The npz loader reads the published schema and fails with a message naming file and field."""

import numpy as np
import pytest

from wav.data.io import DataError, load_transitions, save_transitions
from wav.envs.minigrid.dynamics import step_batch
from wav.envs.minigrid.states import random_states
from wav.data.io import Transitions


def _make(n=20, seed=0):
    rng = np.random.default_rng(seed)
    g, c = random_states(rng, n)
    a = rng.integers(0, 7, n)
    ng, nc = step_batch(g, c, a)
    return Transitions.from_arrays(g, c, a, ng, nc)


def _arrays(tr):
    n = len(tr)
    return dict(
        states=tr.states.reshape(n, 1, 1, 6, 6, 3), carried=tr.carried, actions=tr.actions,
        next_states=tr.next_states.reshape(n, 1, 1, 6, 6, 3), next_carried=tr.next_carried,
        rewards=np.zeros(n, np.int64), dones=np.zeros(n, np.int64),
    )


def test_roundtrip_and_schema(tmp_path):
    tr = _make()
    p = save_transitions(tmp_path / "d.npz", tr, episodes=np.arange(len(tr)))
    z = np.load(p)
    assert z["states"].shape == (20, 1, 1, 6, 6, 3) and z["states"].dtype == np.uint8
    assert z["carried"].dtype == np.int64 and z["actions"].dtype == np.int64
    back = load_transitions(p)
    for f in ("states", "carried", "actions", "next_states", "next_carried"):
        assert np.array_equal(getattr(back, f), getattr(tr, f))
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_float32_variant(tmp_path):
    tr = _make()
    a = _arrays(tr)
    a["states"] = tr.states.astype(np.float32)
    a["next_states"] = tr.next_states.astype(np.float32)
    a["carried"] = tr.carried[:, :, None]
    a["next_carried"] = tr.next_carried[:, :, None]
    np.savez(tmp_path / "f.npz", **a)
    back = load_transitions(tmp_path / "f.npz")
    assert np.array_equal(back.states, tr.states) and back.carried.shape == (20, 2)


def _expect(tmp_path, arrays, match, name="bad.npz"):
    p = tmp_path / name
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=match) as e:
        load_transitions(p)
    assert name in str(e.value)


def test_missing_key(tmp_path):
    a = _arrays(_make())
    del a["next_carried"]
    _expect(tmp_path, a, "next_carried.*missing")


def test_wrong_shape(tmp_path):
    a = _arrays(_make())
    a["states"] = a["states"].reshape(20, 6, 18)
    _expect(tmp_path, a, "'states'.*shape")
    a = _arrays(_make())
    a["carried"] = a["carried"][:10]
    _expect(tmp_path, a, "'carried'.*shape")


def test_wrong_dtype(tmp_path):
    a = _arrays(_make())
    a["actions"] = np.array(["x"] * 20)
    _expect(tmp_path, a, "'actions'.*dtype")


def test_out_of_range(tmp_path):
    a = _arrays(_make())
    a["actions"][3] = 9
    _expect(tmp_path, a, "'actions'.*range.*transition 3")
    a = _arrays(_make())
    a["next_states"][2, 0, 0, 1, 1, 0] = 40
    _expect(tmp_path, a, "'next_states'.*type channel out of range")
    a = _arrays(_make())
    a["carried"][0, 0] = 6
    _expect(tmp_path, a, "'carried'.*colour out of range")


def test_nan(tmp_path):
    a = _arrays(_make())
    a["states"] = a["states"].astype(np.float32)
    a["states"][1, 0, 0, 2, 2, 1] = np.nan
    _expect(tmp_path, a, "'states'.*NaN")


@pytest.mark.parametrize("field", ["rewards", "dones"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_non_finite_rewards_and_dones(tmp_path, field, value):
    a = _arrays(_make())
    a[field] = a[field].astype(np.float64)
    a[field][4] = value
    _expect(tmp_path, a, f"'{field}'.*non-finite values \\(1 of 20; the first at transition 4: ")


def test_corrupt_archive_and_missing_file(tmp_path):
    p = tmp_path / "corrupt.npz"
    save_transitions(p, _make())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt.npz.*not a valid npz file"):
        load_transitions(p)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError, match=r"text.npz: not a valid npz file \(not a zip archive\)"):
        load_transitions(tmp_path / "text.npz")
    with pytest.raises(DataError, match="is a folder"):
        load_transitions(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        load_transitions(tmp_path / "nope.npz")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "d.npz"
    save_transitions(p, _make(seed=1))
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(RuntimeError):
        save_transitions(p, _make(seed=2))
    assert p.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["d.npz"]
