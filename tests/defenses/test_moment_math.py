"""Per-layer moment math of the stochastic feedforward network against exact references and Monte Carlo."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlab.defenses.moments import (
    Moments,
    adaptive_avg_pool2d_moments,
    avg_pool2d_moments,
    batchnorm_moments,
    conv2d_batchnorm_moments,
    conv2d_moments,
    linear_moments,
    max_of_gaussians,
    max_pool2d_moments,
    relu_moments,
    relu_moments_fused,
)


def exact_linear_variance(fn, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Var of fn(X) for a linear (affine) fn and independent X: Σ_j J_ij² var_j, with J the exact Jacobian."""
    jacobian = torch.autograd.functional.jacobian(fn, mean.double())
    jacobian = jacobian.reshape(-1, mean.numel())
    return (jacobian**2 @ var.double().reshape(-1)).reshape(fn(mean.double()).shape)


def test_relu_moments_match_monte_carlo_per_unit() -> None:
    generator = torch.Generator().manual_seed(0)
    mean = torch.linspace(-2.0, 2.0, 21)
    std = torch.linspace(0.1, 1.5, 21)
    samples = torch.relu(mean + std * torch.randn(100_000, 21, generator=generator))
    out = relu_moments(mean, std**2)
    torch.testing.assert_close(out.mean, samples.mean(0), atol=0.01 * std.max().item(), rtol=0)
    torch.testing.assert_close(out.var, samples.var(0), atol=0.01, rtol=0.02)


def test_relu_moments_are_stable_far_from_zero_and_exact_without_noise() -> None:
    # μ ≫ σ: the naive E[X²] − E[X]² loses every digit of σ² in float32; the rule must return σ².
    for rule in (relu_moments, relu_moments_fused):
        out = rule(torch.tensor([100.0, -100.0]), torch.tensor([1e-4, 1e-4]))
        torch.testing.assert_close(out.mean, torch.tensor([100.0, 0.0]))
        torch.testing.assert_close(out.var, torch.tensor([1e-4, 0.0]), rtol=1e-3, atol=1e-9)
    mean = torch.randn(1000)
    deterministic = relu_moments(mean, torch.zeros(1000))
    torch.testing.assert_close(deterministic.mean, torch.relu(mean), atol=1e-6, rtol=0)


def test_max_of_two_gaussians_matches_monte_carlo() -> None:
    generator = torch.Generator().manual_seed(1)
    mean1, mean2 = torch.tensor([0.0, 1.0, -0.5, 3.0]), torch.tensor([0.0, 0.2, 0.5, -3.0])
    var1, var2 = torch.tensor([1.0, 0.25, 0.04, 1.0]), torch.tensor([1.0, 1.0, 0.5, 0.01])
    draws1 = mean1 + var1.sqrt() * torch.randn(200_000, 4, generator=generator)
    draws2 = mean2 + var2.sqrt() * torch.randn(200_000, 4, generator=generator)
    samples = torch.maximum(draws1, draws2)
    out = max_of_gaussians(mean1, var1, mean2, var2)
    torch.testing.assert_close(out.mean, samples.mean(0), atol=0.01, rtol=0)
    torch.testing.assert_close(out.var, samples.var(0), atol=0.01, rtol=0.02)


def test_linear_conv_batchnorm_are_exact() -> None:
    torch.manual_seed(2)
    linear = nn.Linear(6, 4)
    conv = nn.Conv2d(2, 3, kernel_size=3, stride=2, padding=1, groups=1)
    bn = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.2, 2.0)
    mean, var = torch.randn(1, 6), torch.rand(1, 6)
    out = linear_moments(Moments(mean, var), linear.weight, linear.bias)
    torch.testing.assert_close(out.mean, linear(mean))
    expected = exact_linear_variance(lambda t: F.linear(t, linear.weight.double(), linear.bias.double()), mean, var)
    torch.testing.assert_close(out.var.double(), expected, rtol=1e-5, atol=1e-7)

    mean, var = torch.randn(1, 2, 5, 5), torch.rand(1, 2, 5, 5)
    out = batchnorm_moments(conv2d_moments(Moments(mean, var), conv), bn)
    with torch.no_grad():
        torch.testing.assert_close(out.mean, bn(conv(mean)))
    conv_bn = nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn)).double()
    expected = exact_linear_variance(conv_bn, mean, var)
    torch.testing.assert_close(out.var.double(), expected, rtol=1e-5, atol=1e-7)


def test_folded_conv_batchnorm_equals_conv_then_batchnorm() -> None:
    torch.manual_seed(7)
    conv, bn = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True), nn.BatchNorm2d(4).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.2, 2.0)
    moments = Moments(torch.randn(2, 3, 6, 6), torch.rand(2, 3, 6, 6))
    folded = conv2d_batchnorm_moments(moments, conv, bn)
    separate = batchnorm_moments(conv2d_moments(moments, conv), bn)
    torch.testing.assert_close(folded.mean, separate.mean)
    torch.testing.assert_close(folded.var, separate.var)


@pytest.mark.parametrize("use", ["both", "mean", "var"])
def test_fused_relu_equals_reference_in_value_and_gradient(use: str) -> None:
    generator = torch.Generator().manual_seed(8)
    mean = (torch.randn(500, dtype=torch.float64, generator=generator) * 3).requires_grad_()
    var = (torch.rand(500, dtype=torch.float64, generator=generator) * 2).requires_grad_()
    weights = torch.rand(500, dtype=torch.float64, generator=generator)

    def loss(out: Moments) -> torch.Tensor:
        terms = {"both": out.mean.sum() + (weights * out.var).sum(), "mean": out.mean.sum(),
                 "var": (weights * out.var).sum()}
        return terms[use]

    reference, fused = relu_moments(mean, var), relu_moments_fused(mean, var)
    torch.testing.assert_close(fused.mean, reference.mean)
    torch.testing.assert_close(fused.var, reference.var)
    expected = torch.autograd.grad(loss(reference), (mean, var))
    actual = torch.autograd.grad(loss(fused), (mean, var))
    for got, want in zip(actual, expected):
        torch.testing.assert_close(got, want)


def test_fused_relu_passes_gradcheck() -> None:
    mean = torch.randn(12, dtype=torch.float64, requires_grad=True)
    var = (torch.rand(12, dtype=torch.float64) + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda m, v: tuple(relu_moments_fused(m, v)), (mean, var))


@pytest.mark.parametrize(
    "kernel,stride,padding,ceil_mode,count_include_pad,divisor",
    [(2, 2, 0, False, True, None), (3, 2, 1, False, True, None), (3, 2, 1, False, False, None),
     (3, 2, 0, True, True, None), (3, 2, 1, True, False, None), (2, 1, 0, False, True, 3)],
)
def test_avg_pool_variance_is_exact(kernel, stride, padding, ceil_mode, count_include_pad, divisor) -> None:
    torch.manual_seed(3)
    mean, var = torch.randn(1, 2, 7, 7), torch.rand(1, 2, 7, 7)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    out = avg_pool2d_moments(Moments(mean, var), *args)
    torch.testing.assert_close(out.mean, F.avg_pool2d(mean, *args))
    expected = exact_linear_variance(lambda t: F.avg_pool2d(t, *args), mean, var)
    torch.testing.assert_close(out.var.double(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("output_size", [1, 3, (2, 4)])
def test_adaptive_avg_pool_variance_is_exact(output_size) -> None:
    mean, var = torch.randn(2, 2, 7, 5), torch.rand(2, 2, 7, 5)
    out = adaptive_avg_pool2d_moments(Moments(mean, var), output_size)
    torch.testing.assert_close(out.mean, F.adaptive_avg_pool2d(mean, output_size))
    expected = exact_linear_variance(lambda t: F.adaptive_avg_pool2d(t, output_size), mean, var)
    torch.testing.assert_close(out.var.double(), expected, rtol=1e-5, atol=1e-7)


def naive_max_pool_moments(mean, var, kernel, stride, padding, sort):
    """Reference: loop over every output cell, gather its window, fold max_of_gaussians in (sorted) order."""
    n, c, h, w = mean.shape
    h_out = (h + 2 * padding - kernel) // stride + 1
    w_out = (w + 2 * padding - kernel) // stride + 1
    out_mean, out_var = torch.empty(n, c, h_out, w_out), torch.empty(n, c, h_out, w_out)
    for b, ch, i, j in itertools.product(range(n), range(c), range(h_out), range(w_out)):
        cells = []
        for di, dj in itertools.product(range(kernel), range(kernel)):
            row, col = i * stride + di - padding, j * stride + dj - padding
            if 0 <= row < h and 0 <= col < w:
                cells.append((mean[b, ch, row, col], var[b, ch, row, col]))
        if sort:
            cells.sort(key=lambda cell: cell[0].item())
        acc_mean, acc_var = cells[0]
        for cell_mean, cell_var in cells[1:]:
            acc_mean, acc_var = max_of_gaussians(acc_mean, acc_var, cell_mean, cell_var)
        out_mean[b, ch, i, j], out_var[b, ch, i, j] = acc_mean, acc_var
    return out_mean, out_var


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 0)])
@pytest.mark.parametrize("sort", [True, False])
def test_vectorized_max_pool_equals_naive_loop(kernel, stride, padding, sort) -> None:
    torch.manual_seed(4)
    mean, var = torch.randn(2, 2, 5, 5), torch.rand(2, 2, 5, 5) * 0.5
    out = max_pool2d_moments(Moments(mean, var), kernel, stride, padding, sort=sort)
    ref_mean, ref_var = naive_max_pool_moments(mean, var, kernel, stride, padding, sort)
    torch.testing.assert_close(out.mean, ref_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.var, ref_var, rtol=1e-5, atol=1e-6)


def test_sort_changes_the_fold_order() -> None:
    # Clark's pairwise fold is order dependent; if sort=True were ignored, both results would coincide.
    torch.manual_seed(5)
    mean, var = torch.randn(1, 4, 4, 4), torch.rand(1, 4, 4, 4) + 0.5
    sorted_out = max_pool2d_moments(Moments(mean, var), 2, sort=True)
    raster_out = max_pool2d_moments(Moments(mean, var), 2, sort=False)
    assert (sorted_out.mean - raster_out.mean).abs().max() > 1e-4


@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode", [(3, 2, 0, 1, True), (3, 2, 1, 1, True),
                                                                     (2, 2, 0, 2, False), (3, 3, 1, 1, True)])
def test_max_pool_without_noise_is_max_pool(kernel, stride, padding, dilation, ceil_mode) -> None:
    mean = torch.randn(2, 3, 8, 8)
    out = max_pool2d_moments(Moments(mean, torch.zeros_like(mean)), kernel, stride, padding, dilation, ceil_mode)
    expected = F.max_pool2d(mean, kernel, stride, padding, dilation, ceil_mode)
    torch.testing.assert_close(out.mean, expected, atol=1e-6, rtol=0)
    assert out.var.abs().max() < 1e-10


@pytest.mark.parametrize("sort", [True, False])
def test_one_max_pool_layer_is_close_to_monte_carlo(sort) -> None:
    generator = torch.Generator().manual_seed(6)
    mean = torch.randn(1, 3, 6, 6, generator=generator)
    var = torch.rand(1, 3, 6, 6, generator=generator) * 0.5 + 0.1
    samples = F.max_pool2d(mean + var.sqrt() * torch.randn(20_000, 3, 6, 6, generator=generator), 2)
    out = max_pool2d_moments(Moments(mean, var), 2, sort=sort)
    mc_mean, mc_std = samples.mean(0, keepdim=True), samples.std(0, keepdim=True)
    # Pairwise folding treats each partial max as Gaussian: close, not exact (error << the output's std).
    assert ((out.mean - mc_mean).abs() / mc_std).max() < 0.1
    assert ((out.var.sqrt() - mc_std).abs() / mc_std).max() < 0.1


def test_moment_rules_are_differentiable() -> None:
    mean = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    var = (torch.rand(1, 1, 4, 4, dtype=torch.float64) + 0.1).requires_grad_()

    def pipeline(m, v):
        out = relu_moments(m, v)
        out = max_pool2d_moments(out, 2)
        return out.mean.sum() + out.var.sum()

    assert torch.autograd.gradcheck(pipeline, (mean, var))
