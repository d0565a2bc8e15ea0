"""The published CIFAR-10 ResNet-20 (akamaster/pytorch_resnet_cifar10) reproduces its 91.73 % in our model."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advlab.models import create_model, load_foreign_weights

WEIGHTS = Path("pretrained") / "resnet20-12fca82f.th"


def cifar10_test_set(data_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (10000, 3, 32, 32) images and int64 labels: the project's loader, else the official batch directly."""
    try:
        from advlab.data.cifar10 import load_cifar10
    except ImportError:
        # The trusted shared copy of the official file; plain pickle is acceptable in a test, not in the library.
        with open(data_root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return torch.from_numpy(images), torch.tensor(batch[b"labels"], dtype=torch.int64)
    dataset = load_cifar10(data_root, "test")
    return dataset.images, dataset.labels


@pytest.fixture(scope="module")
def pretrained_resnet20(shared_data: Path) -> nn.Module:
    model = create_model("resnet20", normalization="imagenet")  # the normalization it was trained with
    return load_foreign_weights(model, shared_data / WEIGHTS).eval()


@pytest.fixture(scope="module")
def cifar10_test(shared_data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return cifar10_test_set(shared_data)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].float() / 255  # [0, 1]; Normalize is inside the model
            correct += int((model(x).argmax(dim=1) == labels[start:start + batch_size]).sum())
    return 100.0 * correct / len(images)


def test_pretrained_resnet20_on_the_first_500_test_images(pretrained_resnet20, cifar10_test) -> None:
    images, labels = cifar10_test
    assert accuracy(pretrained_resnet20, images[:500], labels[:500]) > 88.0


@pytest.mark.slow  # 32 s on 2 CPU cores (minutes when they are shared)
def test_pretrained_resnet20_scores_91_73_on_the_full_test_set(pretrained_resnet20, cifar10_test) -> None:
    images, labels = cifar10_test
    assert len(images) == 10_000
    assert accuracy(pretrained_resnet20, images, labels) == pytest.approx(91.73, abs=0.01)


def test_untrained_resnet20_is_near_chance(cifar10_test) -> None:
    # Guards the tests above against passing for the wrong reason: the loaded weights give the accuracy.
    images, labels = cifar10_test
    untrained = create_model("resnet20", normalization="imagenet").eval()
    assert accuracy(untrained, images[:500], labels[:500]) < 30.0
