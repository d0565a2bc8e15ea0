from __future__ import annotations

import pytest
import torch

from advlab.errors import CheckpointError, InputError
from advlab.loading import load_model
from advlab.models.layers import IMAGENET_MEAN


def test_known_pretrained_file_gets_its_authors_normalization(shared_data) -> None:
    loaded = load_model("resnet20", shared_data / "pretrained" / "resnet20-12fca82f.th")
    assert torch.allclose(loaded.model.normalize.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    assert loaded.card["model"]["args"] == {"normalization": "imagenet"}
    assert loaded.card["weights"]["reported_test_accuracy"] == pytest.approx(0.9173)
    explicit = load_model("resnet20", shared_data / "pretrained" / "resnet20-12fca82f.th",
                          model_args={"normalization": "cifar10"})
    assert explicit.card["model"]["args"] == {"normalization": "cifar10"}


def test_load_model_errors_say_what_to_do(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model("mlp", tmp_path / "missing.pt")
    with pytest.raises(InputError, match="--model"):
        load_model(None)
    with pytest.raises(InputError, match="package.module:factory"):
        load_model("torch.nn:NoSuchThing")


def test_user_factory(tmp_path) -> None:
    loaded = load_model("torch.nn:Identity")
    assert isinstance(loaded.model, torch.nn.Identity) and loaded.card["model"]["source"] == "user factory"
