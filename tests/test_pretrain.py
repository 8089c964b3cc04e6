"""World-model pretraining on a large corpus (REFERENCE §4): action-free labels, where fits start, the CLI."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from wav.cli import main
from wav.config import TrainConfig, model_preset
from wav.data.collect import collect
from wav.domains.minigrid import MiniGridDomain, batch, pretrain_world_model, start_world_model, train_world_model
from wav.train import save_checkpoint

P = model_preset("debug")
SHORT = TrainConfig(epochs=2, batch_size=32, val_fraction=0.0)


@pytest.fixture(scope="module")
def corpus():
    return collect("WAV/Interact-v0", {"objects": 3}, "random", 400, 7, episode_steps=50, progress=False)[0]


@pytest.fixture(scope="module")
def labelled():
    return collect("WAV/MultiTask-v0", None, "scripted", 120, 8, progress=False)[0]


def test_inferred_labels_never_read_the_recorded_actions(corpus, labelled):
    """The action-free variant trains on what the seed-set inverse model infers: scrambling the corpus's
    recorded actions changes nothing but the agreement diagnostic."""
    a, info_a = pretrain_world_model(corpus, P.world_model, SHORT, "inferred", labelled, P.inverse, SHORT)
    scrambled = replace(corpus, actions=np.random.default_rng(0).permutation(corpus.actions))
    b, info_b = pretrain_world_model(scrambled, P.world_model, SHORT, "inferred", labelled, P.inverse, SHORT)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert info_a["labels"] == "inferred" and 0 <= info_a["label_agreement"] <= 1 and info_a["epochs"] == 2
    # the recorded variant does read them
    c, _ = pretrain_world_model(corpus, P.world_model, SHORT, "recorded")
    d, _ = pretrain_world_model(scrambled, P.world_model, SHORT, "recorded")
    assert any(not torch.equal(x, y) for x, y in zip(c.state_dict().values(), d.state_dict().values()))
    with pytest.raises(ValueError, match="seed set"):
        pretrain_world_model(corpus, P.world_model, SHORT, "inferred")
    with pytest.raises(ValueError, match="one of"):
        pretrain_world_model(corpus, P.world_model, SHORT, "video")


def test_fresh_world_models_start_from_the_pretrained_checkpoint(tmp_path, corpus, labelled):
    pre, _ = pretrain_world_model(corpus, P.world_model, SHORT, "recorded")
    path = save_checkpoint(tmp_path / "pre.pt", pre)
    plain = MiniGridDomain(models="debug")
    warm = replace(plain, world_init=str(path))
    got = warm.fit("world_model", labelled, 3, SHORT)
    want, _ = train_world_model(labelled, P.world_model, SHORT, 3, start_world_model(str(path), P.world_model))
    cold = plain.fit("world_model", labelled, 3, SHORT)
    for k, v in got.state_dict().items():
        assert torch.equal(v, want.state_dict()[k]), k
    assert any(not torch.equal(v, cold.state_dict()[k]) for k, v in got.state_dict().items())
    # an ensemble gets the pretrained weights in every member: each member predicts what the single model does
    ens = start_world_model(str(path), replace(P.world_model, members=3)).eval()
    b = batch(labelled)
    with torch.no_grad():
        c1, k1 = pre.eval().logits(b.states, b.actions)
        c3, k3 = ens.logits(b.states, b.actions)
    for m in range(3):
        torch.testing.assert_close(c3[m], c1[0])
        torch.testing.assert_close(k3[m], k1[0])
    # a checkpoint of another world model is refused in one line
    with pytest.raises(ValueError, match="pretrained world model has config"):
        start_world_model(str(path), replace(P.world_model, hidden=P.world_model.hidden + 1))


def test_reproduce_acquisition_pretrain_is_recorded_and_cached(tmp_path, capsys):
    out = tmp_path / "acq"
    args = ["reproduce", "acquisition", "--preset", "debug", "--seeds", "0", "--strategies", "random", "--jobs", "1", "--out", str(out), "--pretrain", "inferred"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["pretrain"]["labels"] == "inferred" and results["pretrain"]["transitions"] == 3000
    cached = list((out / "cache").glob("world-pretrain-inferred-*.pt"))
    assert len(cached) == 1
    cfg = json.loads((out / "runs" / "random" / "seed0" / "config.json").read_text())
    assert cfg["settings"]["domain"]["world_init"] == str(cached[0])
    # another pretraining is another setting: the finished run is not mixed in
    capsys.readouterr()
    assert main(args[:-1] + ["none"]) == 1
    assert "domain.world_init" in capsys.readouterr().err
    # --pretrain-epochs is another recipe: another cache file, the runs redone with --force
    assert main(args + ["--pretrain-epochs", "2", "--force"]) == 0
    assert json.loads((out / "results.json").read_text())["pretrain"]["epochs"] == 2
    assert len(list((out / "cache").glob("world-pretrain-inferred-*.pt"))) == 2


def test_cache_keys_read_only_the_fields_that_differ_from_their_defaults():
    """A config field added later with a default that keeps the old behaviour leaves the cache keys alone."""
    from wav.config import TrainConfig, WorldModelConfig
    from wav.experiments.common import changed_fields

    assert changed_fields(TrainConfig()) == {}
    assert changed_fields(TrainConfig(epochs=3, lr=3e-3)) == {"epochs": 3, "lr": 3e-3}
    assert changed_fields(WorldModelConfig(pointer=False)) == {"pointer": False}
