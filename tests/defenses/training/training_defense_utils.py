"""Helpers shared by the training-defense tests: a tiny MNIST CNN and a minimal training loop.

Kept apart from ``conftest.py`` so test modules can import them (``from training_defense_utils import ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.models.layers import MNIST_MEAN, MNIST_STD, Normalize


@contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread for these tiny models (batch 64, ~4k parameters): a second thread buys nothing here,
    and on the shared 2-core machine its spin-waiting multiplied CPU time by 2-4 under load (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class TinyCNN(nn.Module):
    """Normalize -> conv 5x5/2 (8) -> conv 5x5/2 (16) -> [dropout] -> linear: ~4k parameters, trains in seconds."""

    def __init__(self, dropout: float = 0.0, batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [Normalize(MNIST_MEAN, MNIST_STD), nn.Conv2d(1, 8, 5, stride=2)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(8))
        layers += [nn.ReLU(), nn.Conv2d(8, 16, 5, stride=2), nn.ReLU(), nn.Flatten()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(16 * 4 * 4, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def train_steps(model: nn.Module, data: ImageDataset, objective: Objective = cross_entropy_objective, *,
                epochs: int = 2, lr: float = 3e-3, batch_size: int = 64, seed: int = 0) -> nn.Module:
    """A minimal Adam loop calling ``objective.on_epoch_start`` like fit does (tests must not depend on fit)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with one_thread():
        for epoch in range(epochs):
            if hasattr(objective, "on_epoch_start"):
                objective.on_epoch_start(model, epoch)
            for x, y in data.batches(batch_size, shuffle=True, generator=generator):
                loss = objective(model, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # leave no .grad behind on a model other tests reuse
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=-1) == y).float().mean())
