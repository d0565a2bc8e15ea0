"""Helpers and fixtures of the pipeline tests: a small MLP trained on the bundled MNIST sample (no data folder)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.data.sources import load_dataset


def make_mlp() -> nn.Module:
    """784-64-10 MLP; the kill-and-resume test's subprocess builds the same one (keep them in sync)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.fixture(scope="session")
def tiny_mlp() -> nn.Module:
    """The MLP after one epoch on 3,000 bundled training images (~85 % test accuracy, not robust)."""
    train = load_dataset("mnist-sample", "train").subset(3000, seed=0)
    torch.manual_seed(0)
    model = make_mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for x, y in train.batches(100, shuffle=True, generator=torch.Generator().manual_seed(0)):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def test_points() -> ImageDataset:
    return load_dataset("mnist-sample", "test").subset(120, seed=0)


class NoisyInput(nn.Module):
    """Gaussian input noise in eval mode too: a randomized model that does not declare itself."""

    def __init__(self, model: nn.Module, std: float = 0.2) -> None:
        super().__init__()
        self.model, self.std = model, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x + self.std * torch.randn_like(x)).clamp(0, 1))


class ForwardCounter:
    """Counts forward passes of a model through a hook (the model's class and weights stay unchanged)."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: object, output: object) -> None:
        self.calls += 1

    def close(self) -> None:
        self.handle.remove()
