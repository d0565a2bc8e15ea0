"""Per-layer propagation of Gaussian moments (mean, variance) for the stochastic feedforward network.

Paper: Jin, Dundar, Culurciello, "Robust convolutional neural networks under adversarial noise" (2015,
arXiv:1511.06306). Each input pixel is treated as an independent Gaussian N(x, σ_N²); every layer maps the
(mean, variance) of its input to the (mean, variance) of its output, assuming the units of one layer are
independent Gaussians (the paper's approximation). The functions here are the per-layer math; the network walker
lives in :mod:`advlab.defenses.stochastic`.

Which rules are exact and which approximate:
    * conv / linear / eval batch-norm / average pooling / normalization: exact for independent inputs
      (mean' = A·mean + b, var' = A²·var); independence of the *outputs* is what the next layer assumes.
    * ReLU: exact per unit for a Gaussian input (censored normal); the output is not Gaussian, the next layer
      pretends it is.
    * max of two Gaussians: exact mean and variance (Clark 1961); the max of a window is folded pairwise, treating
      each partial max as Gaussian (approximate).

Shapes: every function takes and returns tensors of the same shape as the layer would (N, C, H, W) or (N, F);
``var`` always has the shape of ``mean``. All functions are differentiable (attacks run through them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

#: Smallest variance used under a square root (σ ≥ 1e-6): keeps Φ(μ/σ) finite and gradients free of 0/0 when a
#: unit is (numerically) deterministic. For |μ| ≫ 1e-6 the ReLU / max formulas are then exact in float32.
#: The paper regularizes its denominators with ε = 1e-20 (App. C.2); pass ``var_floor=1e-20`` for that.
DEFAULT_VAR_FLOOR = 1e-12

#: Standard scores z = μ/σ (ReLU) and a = (μ1 − μ2)/θ (max) are clamped to [−Z_LIMIT, Z_LIMIT] before Φ and φ.
#: Beyond 10, Φ is 1 or < 1e-23 and φ < 1e-22, so in float32 every moment is unchanged (below 1e-17 relative);
#: but exp(−z²/2) underflowing to subnormals and erfc of large arguments leave the vectorized CPU kernels for
#: scalar fallbacks (measured 10-40x slower per element), which made them most of the moment network's cost.
Z_LIMIT = 10.0

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2 = 1.0 / _SQRT_2


class Moments(NamedTuple):
    """The mean and variance of a tensor of independent Gaussian units (both of the tensor's shape)."""

    mean: torch.Tensor
    var: torch.Tensor


def _normal_pdf(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _normal_cdf(z: torch.Tensor) -> torch.Tensor:
    # erfc form: accurate in the lower tail, and much faster than torch.special.ndtr on CPU (measured ~10x).
    return 0.5 * torch.special.erfc(z * -_INV_SQRT_2)


def max_of_gaussians(mean1: torch.Tensor, var1: torch.Tensor, mean2: torch.Tensor, var2: torch.Tensor,
                     *, var_floor: float = DEFAULT_VAR_FLOOR) -> Moments:
    """Mean and variance of max(X1, X2) for independent X1 ~ N(μ1, σ1²), X2 ~ N(μ2, σ2²) (Clark 1961).

    With θ = sqrt(σ1² + σ2²) and a = (μ1 − μ2)/θ:
        E[max]  = μ1 Φ(a) + μ2 Φ(−a) + θ φ(a)
        E[max²] = (μ1² + σ1²) Φ(a) + (μ2² + σ2²) Φ(−a) + (μ1 + μ2) θ φ(a).
    The variance is computed in the algebraically equal form (d = μ1 − μ2)
        σ1² Φ(a) + σ2² Φ(−a) + d² Φ(a)Φ(−a) + d θ φ(a) (Φ(−a) − Φ(a)) − θ² φ(a)²,
    because E[max²] − E[max]² cancels catastrophically in float32 when |μ| ≫ σ (e.g. a ReLU unit far from 0).
    ``var_floor`` is added under the square root of θ². All arguments broadcast against each other.
    """
    theta = torch.sqrt(var1 + var2 + var_floor)
    diff = mean1 - mean2
    a = (diff / theta).clamp(-Z_LIMIT, Z_LIMIT)  # see Z_LIMIT: same values, fast kernels
    cdf, cdf_neg, pdf = _normal_cdf(a), _normal_cdf(-a), _normal_pdf(a)
    mean = mean1 * cdf + mean2 * cdf_neg + theta * pdf
    var = (var1 * cdf + var2 * cdf_neg + diff * diff * cdf * cdf_neg
           + diff * theta * pdf * (cdf_neg - cdf) - (theta * pdf) ** 2)
    return Moments(mean, var.clamp_min(0.0))


def relu_moments(mean: torch.Tensor, var: torch.Tensor, *, var_floor: float = DEFAULT_VAR_FLOOR) -> Moments:
    """Mean and variance of max(0, X), X ~ N(μ, σ²) (censored normal), elementwise, plain autograd.

    E[max(0,X)] = μΦ(μ/σ) + σφ(μ/σ); E[max(0,X)²] = (μ² + σ²)Φ(μ/σ) + μσφ(μ/σ) — the special case μ2 = σ2 = 0 of
    :func:`max_of_gaussians` (which computes the variance without cancellation). ``var_floor`` floors σ².
    This is the readable reference; networks use :func:`relu_moments_fused` (same values, less memory).
    """
    zero = torch.zeros((), dtype=mean.dtype, device=mean.device)
    out = max_of_gaussians(mean, var, zero, zero, var_floor=var_floor)
    # E[max(0, X)] >= 0; far below zero μΦ + σφ can round to a negative value of size < 1e-17·|μ|.
    return Moments(out.mean.clamp_min(0.0), out.var)


class _ReluMoments(torch.autograd.Function):
    """Censored-normal moments with a hand-written backward that saves 3 tensors instead of ~15 intermediates.

    With z = μ/σ, m = E[max(0,X)] = μΦ(z) + σφ(z), the second moment simplifies to σ²Φ + μm, so
        Var = σ²Φ + m(μ − m) = σ²Φ + m·σ·(z(1 − Φ) − φ)
    (written with σ(z(1−Φ) − φ) instead of μ − m, which cancels in float32 when z ≫ 1). Derivatives:
        ∂m/∂μ = Φ,  ∂m/∂σ² = φ/(2σ),  ∂Var/∂μ = 2m(1 − Φ),  ∂Var/∂σ² = Φ − mφ/σ.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(mean: torch.Tensor, var: torch.Tensor, var_floor: float) -> tuple[torch.Tensor, ...]:
        # In-place steps on 5 fresh buffers: on CPU a fresh large tensor costs more than the arithmetic on it.
        sigma = (var + var_floor).sqrt_()
        # −z/√2 with z clamped to ±Z_LIMIT (same values in float32, fast kernels; see Z_LIMIT)
        scratch = torch.div(mean, sigma).clamp_(-Z_LIMIT, Z_LIMIT).mul_(-_INV_SQRT_2)
        cdf = torch.special.erfc(scratch).mul_(0.5)  # Φ(z) = erfc(−z/√2)/2, accurate in both tails
        pdf = scratch.square().neg_().exp_().mul_(_INV_SQRT_2PI)  # φ(z)
        # E[max(0, X)] >= 0; below z = −Z_LIMIT, μΦ + σφ can round to a negative value of size < 1e-17·|μ|.
        out_mean = torch.mul(mean, cdf).addcmul_(sigma, pdf).clamp_min_(0.0)
        gap = scratch.mul_(-_SQRT_2)  # z
        gap.addcmul_(gap, cdf, value=-1.0).sub_(pdf).mul_(sigma)  # σ(z(1 − Φ) − φ) = μ − m without cancellation
        pdf_over_sigma = pdf.div_(sigma)
        out_var = sigma.square_().mul_(cdf).addcmul_(out_mean, gap).clamp_min_(0.0)
        return out_mean, out_var, cdf, pdf_over_sigma

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        out_mean, _, cdf, pdf_over_sigma = output
        ctx.save_for_backward(out_mean, cdf, pdf_over_sigma)
        ctx.mark_non_differentiable(cdf, pdf_over_sigma)
        ctx.set_materialize_grads(False)  # unused outputs (cdf, φ/σ, often the last variance) get no zero tensors

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_mean: torch.Tensor | None, grad_var: torch.Tensor | None,
                 *unused: Any) -> tuple[Any, ...]:
        out_mean, cdf, pdf_over_sigma = ctx.saved_tensors
        if grad_var is None:
            if grad_mean is None:
                return None, None, None
            return grad_mean * cdf, torch.mul(grad_mean, pdf_over_sigma).mul_(0.5), None
        # With g2 = 2·m·gVar and d = gMean − g2:  gμ = d·Φ + g2,  gσ² = d·(φ/σ)/2 + gVar·Φ.
        g2 = torch.mul(grad_var, out_mean).mul_(2.0)
        d = torch.neg(g2) if grad_mean is None else torch.sub(grad_mean, g2)
        grad_v = torch.mul(d, pdf_over_sigma).mul_(0.5).addcmul_(grad_var, cdf)
        grad_mu = d.mul_(cdf).add_(g2)
        return grad_mu, grad_v, None


def relu_moments_fused(mean: torch.Tensor, var: torch.Tensor, *, var_floor: float = DEFAULT_VAR_FLOOR) -> Moments:
    """:func:`relu_moments` computed in one autograd node (first-order gradients only; same values).

    About 5x less autograd memory and fewer temporaries, which matters: ReLUs are most of the moment network's
    cost (the convolutions only double). Double backward raises instead of returning a wrong value.
    """
    out_mean, out_var, _, _ = _ReluMoments.apply(mean, var, var_floor)
    return Moments(out_mean, out_var)


def affine_moments(moments: Moments, scale: torch.Tensor, shift: torch.Tensor | float = 0.0) -> Moments:
    """``scale·X + shift`` elementwise (broadcast): mean' = scale·mean + shift, var' = scale²·var. Exact."""
    return Moments(moments.mean * scale + shift, moments.var * (scale * scale))


def linear_moments(moments: Moments, weight: torch.Tensor, bias: torch.Tensor | None) -> Moments:
    """``y = x Wᵀ + b`` with independent inputs: mean' = mean Wᵀ + b, var' = var (W²)ᵀ. Exact. (N, in) -> (N, out)."""
    return Moments(F.linear(moments.mean, weight, bias), F.linear(moments.var, weight * weight))


def conv2d_moments(moments: Moments, conv: torch.nn.Conv2d) -> Moments:
    """A 2-D convolution with independent inputs: mean' = W∗mean + b, var' = (W²)∗var. Exact.

    Uses the module's own stride/padding/dilation/groups/padding mode; zero padding pads the variance with 0 too,
    which is right (a padded zero is deterministic).
    """
    weight = conv.weight
    mean = conv._conv_forward(moments.mean, weight, conv.bias)
    var = conv._conv_forward(moments.var, weight * weight, None)
    return Moments(mean, var)


def batchnorm_moments(moments: Moments, bn: torch.nn.modules.batchnorm._BatchNorm) -> Moments:
    """Batch-norm with its running statistics (inference): the per-channel affine map a·x + c. Exact.

    a = γ / sqrt(running_var + eps), c = β − a·running_mean, broadcast over dim 1 (channels).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch-norm without running statistics is not a fixed affine map")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    view = (1, -1) + (1,) * (moments.mean.dim() - 2)
    return affine_moments(moments, scale.view(view), shift.view(view))


def conv2d_batchnorm_moments(moments: Moments, conv: torch.nn.Conv2d,
                             bn: torch.nn.modules.batchnorm._BatchNorm) -> Moments:
    """conv then eval batch-norm, folded into one conv (W' = a·W, b' = a·b + c): same result as
    :func:`batchnorm_moments` after :func:`conv2d_moments`, without the two extra full-size passes. Exact.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch-norm without running statistics is not a fixed affine map")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + scale * conv.bias
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    return Moments(conv._conv_forward(moments.mean, weight, shift),
                   conv._conv_forward(moments.var, weight * weight, None))


def avg_pool2d_moments(moments: Moments, kernel_size: int | tuple[int, int],
                       stride: int | tuple[int, int] | None = None, padding: int | tuple[int, int] = 0,
                       ceil_mode: bool = False, count_include_pad: bool = True,
                       divisor_override: int | None = None) -> Moments:
    """Average pooling: mean pooled as usual; var' = Σ_window var / divisor² = avg_pool(var) / divisor. Exact.

    The divisor is the kernel area in the plain case; with padding, ``count_include_pad=False``, ``ceil_mode`` or
    ``divisor_override`` it varies per output position, so it is recovered as (number of input cells in the
    window) / (avg-pool of ones) — both computed with the same settings on a (1, 1, H, W) tensor of ones.
    """
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    mean = F.avg_pool2d(moments.mean, *args)
    pooled_var = F.avg_pool2d(moments.var, *args)
    plain = padding in (0, (0, 0)) and not ceil_mode and divisor_override is None
    if plain:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        return Moments(mean, pooled_var / (kh * kw))
    ones = torch.ones((1, 1) + tuple(moments.var.shape[-2:]), dtype=moments.var.dtype, device=moments.var.device)
    weight_per_cell = F.avg_pool2d(ones, *args)  # = cells / divisor, so 1/divisor = weight_per_cell / cells
    cells = F.avg_pool2d(ones, kernel_size, stride, padding, ceil_mode, True, 1)
    return Moments(mean, pooled_var * weight_per_cell / cells.clamp_min(1.0))


def _adaptive_window_sizes(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """Cells per window along one dim of adaptive pooling: [floor(i·n/m), ceil((i+1)·n/m)) as in PyTorch."""
    index = torch.arange(size_out, device=device)
    start = torch.div(index * size_in, size_out, rounding_mode="floor")
    end = torch.div((index + 1) * size_in + size_out - 1, size_out, rounding_mode="floor")
    return end - start


def adaptive_avg_pool2d_moments(moments: Moments, output_size: int | tuple[int | None, int | None] | None
                                ) -> Moments:
    """Adaptive average pooling (global average pooling for output 1): var' = avg_pool(var) / cells. Exact.

    ``output_size`` as ``nn.AdaptiveAvgPool2d``'s: None (or a None entry) keeps the input's size there."""
    mean = F.adaptive_avg_pool2d(moments.mean, output_size)
    pooled_var = F.adaptive_avg_pool2d(moments.var, output_size)
    (h_in, w_in), (h_out, w_out) = moments.var.shape[-2:], pooled_var.shape[-2:]
    rows = _adaptive_window_sizes(h_in, h_out, pooled_var.device)
    cols = _adaptive_window_sizes(w_in, w_out, pooled_var.device)
    cells = (rows.view(-1, 1) * cols.view(1, -1)).to(pooled_var.dtype)
    return Moments(mean, pooled_var / cells)


def mean_over_dims_moments(moments: Moments, dims: tuple[int, ...], keepdim: bool = False) -> Moments:
    """``x.mean(dims)``: mean of means, var' = Σ var / n² = mean(var) / n over the n averaged cells. Exact."""
    count = 1
    for dim in dims:
        count *= moments.mean.shape[dim]
    mean = moments.mean.mean(dim=dims, keepdim=keepdim)
    return Moments(mean, moments.var.mean(dim=dims, keepdim=keepdim) / count)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return (value[0], value[0]) if len(value) == 1 else (int(value[0]), int(value[1]))


def _ceil_mode_extra(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Extra cells to pad at the end so that unfold yields PyTorch's ceil_mode output size."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:  # the last window must start inside the input or left padding
        out -= 1
    return max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - (size + 2 * padding))


def max_pool2d_moments(moments: Moments, kernel_size: int | tuple[int, int],
                       stride: int | Sequence[int] | None = None, padding: int | tuple[int, int] = 0,
                       dilation: int | tuple[int, int] = 1, ceil_mode: bool = False, *, sort: bool = True,
                       var_floor: float = DEFAULT_VAR_FLOOR) -> Moments:
    """Max pooling of independent Gaussians: the window's max folded pairwise with :func:`max_of_gaussians`.

    Vectorized over all windows: strided views give (k·k, N·C·L) windows, ``sort=True`` orders each window by
    ascending mean (the paper's choice; the variance follows via ``gather``), then a Python loop over the k·k ≤ 9
    window positions folds max(acc, next). ``sort=False`` folds in raster order. Padding cells (and ceil_mode's
    extra cells) get a mean far below every real mean and zero variance, so max(pad, X) returns X's moments exactly.

    Shapes: (N, C, H, W) -> (N, C, H_out, W_out), H_out as ``F.max_pool2d`` with the same settings.
    """
    kh, kw = _pair(kernel_size)
    # F.max_pool2d passes stride=[] for "as the kernel" (its default), as None does here.
    sh, sw = (kh, kw) if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    mean, var = moments
    n, c, h, w = mean.shape
    extra_h = _ceil_mode_extra(h, kh, sh, ph, dh) if ceil_mode else 0
    extra_w = _ceil_mode_extra(w, kw, sw, pw, dw) if ceil_mode else 0
    if ph or pw or extra_h or extra_w:
        # A finite sentinel (not -inf): a = (μ − pad)/θ must stay finite for the formulas and their gradients.
        floor_value = (mean.detach().amin() - 1e4 * (1.0 + var.detach().amax().sqrt())).item()
        pads = (pw, pw + extra_w, ph, ph + extra_h)
        mean = F.pad(mean, pads, value=floor_value)
        var = F.pad(var, pads, value=0.0)
    h_pad, w_pad = mean.shape[-2:]
    h_out = (h_pad - dh * (kh - 1) - 1) // sh + 1
    w_out = (w_pad - dw * (kw - 1) - 1) // sw + 1

    def windows(t: torch.Tensor) -> torch.Tensor:
        # (k·k, N·C·H_out·W_out), one strided view per window position stacked in raster order: one copy, and each
        # position contiguous, so the fold below runs on dense tensors.
        views = [t[:, :, i * dh:i * dh + (h_out - 1) * sh + 1:sh, j * dw:j * dw + (w_out - 1) * sw + 1:sw]
                 for i in range(kh) for j in range(kw)]
        return torch.stack(views).reshape(kh * kw, -1)

    mean_windows, var_windows = windows(mean), windows(var)
    if sort:
        mean_windows, order = torch.sort(mean_windows, dim=0)
        var_windows = torch.gather(var_windows, 0, order)
    acc_mean, acc_var = mean_windows[0], var_windows[0]
    for position in range(1, kh * kw):
        acc_mean, acc_var = max_of_gaussians(acc_mean, acc_var, mean_windows[position], var_windows[position],
                                             var_floor=var_floor)
    return Moments(acc_mean.reshape(n, c, h_out, w_out), acc_var.reshape(n, c, h_out, w_out))
