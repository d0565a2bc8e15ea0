"""Attacks on a randomized model never let one noise draw decide success (AUDIT.md run F, issue 14).

PGD's early stop and APGD's "keep the first adversarial iterate" read the logits of the gradient pass. On a model
whose forward pass is random those logits are one draw: a sample frozen where one draw was fooled is judged on a
fresh draw at the end, and robust accuracy comes out inflated. The attacks detect such a model (declared or not)
and run every step instead.
"""

from __future__ import annotations

import torch
from torch import nn

from advlab.attacks.apgd import APGD
from advlab.attacks.gradients import AutogradGradient
from advlab.attacks.pgd import PGD
from advlab.attacks.randomized import declares_stochastic, forward_is_random


class NoisyLogits(nn.Module):
    """A trained network whose eval-mode logits get Gaussian noise (undeclared: found by probing)."""

    def __init__(self, model: nn.Module, std: float) -> None:
        super().__init__()
        self.model, self.std = model, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits + self.std * torch.randn_like(logits)


def test_the_probe_finds_undeclared_noise_and_leaves_the_rng_alone(trained_cnn, test_batch) -> None:
    x, _ = test_batch
    noisy = NoisyLogits(trained_cnn, std=2.0)
    assert not declares_stochastic(noisy) and forward_is_random(noisy, x)
    assert not forward_is_random(trained_cnn, x)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    forward_is_random(noisy, x)
    assert torch.equal(torch.rand(3), expected), "probing must not shift the caller's random stream"


def test_pgd_early_stop_does_not_freeze_samples_on_one_noise_draw(trained_cnn, test_batch) -> None:
    x, y = test_batch
    noisy = NoisyLogits(trained_cnn, std=3.0)
    results = {}
    for early_stop in (True, False):
        torch.manual_seed(0)
        results[early_stop] = PGD(eps=0.1, step_size=0.02, steps=7, seed=0, early_stop=early_stop).perturb(noisy, x, y)
    # Same seed, same noise draws: early stop is off for the randomized model, so both runs are the same run.
    torch.testing.assert_close(results[True], results[False], atol=0, rtol=0)


def test_pgd_early_stop_still_works_on_a_deterministic_model(trained_cnn, test_batch) -> None:
    x, y = test_batch
    fast = PGD(eps=0.1, steps=10, seed=0)(trained_cnn, x, y)
    fixed = PGD(eps=0.1, steps=10, seed=0, early_stop=False)(trained_cnn, x, y)
    assert fast.queries < 0.8 * fixed.queries  # the probe costs no queries and early stop still drops samples


def test_apgd_on_a_randomized_model_keeps_highest_loss_points_not_a_lucky_draw(trained_cnn, test_batch) -> None:
    x, y = test_batch
    noisy = NoisyLogits(trained_cnn, std=3.0)
    torch.manual_seed(0)
    plain = APGD(eps=0.1, steps=10, seed=0).perturb(noisy, x, y)
    torch.manual_seed(0)
    # A custom estimator hides the logits: the attack then returns its highest-loss iterates, never a first
    # adversarial one. On a randomized model the autograd path must behave the same way.
    blind = APGD(eps=0.1, steps=10, seed=0, gradient=AutogradGradient()).perturb(noisy, x, y)
    torch.testing.assert_close(plain, blind, atol=0, rtol=0)
