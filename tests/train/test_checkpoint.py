"""Checkpoints: round trip, card contents, and a clear CheckpointError for every broken file."""

from __future__ import annotations

import hashlib
import importlib
import json
import os

import pytest
import torch
from fit_helpers import TinyNet, tiny_model

import advlab.io
from advlab.errors import AdvlabError, CheckpointError
from advlab.models.checkpoint import CARD_SCHEMA_VERSION, load_checkpoint, read_card, save_checkpoint


def _trained_tiny(seed: int = 0) -> TinyNet:
    model = tiny_model(seed)
    model.bn.running_mean.normal_()  # non-default buffers must survive too
    model.bn.num_batches_tracked.fill_(7)
    return model


def test_round_trip_restores_weights_and_buffers_and_writes_the_card(tmp_path) -> None:
    model = _trained_tiny()
    path = tmp_path / "run" / "best.safetensors"
    card = save_checkpoint(path, model, {"dataset": {"train": "stripes"}, "seed": 3, "metrics": [{"acc": 0.5}]})
    loaded, loaded_card = load_checkpoint(path, build=lambda: tiny_model(seed=99))

    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert not loaded.training
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk == card == loaded_card
    assert card["schema_version"] == CARD_SCHEMA_VERSION
    assert card["normalization"] == {"mean": [0.25], "std": [pytest.approx(0.4)]}
    assert card["model"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["model"]["name"] is None and card["model"]["class"].endswith("TinyNet")
    assert card["weights"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(card["versions"]) >= {"advlab", "torch", "python", "numpy"}
    assert card["dataset"] == {"train": "stripes"} and card["seed"] == 3 and card["metrics"] == [{"acc": 0.5}]
    assert "created" in card and read_card(path.with_suffix(".json")) == card


def test_registered_model_is_rebuilt_from_its_card(tmp_path) -> None:
    models = importlib.import_module("advlab.models")
    if "mlp" not in models.MODELS:
        pytest.skip("the mlp model is not registered yet")
    model = models.create_model("mlp", hidden_sizes=[8])
    save_checkpoint(tmp_path / "mlp.safetensors", model)
    loaded, card = load_checkpoint(tmp_path / "mlp.safetensors")
    assert card["model"]["name"] == "mlp" and card["model"]["args"] == {"hidden_sizes": [8]}
    assert type(loaded) is type(model) and loaded.advlab_spec["name"] == "mlp"
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))


def test_broken_checkpoints_raise_checkpoint_errors(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, _trained_tiny())
    build = tiny_model
    card_text, weights = path.with_suffix(".json").read_text(), path.read_bytes()

    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="card .* is missing"):
        load_checkpoint(path, build=build)
    path.with_suffix(".json").write_text(card_text[:40])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path, build=build)
    path.with_suffix(".json").write_text(card_text)

    path.write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path, build=build)

    tampered = bytearray(weights)
    tampered[-1] ^= 0xFF  # still a parseable safetensors file, with one changed weight byte
    path.write_bytes(bytes(tampered))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_checkpoint(path, build=build)

    path.unlink()
    with pytest.raises(CheckpointError, match="weights file .* is missing"):
        load_checkpoint(path, build=build)
    path.write_bytes(weights)
    load_checkpoint(path, build=build)  # restored: loads again

    with pytest.raises(CheckpointError, match="do not fit the model"):
        load_checkpoint(path, build=lambda: tiny_model(num_classes=4))
    with pytest.raises(CheckpointError, match="names no registered model"):
        load_checkpoint(path)


def test_a_failing_write_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, tiny_model(seed=1))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(advlab.io.os, "fsync", failing_fsync)  # fails after the bytes were written
    with pytest.raises(AdvlabError, match="No space left"):
        save_checkpoint(path, tiny_model(seed=2))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old pair intact, no temp files
    load_checkpoint(path, build=tiny_model)


def test_card_may_not_overwrite_the_writers_entries(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="written by save_checkpoint"):
        save_checkpoint(tmp_path / "m.safetensors", tiny_model(), {"weights": {}})
    with pytest.raises(CheckpointError, match="must end in .safetensors"):
        save_checkpoint(tmp_path / "m.pt", tiny_model())
    assert os.listdir(tmp_path) == []
