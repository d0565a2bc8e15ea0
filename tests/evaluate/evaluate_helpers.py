"""Fixtures for the evaluation tests: a small MLP trained on real MNIST, model variants and tiny test attacks.

The attacks here are deliberately minimal Attack subclasses (one signed step; signed iterations with optional
random start and EOT) so these tests depend only on the attack *contract*, not on the attack modules.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.gradients import AutogradGradient, EOTGradient
from advlab.attacks.losses import cross_entropy, targeted_cross_entropy


def read_idx(path: Path) -> torch.Tensor:
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(raw[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


@pytest.fixture(scope="session")
def mnist(shared_data: Path) -> dict[str, torch.Tensor]:
    folder = shared_data / "mnist"
    if not folder.is_dir():
        pytest.skip("MNIST files are absent")
    return {
        "train_x": read_idx(folder / "train-images-idx3-ubyte.gz")[:12000, None],
        "train_y": read_idx(folder / "train-labels-idx1-ubyte.gz")[:12000].long(),
        "test_x": read_idx(folder / "t10k-images-idx3-ubyte.gz")[:1000, None],
        "test_y": read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:1000].long(),
    }


def make_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 3, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 128):
            index = order[start:start + 128]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained(mnist) -> nn.Module:
    torch.manual_seed(0)
    return train(make_mlp(), mnist["train_x"].float() / 255, mnist["train_y"])


@pytest.fixture(scope="session")
def trained_other(mnist) -> nn.Module:
    """A second MLP with another seed, for transfer experiments."""
    torch.manual_seed(1)
    return train(make_mlp(), mnist["train_x"][:6000].float() / 255, mnist["train_y"][:6000], epochs=2, seed=1)


@pytest.fixture(scope="session")
def test_xy(mnist) -> tuple[torch.Tensor, torch.Tensor]:
    return mnist["test_x"].float() / 255, mnist["test_y"]


class ScaledLogits(nn.Module):
    """Multiplies the logits by ``factor``: a model distilled at temperature T evaluated at T = 1."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


class Quantize(nn.Module):
    """Gradient masking by rounding the input to 4 levels: ∇ is exactly zero almost everywhere."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 4) / 4)


class NoisyInput(nn.Module):
    """Adds Gaussian noise to the input in eval mode too (a randomized defense), without declaring it."""

    def __init__(self, model: nn.Module, std: float = 0.3) -> None:
        super().__init__()
        self.model, self.std = model, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x + self.std * torch.randn_like(x)).clamp(0, 1))


class CountingModel(nn.Module):
    """Counts forward passes (the counter is not part of the state dict, so the weights hash is unchanged)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x)


def _loss(target: torch.Tensor | None, y: torch.Tensor):
    if target is None:
        return lambda logits: cross_entropy(logits, y)
    return lambda logits: targeted_cross_entropy(logits, target)


@dataclass(frozen=True, kw_only=True)
class OneStepSign(Attack):
    """FGSM written for the tests: one signed gradient step of size eps."""

    norm: ClassVar[Norm] = Norm.LINF
    eps: float = 0.1
    eot_samples: int = 1

    def run(self, model, x, y, target):
        estimator = EOTGradient(self.eot_samples) if self.eot_samples > 1 else AutogradGradient()
        _, grad = estimator(model, x, _loss(target, y))
        return x + self.eps * grad.sign()


@dataclass(frozen=True, kw_only=True)
class IterativeSign(Attack):
    """PGD written for the tests: ``steps`` signed steps of ``eps/4`` (or step_size), optional random start."""

    norm: ClassVar[Norm] = Norm.LINF
    eps: float = 0.1
    steps: int = 10
    step_size: float | None = None
    random_start: bool = False
    eot_samples: int = 1

    def run(self, model, x, y, target):
        estimator = EOTGradient(self.eot_samples) if self.eot_samples > 1 else AutogradGradient()
        alpha = self.eps / 4 if self.step_size is None else self.step_size
        adv = x.clone()
        if self.random_start:
            adv = (x + (torch.rand_like(x) * 2 - 1) * self.eps).clamp(0, 1)
        for _ in range(self.steps):
            _, grad = estimator(model, adv, _loss(target, y))
            adv = x + (adv + alpha * grad.sign() - x).clamp(-self.eps, self.eps)
            adv = adv.clamp(0, 1)
        return adv


@dataclass(frozen=True, kw_only=True)
class DoNothing(Attack):
    """Returns its input: a broken attack the checks must catch."""

    norm: ClassVar[Norm] = Norm.LINF
    eps: float = 0.1
    steps: int = 1

    def run(self, model, x, y, target):
        return x.clone()
