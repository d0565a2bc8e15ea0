"""The objective contract fit drives: hooks called directly on every objective, with defaults for the ones a
user-written objective leaves out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.defenses.registry import create_defense
from advlab.errors import InputError
from advlab.objectives import CrossEntropy, HookedObjective, TrainingObjective, with_hooks
from advlab.train import TrainConfig, fit


def tiny_data(n: int = 24) -> ImageDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 6, 6), generator=generator, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 3, ("a", "b", "c"), "tiny/train")


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 3))


@dataclass
class BatchOnly:
    """A user objective with only the batch hook (no base class)."""

    progress: list[float] = field(default_factory=list)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)

    def on_batch_start(self, epochs_done: float) -> None:
        self.progress.append(epochs_done)

    def describe(self) -> dict[str, Any]:
        return {"name": "batch_only"}


def test_every_advlab_objective_has_both_hooks_and_is_driven_as_is() -> None:
    for objective in (CrossEntropy(), create_defense("pgd_at"), create_defense("gaussian_augmentation", scale=0.1)):
        assert isinstance(objective, HookedObjective)
        assert with_hooks(objective) is objective


def test_a_user_objective_gets_the_missing_hook_as_a_default() -> None:
    objective = BatchOnly()
    assert isinstance(objective, TrainingObjective) and not isinstance(objective, HookedObjective)
    hooked = with_hooks(objective)
    hooked.on_epoch_start(tiny_model(), 0)  # the default: nothing
    result = fit(tiny_model(), tiny_data(), config=TrainConfig(epochs=2, batch_size=8), objective=objective,
                 quiet=True, device="cpu")
    assert objective.progress == pytest.approx([1 / 3, 2 / 3, 1.0, 4 / 3, 5 / 3, 2.0])
    assert result.card["objective"] == {"name": "batch_only"}


def test_something_without_describe_is_no_objective() -> None:
    with pytest.raises(InputError, match="describe"):
        with_hooks(lambda model, x, y: model(x).sum())
