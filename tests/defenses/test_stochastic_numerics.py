"""Numerical details of the stochastic feedforward network: clamped standard scores, the configurable ε floor
(the paper's 1e-20, App. C.2) and the 1:1 ensemble computed from logits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advlab.defenses.moments import Z_LIMIT, max_of_gaussians, relu_moments, relu_moments_fused
from advlab.defenses.stochastic import (
    MomentNetwork,
    MomentPropagationTransform,
    ProbabilityEnsemble,
    ensemble_log_probabilities,
)
from advlab.errors import InputError


def censored_normal_float64(mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3 with θ = 0 in float64, no clamping: E[Y] = μΦ(z) + σφ(z), Var[Y] = σ²Φ + E[Y](μ − E[Y])."""
    mean, var = mean.double(), var.double()
    sigma = var.sqrt()
    z = mean / sigma
    cdf, pdf = torch.special.ndtr(z), torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    out_mean = mean * cdf + sigma * pdf
    return out_mean, (var * cdf + out_mean * (mean - out_mean)).clamp_min(0.0)


@pytest.mark.parametrize("rule", [relu_moments, relu_moments_fused])
def test_clamped_scores_leave_relu_moments_unchanged_far_in_both_tails(rule) -> None:
    # z = μ/σ from −1e6 to 1e6: beyond ±Z_LIMIT the float32 moments must still be the exact ones.
    z = torch.tensor([-1e6, -300.0, -40.0, -Z_LIMIT - 1, -3.0, 0.0, 2.0, Z_LIMIT + 1, 40.0, 300.0, 1e6])
    sigma = torch.full_like(z, 0.01)
    mean, var = z * sigma, sigma**2
    out = rule(mean, var, var_floor=1e-20)
    ref_mean, ref_var = censored_normal_float64(mean, var)
    torch.testing.assert_close(out.mean.double(), ref_mean, atol=1e-7, rtol=1e-5)
    torch.testing.assert_close(out.var.double(), ref_var, atol=1e-9, rtol=1e-4)
    assert (out.mean >= 0).all()  # E[max(0, X)] is never negative, not even after rounding


def test_relu_mean_stays_non_negative_for_extreme_inputs() -> None:
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(10_000, generator=generator) * 1e3
    var = torch.rand(10_000, generator=generator) * 1e-6
    out = relu_moments_fused(mean, var, var_floor=1e-20)
    assert (out.mean >= 0).all() and torch.isfinite(out.var).all()
    positive = mean > 1.0
    torch.testing.assert_close(out.mean[positive], mean[positive])


def test_max_of_far_apart_gaussians_is_the_larger_one() -> None:
    out = max_of_gaussians(torch.tensor([1e4, -5.0]), torch.tensor([0.25, 1e-8]),
                           torch.tensor([0.0, 5.0]), torch.tensor([1.0, 1e-8]), var_floor=1e-20)
    torch.testing.assert_close(out.mean, torch.tensor([1e4, 5.0]))
    torch.testing.assert_close(out.var, torch.tensor([0.25, 1e-8]), rtol=1e-3, atol=1e-12)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5)).eval()


def test_var_floor_is_configurable_and_the_papers_epsilon_is_stable() -> None:
    model = small_net()
    network = MomentPropagationTransform(input_variance=0.0, var_floor=1e-20).apply(model)
    assert isinstance(network, MomentNetwork) and network.var_floor == 1e-20
    assert MomentPropagationTransform(var_floor=1e-20).describe()["var_floor"] == 1e-20
    x = torch.rand(3, 3, 8, 8)
    with torch.no_grad():
        # σ_N² = 0 with ε = 1e-20: σ ≈ 1e-10 in every denominator, yet the network is the standard one, finite.
        torch.testing.assert_close(network(x), model(x), atol=1e-5, rtol=1e-5)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(MomentNetwork(model, 0.01, var_floor=1e-20)(x).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with pytest.raises(InputError, match="var_floor"):
        MomentPropagationTransform(var_floor=0.0)


def test_ensemble_from_logits_equals_the_ensemble_module() -> None:
    model = small_net()
    network = MomentNetwork(model, 0.02)
    x = torch.rand(4, 3, 8, 8)
    with torch.no_grad():
        expected = ProbabilityEnsemble(network)(x)
        from_logits = ensemble_log_probabilities(model(x), network(x))
    torch.testing.assert_close(from_logits, expected)
    probabilities = from_logits.exp()
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(4))
    # 1:1 average of the two softmaxes (Fig. 4), not of the logits
    with torch.no_grad():
        average = (model(x).softmax(-1) + network(x).softmax(-1)) / 2
    torch.testing.assert_close(probabilities, average)
