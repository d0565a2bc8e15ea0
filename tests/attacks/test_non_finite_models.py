"""A model that outputs NaN is an error on the first batch, never a scored accuracy (issue 15, item 5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks.fgsm import FGSM
from advlab.attacks.pgd import PGD
from advlab.errors import InputError
from advlab.evaluate import evaluate_attack


class NaNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * float("nan")


@pytest.mark.parametrize("attack", [FGSM(eps=0.1), PGD(eps=0.1, steps=2)])
def test_attacks_refuse_nan_logits(attack) -> None:
    x, y = torch.rand(5, 1, 2, 2), torch.zeros(5, dtype=torch.long)
    with pytest.raises(InputError, match="NaN or infinite logits"):
        attack(NaNModel(), x, y)


def test_evaluation_refuses_nan_logits_before_any_attack() -> None:
    x, y = torch.rand(8, 1, 2, 2), torch.zeros(8, dtype=torch.long)
    with pytest.raises(InputError, match="NaN or infinite logits"):
        evaluate_attack(NaNModel(), (x, y), PGD(eps=0.1, steps=2), device="cpu")
