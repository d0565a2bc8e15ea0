"""PNI's adversarial training (Rakin, He, Fan 2019): Eq. 11-12 defaults and the Table 1 switch that generates x̂
without the noise (``pni_in_generation=False``), on an MNIST TinyCNN with PNI-W."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.defenses.adversarial_training import FGSMMixedLoss, GradAlignTraining, PGDAdversarialTraining
from advlab.defenses.pni import inject_pni, pni_disabled, pni_layers


def test_pni_objective_is_eq11_with_pgd_from_x_on_predicted_labels() -> None:
    objective = PGDAdversarialTraining.pni(eps=8 / 255, step_size=2 / 255, steps=7)
    assert (objective.clean_weight, objective.labels, objective.random_start) == (0.5, "predicted", False)
    assert objective.pni_in_generation is True and objective.build_attack().random_start is False
    assert objective.describe()["pni_in_generation"] is True


def _noisy(trained_cnn: nn.Module) -> nn.Module:
    return inject_pni(trained_cnn, locations="W", alpha_init=0.5).train()


def test_generation_without_pni_is_deterministic_and_restores_the_noise(test_batch, trained_cnn) -> None:
    x = test_batch[0][:32]
    noisy = _noisy(trained_cnn)
    on = PGDAdversarialTraining.pni(eps=0.2, step_size=0.05, steps=3)
    off = PGDAdversarialTraining.pni(eps=0.2, step_size=0.05, steps=3, pni_in_generation=False)
    torch.manual_seed(0)
    with_noise = [on.perturb(noisy, x, None) for _ in range(2)]
    without = [off.perturb(noisy, x, None) for _ in range(2)]
    assert (with_noise[0] - with_noise[1]).abs().amax() > 0  # Eq. 12: a fresh noise draw per generation
    torch.testing.assert_close(without[0], without[1], rtol=0, atol=0)  # Eq. 2: the noise-free network
    with pni_disabled(noisy):
        torch.testing.assert_close(on.perturb(noisy, x, None), without[0], rtol=0, atol=0)
    assert all(layer.pni_enabled for _, layer in pni_layers(noisy)) and noisy.training


def test_the_training_loss_keeps_the_noise_when_generation_does_not(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:32], test_batch[1][:32]
    noisy = _noisy(trained_cnn)
    off = PGDAdversarialTraining.pni(eps=0.2, step_size=0.05, steps=3, pni_in_generation=False)
    torch.manual_seed(1)
    losses = [float(off(noisy, x, y).detach()) for _ in range(3)]
    assert len(set(losses)) == 3  # x̂ is the same each time, the loss on it is not: the noise is on there
    alpha = next(p for name, p in noisy.named_parameters() if "pni_alpha" in name)
    (grad,) = torch.autograd.grad(off(noisy, x, y), alpha)
    assert float(grad.abs().sum()) > 0  # and α still learns from the ensemble loss (Eq. 7-8)


@pytest.mark.parametrize("objective", [FGSMMixedLoss(eps=0.1, pni_in_generation=False),
                                       GradAlignTraining(eps=0.1, pni_in_generation=False)])
def test_every_attack_objective_honours_the_switch(objective, test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:16], test_batch[1][:16]
    noisy = _noisy(trained_cnn)
    first, second = objective.perturb(noisy, x, y), objective.perturb(noisy, x, y)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert objective.describe()["pni_in_generation"] is False
    assert all(layer.pni_enabled for _, layer in pni_layers(noisy))
