"""Random-noise baselines: not gradient attacks, but Attacks, so evaluation treats them like any other.

The papers compare adversarial perturbations with random ones of the same size to show that the direction, not
the size, is what fools a network. Each baseline ignores the gradient (and the labels); ``seed`` makes a draw
repeatable (None: torch's global RNG). Every result is clipped to [0, 1] by the base class.

* ``gaussian_noise``: x + N(0, σ²) per pixel; unbounded (no ε projection), its size shows in the L2 norm.
* ``random_sign``: x + ε·R, R uniform in {−1, +1} per pixel (van Everdingen, "CNNs and adversarial examples",
  eq. 2): the random counterpart of FGSM at the same L∞ ε.
* ``gaussian_blur``: separable Gaussian blur of σ pixels (a natural corruption, not an additive noise).
* ``matched_noise``: Gaussian noise with the per-image mean and std of a reference perturbation, FGSM(ε) by
  default (Hao, Chen, Huang, "Fooling networks by adding noises").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import Attack, Norm, check_eps
from advlab.attacks.fgsm import FGSM
from advlab.attacks.pgd import make_generator
from advlab.attacks.registry import register_attack
from advlab.errors import InputError


def _check_nonnegative(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise InputError(f"{name} must be a number >= 0, got {value!r}")


@register_attack("gaussian_noise", family="noise", norm="l2")
@dataclass(frozen=True, kw_only=True)
class GaussianNoise(Attack):
    """Additive Gaussian noise ``x + σ·N(0, 1)``, clipped to [0, 1].

    Args: std: σ in [0, 1] pixel units (default 0.1). seed: repeatable draws (None: global RNG).
    Threat model: none (no ε ball); compare with attacks by ``result.norms["l2"]``.
    Shapes: x (N, C, H, W) -> adv (N, C, H, W).

    Example::

        result = GaussianNoise(std=0.3, seed=0)(model, x, y)
    """

    norm: ClassVar[Norm] = Norm.L2
    supports_targeted: ClassVar[bool] = False

    std: float = 0.1
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_nonnegative("std", self.std)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=make_generator(self.seed, x.device), device=x.device, dtype=x.dtype)
        return x + self.std * noise


@register_attack("random_sign", family="noise", norm="linf")
@dataclass(frozen=True, kw_only=True)
class RandomSign(Attack):
    """``x + ε·R`` with R uniform in {−1, +1} per pixel: FGSM's size without its direction (L∞ ε).

    Args: eps: L∞ size in [0, 1] pixel units (default 8/255). seed: repeatable draws (None: global RNG).
    Shapes: x (N, C, H, W) -> adv (N, C, H, W).

    Example::

        result = RandomSign(eps=0.3, seed=0)(model, x, y)
    """

    norm: ClassVar[Norm] = Norm.LINF
    supports_targeted: ClassVar[bool] = False

    eps: float = 8 / 255
    seed: int | None = None

    def __post_init__(self) -> None:
        check_eps(self.eps, self.norm)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        bits = torch.randint(0, 2, x.shape, generator=make_generator(self.seed, x.device), device=x.device)
        return x + self.eps * (2 * bits.to(x.dtype) - 1)


def gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Normalized 1-D Gaussian of ``sigma`` pixels, radius ⌈3σ⌉ (99.7 % of the mass), shape (2r + 1,)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


@register_attack("gaussian_blur", family="noise", norm="l2")
@dataclass(frozen=True, kw_only=True)
class GaussianBlur(Attack):
    """Separable Gaussian blur of ``sigma`` pixels, batched over images and channels (edges replicated).

    Args: sigma: standard deviation in pixels (default 1.0; 0 leaves the image unchanged).
    Shapes: x (N, C, H, W) -> adv (N, C, H, W).

    Example::

        result = GaussianBlur(sigma=1.5)(model, x, y)
    """

    norm: ClassVar[Norm] = Norm.L2
    supports_targeted: ClassVar[bool] = False

    sigma: float = 1.0

    def __post_init__(self) -> None:
        _check_nonnegative("sigma", self.sigma)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        if self.sigma == 0:
            return x.clone()
        channels = x.shape[1]
        kernel = gaussian_kernel(self.sigma, x.device, x.dtype)
        radius = kernel.numel() // 2
        rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
        cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
        # One grouped conv per axis: (2r+1)·2 multiply-adds per pixel instead of (2r+1)².
        out = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), rows, groups=channels)
        return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), cols, groups=channels)


@register_attack("matched_noise", family="noise", norm="linf")
@dataclass(frozen=True, kw_only=True)
class MatchedNoise(Attack):
    """Gaussian noise with the same per-image mean and std as a reference attack's perturbation.

    Paper: Hao, Chen, Huang, "Fooling networks by adding noises": FGSM's perturbation vs Gaussian noise of equal
    mean and variance shows that the FGSM *direction* matters. The reference attack runs on the same images;
    noise_i = mean(δ_i) + std(δ_i)·N(0, 1), with δ_i = adv_i − x_i of the reference (after its [0, 1] clipping).
    The noise is not projected onto the ε-ball (that would change its statistics), only clipped to [0, 1].

    Args:
        eps: L∞ ε of the default reference, FGSM(eps) (default 8/255); ignored when ``reference`` is given.
        reference: the attack whose perturbation statistics are matched (default ``FGSM(eps=eps)``).
        seed: repeatable draws (None: global RNG).

    Shapes: x (N, C, H, W), y (N,) -> adv (N, C, H, W). Queries include the reference attack's.

    Example::

        result = MatchedNoise(eps=0.1, seed=0)(model, x, y)
    """

    norm: ClassVar[Norm] = Norm.LINF
    supports_targeted: ClassVar[bool] = False

    eps: float = 8 / 255
    reference: Attack | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        check_eps(self.eps, self.norm)
        if self.reference is not None and not isinstance(self.reference, Attack):
            raise InputError(f"reference must be an Attack instance (e.g. FGSM(eps=0.1)), got {self.reference!r}")

    @property
    def budget(self) -> float | None:
        return None  # matched in mean and std, deliberately not bounded by ε

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        reference = self.reference if self.reference is not None else FGSM(eps=self.eps)
        delta = (reference(model, x, y).adv - x).flatten(1)
        mean, std = delta.mean(dim=1), delta.std(dim=1)
        noise = torch.randn(delta.shape, generator=make_generator(self.seed, x.device), device=x.device, dtype=x.dtype)
        return x + (mean[:, None] + std[:, None] * noise).view_as(x)
