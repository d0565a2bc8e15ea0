"""Noise defenses: augmentation objectives draw the right noise; the input-noise wrapper is randomized."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from training_defense_utils import accuracy

from advlab.defenses.noise import (
    GaussianNoiseAugmentation,
    InputNoise,
    RandomSignNoiseTraining,
    add_noise,
)
from advlab.errors import InputError
from advlab.evaluate.randomness import declares_stochastic


def test_random_sign_noise_moves_every_pixel_by_exactly_eps_unless_clipped() -> None:
    torch.manual_seed(0)
    x = torch.full((64, 1, 8, 8), 0.5)
    noisy = RandomSignNoiseTraining(scale=0.3).perturb(torch.nn.Identity(), x, torch.zeros(64, dtype=torch.long))
    delta = noisy - x
    torch.testing.assert_close(delta.abs(), torch.full_like(x, 0.3))
    assert abs(float((delta > 0).float().mean()) - 0.5) < 0.03  # signs are fair coin flips
    at_edges = add_noise(torch.zeros(1000, 1, 1, 1), "random_sign", 0.3)
    assert at_edges.min() == 0 and at_edges.max() == pytest.approx(0.3)  # clipped to [0, 1]


def test_gaussian_augmentation_has_the_requested_scale() -> None:
    torch.manual_seed(0)
    x = torch.full((256, 1, 16, 16), 0.5)
    delta = GaussianNoiseAugmentation(scale=0.1).perturb(torch.nn.Identity(), x, torch.zeros(256).long()) - x
    assert float(delta.std()) == pytest.approx(0.1, rel=0.03) and abs(float(delta.mean())) < 0.005


def test_noise_augmentation_loss_mixes_clean_and_noisy(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:64], test_batch[1][:64]
    objective = RandomSignNoiseTraining(scale=0.3, clean_weight=0.5)
    torch.manual_seed(5)
    loss = objective(trained_cnn, x, y)
    torch.manual_seed(5)
    noisy = add_noise(x, "random_sign", 0.3)
    expected = 0.5 * F.cross_entropy(trained_cnn(noisy), y) + 0.5 * F.cross_entropy(trained_cnn(x), y)
    torch.testing.assert_close(loss, expected)


def test_single_draw_input_noise_is_stochastic_and_differentiable(test_batch, trained_cnn) -> None:
    x, y = test_batch[0][:16], test_batch[1][:16]
    noisy = InputNoise(trained_cnn, kind="gaussian", scale=0.2)
    assert declares_stochastic(noisy) and not declares_stochastic(trained_cnn)
    first, second = noisy(x), noisy(x)
    assert (first - second).abs().amax() > 1e-3
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(noisy(xr), y), xr)
    assert grad.abs().sum() > 0
    noisy.eval()  # the noise does not depend on the mode
    assert (noisy(x) - noisy(x)).abs().amax() > 1e-3


def test_vote_returns_log_vote_shares_without_gradients(test_batch, trained_cnn) -> None:
    x, y = test_batch
    torch.manual_seed(0)
    voting = InputNoise(trained_cnn, kind="random_sign", scale=0.2, votes=9, floor=1e-3)
    scores = voting(x)
    shares = scores.exp()
    assert not scores.requires_grad
    # classes without votes sit at the floor; the others hold multiples of 1/9 summing to one
    voted = shares.masked_fill(shares <= 1e-3 + 1e-6, 0.0)
    torch.testing.assert_close(voted * 9, (voted * 9).round(), atol=1e-4, rtol=0)
    torch.testing.assert_close(voted.sum(dim=-1), torch.ones(len(x)))
    assert (voted < 1).any()  # some images got split votes: the draws really differ
    assert accuracy(voting, x, y) > 0.8
    single = voting.single_draw()
    assert single.votes == 1 and single.model is trained_cnn and single(x).requires_grad
    with pytest.raises(InputError, match="kind"):
        InputNoise(trained_cnn, kind="uniform", scale=0.1)
    with pytest.raises(InputError, match="votes"):
        InputNoise(trained_cnn, votes=0)
