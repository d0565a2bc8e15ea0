"""Fixtures for the gradient-sign and noise attack tests: a small CNN trained for a few seconds on real MNIST.

The data are read straight from the official idx ``.gz`` files in ``../shared/data/mnist`` (tests skip when the
folder is absent), so these tests depend only on the attack code. Everything is seeded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from gradient_attack_helpers import read_idx, small_cnn
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Small matrices on a shared 2-core box: a second intra-op thread mostly waits at barriers (measured 10x slower
    # under load), so these tests run single-threaded.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist_arrays(shared_data: Path) -> dict[str, torch.Tensor]:
    folder = shared_data / "mnist"
    if not folder.is_dir():
        pytest.skip(f"MNIST files are absent from {folder}")
    return {
        "train_x": read_idx(folder / "train-images-idx3-ubyte.gz").unsqueeze(1),
        "train_y": read_idx(folder / "train-labels-idx1-ubyte.gz").long(),
        "test_x": read_idx(folder / "t10k-images-idx3-ubyte.gz").unsqueeze(1),
        "test_y": read_idx(folder / "t10k-labels-idx1-ubyte.gz").long(),
    }


@pytest.fixture(scope="session")
def trained_cnn(mnist_arrays: dict[str, torch.Tensor]) -> nn.Module:
    """``small_cnn`` after one epoch of Adam on 30k training images (95.6 % test accuracy), left in eval mode."""
    torch.set_num_threads(1)  # session fixtures run before the function-scoped thread setting
    torch.manual_seed(0)
    model = small_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = mnist_arrays["train_x"][:30000], mnist_arrays["train_y"][:30000]
    order = torch.randperm(len(images))
    model.train()
    for start in range(0, len(order), 128):
        index = order[start:start + 128]
        loss = nn.functional.cross_entropy(model(images[index].float() / 255), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def test_batch(mnist_arrays: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """200 MNIST test images (float [0, 1]) and their labels."""
    return mnist_arrays["test_x"][:200].float() / 255, mnist_arrays["test_y"][:200]
