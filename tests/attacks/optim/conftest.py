"""Fixtures for the optimization, saliency and black-box attack tests: a small MNIST CNN trained in seconds.

The model is trained once per session on 12,000 real MNIST training images (~97 % test accuracy) so that the
tests can require accuracy *drops*: an attack that returns its input unchanged fails them.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch
from torch import nn

from advlab.models.layers import MNIST_MEAN, MNIST_STD, Normalize


def read_idx(path: Path) -> torch.Tensor:
    """Read an MNIST idx(.gz) file into a uint8 tensor (images (N, 1, 28, 28) or labels (N,))."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * dims:]), dtype=torch.uint8).view(*shape)
    return data.unsqueeze(1) if dims == 3 else data


def small_cnn() -> nn.Module:
    """Two strided convolutions and a linear head; 784 -> 10 logits, normalization inside."""
    return nn.Sequential(
        Normalize(MNIST_MEAN, MNIST_STD),
        nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def small_mlp() -> nn.Module:
    return nn.Sequential(Normalize(MNIST_MEAN, MNIST_STD), nn.Flatten(), nn.Linear(784, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> nn.Module:
    torch.set_num_threads(1)  # session fixtures run before the per-test thread setting
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], 128):
            idx = order[start:start + 128]
            loss = nn.functional.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # These attacks run many tiny ops; on the shared 2-core machine a second intra-op thread spins on barriers
    # and made the C&W tests ~15x slower under load. Runs after the root conftest's thread setting.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist(shared_data: Path) -> dict[str, torch.Tensor]:
    folder = shared_data / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST files are absent from {folder}")
    return {
        "train_x": read_idx(folder / "train-images-idx3-ubyte.gz")[:12000].float() / 255,
        "train_y": read_idx(folder / "train-labels-idx1-ubyte.gz")[:12000].long(),
        "test_x": read_idx(folder / "t10k-images-idx3-ubyte.gz")[:1000].float() / 255,
        "test_y": read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:1000].long(),
    }


@pytest.fixture(scope="session")
def mnist_cnn(mnist: dict[str, torch.Tensor]) -> nn.Module:
    torch.manual_seed(0)
    return train(small_cnn(), mnist["train_x"], mnist["train_y"], epochs=2, seed=0)


@pytest.fixture(scope="session")
def mnist_mlp(mnist: dict[str, torch.Tensor]) -> nn.Module:
    """A second, differently built model: the target of transfer and substitute attacks."""
    torch.manual_seed(1)
    return train(small_mlp(), mnist["train_x"], mnist["train_y"], epochs=2, seed=1)


@pytest.fixture(scope="session")
def batch(mnist: dict[str, torch.Tensor], mnist_cnn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """32 test images the CNN classifies correctly (so clean accuracy is 1 and every drop is the attack's)."""
    with torch.no_grad():
        correct = mnist_cnn(mnist["test_x"]).argmax(1) == mnist["test_y"]
    x, y = mnist["test_x"][correct][:32], mnist["test_y"][correct][:32]
    return x.contiguous(), y.contiguous()


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("this model is black-box: gradients are not available")


class ScoresOnly(nn.Module):
    """Wraps a model so that any backward pass through it raises: a black-box attack must never need one."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_NoBackward.apply(x))


@pytest.fixture(scope="session")
def scores_only_cnn(mnist_cnn: nn.Module) -> nn.Module:
    return ScoresOnly(mnist_cnn)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="session")
def scores_only_mlp(mnist_mlp: nn.Module) -> nn.Module:
    return ScoresOnly(mnist_mlp)


def assert_in_box(adv: torch.Tensor) -> None:
    assert adv.min() >= 0 and adv.max() <= 1, "adversarial images left [0, 1]"
