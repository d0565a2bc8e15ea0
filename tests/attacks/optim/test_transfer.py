"""Transfer and substitute attacks: crafted elsewhere, zero or label-only queries on the target."""

from __future__ import annotations

import torch
from torch import nn

from advlab.attacks.fgsm import FGSM
from advlab.attacks.substitute import SubstituteAttack
from advlab.attacks.transfer import TransferAttack

from .conftest import accuracy, assert_in_box


def test_transfer_to_itself_equals_white_box(mnist_cnn, batch) -> None:
    x, y = batch
    white_box = FGSM(eps=0.2)(mnist_cnn, x, y)
    transferred = TransferAttack(source=mnist_cnn, attack=FGSM(eps=0.2))(mnist_cnn, x, y)
    assert torch.equal(transferred.adv, white_box.adv)
    assert torch.equal(transferred.success, white_box.success)
    assert transferred.queries == 0


def test_transfer_to_another_model(mnist_cnn, mnist_mlp, batch) -> None:
    x, y = batch
    result = TransferAttack(source=mnist_cnn, attack=FGSM(eps=0.3))(mnist_mlp, x, y)
    assert result.queries == 0
    assert result.robust_accuracy < accuracy(mnist_mlp, x, y) - 0.3
    assert float(result.norms["linf"].max()) <= 0.3 + 1e-6
    assert_in_box(result.adv)


class LabelsOnly(nn.Module):
    """Exposes only the argmax of a model, as one-hot "logits" with no gradient: a label-only oracle."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = self.model(x)
        return nn.functional.one_hot(logits.argmax(1), logits.shape[1]).float()


def test_substitute_from_labels_only(mnist_mlp, batch) -> None:
    x, y = batch
    oracle = LabelsOnly(mnist_mlp)
    rounds = 4
    result = SubstituteAttack(attack=FGSM(eps=0.3), substitute_epochs=rounds, train_epochs=10)(oracle, x, y)
    assert result.queries == x.shape[0] * 2 ** (rounds - 1) + 1
    assert result.robust_accuracy < accuracy(mnist_mlp, x, y) - 0.3
    assert float(result.norms["linf"].max()) <= 0.3 + 1e-6
    assert_in_box(result.adv)


def test_substitute_with_held_out_seed_set(mnist, mnist_mlp, batch) -> None:
    x, y = batch
    held_out = mnist["test_x"][-100:]
    result = SubstituteAttack(substitute_epochs=3, seed_images=held_out)(mnist_mlp, x, y)
    assert result.queries == 100 * 2 ** (3 - 1) + 1
    assert result.robust_accuracy < accuracy(mnist_mlp, x, y) - 0.2
