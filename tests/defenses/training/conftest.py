"""Fixtures for the training-objective and inference-time defense tests: a few thousand MNIST images, tiny models.

MNIST comes from the shared data folder through ``advlab.data.sources.load_dataset``; tests skip without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from training_defense_utils import TinyCNN, train_steps

from advlab.data.dataset import ImageDataset
from advlab.data.sources import load_dataset


@pytest.fixture(scope="session")
def mnist(shared_data: Path) -> tuple[ImageDataset, ImageDataset]:
    """(train, test): 3000 + 500 images from the official MNIST test file (disjoint), seeded."""
    if not (shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST files are absent from the shared data folder")
    full = load_dataset("mnist", "test", data_dir=shared_data)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    train = full.select(order[:3000].sort().values, "mnist-train-3000")
    test = full.select(order[3000:3500].sort().values, "mnist-test-500")
    return train, test


@pytest.fixture(scope="session")
def trained_cnn(mnist: tuple[ImageDataset, ImageDataset]) -> nn.Module:
    """A TinyCNN trained with plain cross-entropy (91 % on the 500 test images)."""
    torch.manual_seed(0)
    return train_steps(TinyCNN(), mnist[0], epochs=3)


@pytest.fixture(scope="session")
def test_batch(mnist: tuple[ImageDataset, ImageDataset]) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist[1].float_images(), mnist[1].labels
