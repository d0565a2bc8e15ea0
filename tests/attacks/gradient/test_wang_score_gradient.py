"""Wang, Kunin, Pyron's targeted attacks: FGSM and the non-sign gradient step on the class score F_t."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks.fgsm import FGSM, GradientStep
from advlab.errors import InputError


def _score_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∇ₓ F_t(x) by autograd, per image."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return grad


def test_targeted_fgsm_with_score_loss_is_the_papers_formula(trained_cnn, test_batch) -> None:
    x, y = test_batch[0][:64], test_batch[1][:64]
    target = (y + 1) % 10
    eps = 0.2
    expected = (x + eps * _score_gradient(trained_cnn, x, target).sign()).clamp(0, 1)
    adv = FGSM(eps=eps, loss="score")(trained_cnn, x, target=target).adv
    assert torch.allclose(adv, expected, atol=1e-6)
    # The log-softmax default is a different direction, so the option must matter.
    log_softmax = FGSM(eps=eps)(trained_cnn, x, target=target).adv
    assert (log_softmax != adv).float().mean() > 0.01


def test_gradient_step_is_the_score_gradient_rescaled_to_linf_eps(trained_cnn, test_batch) -> None:
    x, y = test_batch[0][:64], test_batch[1][:64]
    target = (y + 3) % 10
    eps = 0.5
    grad = _score_gradient(trained_cnn, x, target)
    scale = grad.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    expected = (x + eps * grad / scale).clamp(0, 1)
    adv = GradientStep(eps=eps, loss="score")(trained_cnn, x, target=target).adv
    assert torch.allclose(adv, expected, atol=1e-5)
    # Unlike FGSM, most pixels move much less than ε.
    moved = (adv - x).abs()
    assert moved.amax() <= eps + 1e-6 and moved.median() < 0.1 * eps


def test_iterated_gradient_step_stops_at_the_target_inside_the_ball(trained_cnn, test_batch) -> None:
    x, y = test_batch[0][:64], test_batch[1][:64]
    target = (y + 1) % 10
    one = GradientStep(eps=0.4, loss="score")(trained_cnn, x, target=target)
    many = GradientStep(eps=0.4, steps=30, step_size=0.04, loss="score")(trained_cnn, x, target=target)
    assert many.success.float().mean() > one.success.float().mean() + 0.2
    assert (many.adv - x).abs().amax() <= 0.4 + 1e-6
    # Early stop: a successful image is its first iterate on the target, not a longer walk.
    with torch.no_grad():
        assert (trained_cnn(many.adv).argmax(1)[many.success] == target[many.success]).all()
    with pytest.raises(InputError):
        GradientStep(eps=0.3, steps=0)
