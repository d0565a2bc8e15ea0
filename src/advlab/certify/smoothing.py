"""Randomized smoothing: Cohen, Rosenfeld, Kolter's PREDICT and CERTIFY (ICML 2019, arXiv:1902.02918).

The smoothed classifier ``g(x) = argmax_c P(f(x + δ) = c)``, ``δ ~ N(0, σ² I)``, is robust around x in L2: if the
top class has probability at least ``p_A > 1/2``, g is constant within radius ``σ · Φ⁻¹(p_A)`` (Theorem 1 with
``p_B = 1 − p_A``). CERTIFY estimates ``p_A`` with ``n`` noise samples after choosing the class with ``n0`` others,
bounds it below at confidence ``1 − α`` (Clopper-Pearson) and abstains when the bound is not above 1/2.

Units: σ and radii in [0, 1] pixel units, L2 (as advlab's ε); the noise is added to the [0, 1] image and not
clipped (Cohen et al. do not clip: the guarantee is for the Gaussian, not a truncated one).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from advlab.attacks.base import frozen_eval
from advlab.certify.bounds import binomial_two_sided_p_value, clopper_pearson_lower
from advlab.errors import InputError
from advlab.precision import autocast, resolve_precision

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answer for one image: the class (``ABSTAIN`` = −1) and its certified L2 radius (0 if abstained).

    ``p_lower`` is the Clopper-Pearson lower bound on the class's probability under noise; ``count`` how many of
    the ``n`` estimation samples the base model gave that class.
    """

    prediction: int
    radius: float
    p_lower: float
    count: int
    n: int


def image_generator(seed: int, index: int, device: torch.device) -> torch.Generator:
    """A generator seeded from (seed, image index) alone: an image's noise is the same on every rerun and resume."""
    digest = hashlib.sha256(repr(("certify", int(seed), int(index))).encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF)


class SmoothedClassifier:
    """The Gaussian-smoothed version of ``model`` (logits in, argmax per noisy copy).

    Args:
        model: the base classifier on [0, 1] images (N, C, H, W) -> logits (N, K).
        sigma: noise standard deviation in [0, 1] pixel units (Cohen et al.'s CIFAR-10 runs: 0.12, 0.25, 0.5, 1.0).
        batch_size: noisy copies per forward pass.
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` for the base classifier's passes (:mod:`advlab.precision`).
            The certificate is then for the smoothed version of that classifier, as exact as ever: the bound only
            assumes that the noise is Gaussian, not how f computes.
        channels_last: run a channels_last copy of the model (faster convolutions on CPUs, with bf16 above all).
    """

    def __init__(self, model: nn.Module, sigma: float, *, batch_size: int = 1000, precision: str = "fp32",
                 channels_last: bool = False) -> None:
        if not (isinstance(sigma, (int, float)) and sigma > 0):
            raise InputError(f"sigma must be a number > 0 (in [0, 1] pixel units), got {sigma!r}")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        resolve_precision(precision, "cpu")  # a bad name fails here, not in the middle of a run
        if channels_last:
            # Module.to documents memory_format=..., but torch's overloads leave it out (a stub bug).
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model, self.sigma, self.batch_size = model, float(sigma), batch_size
        self.precision, self.channels_last = precision, channels_last

    def counts(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """How often the base model predicts each class on ``n`` noisy copies of one image ``x`` (C, H, W): (K,)."""
        totals: torch.Tensor | None = None
        left = n
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        with frozen_eval(self.model), torch.inference_mode(), autocast(self.precision, x.device):
            while left > 0:
                size = min(self.batch_size, left)
                copies = x.unsqueeze(0).expand(size, *x.shape)
                noise = torch.randn(copies.shape, generator=generator, device=x.device, dtype=x.dtype)
                logits = self.model((copies + self.sigma * noise).contiguous(memory_format=layout))
                found = torch.bincount(logits.argmax(dim=1), minlength=logits.shape[1])
                totals = found if totals is None else totals + found
                left -= size
        assert totals is not None
        return totals.cpu()

    def predict(self, x: torch.Tensor, n: int, alpha: float, generator: torch.Generator) -> int:
        """PREDICT: the top class of ``n`` noisy samples, or ``ABSTAIN`` when a binomial test of the two top
        counts cannot reject a tie at level ``alpha`` (then the answer would be wrong with probability > α)."""
        _check_samples(n, "n")
        counts = self.counts(x, n, generator)
        top2 = counts.topk(2) if counts.numel() > 1 else counts.topk(1)
        n_a = int(top2.values[0])
        n_b = int(top2.values[1]) if top2.values.numel() > 1 else 0
        if binomial_two_sided_p_value(n_a, n_a + n_b) > alpha:
            return ABSTAIN
        return int(top2.indices[0])

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, generator: torch.Generator) -> Certificate:
        """CERTIFY: guess the class from ``n0`` samples, bound its probability from ``n`` fresh ones.

        Returns the class and radius ``σ · Φ⁻¹(p_lower)``, or ``ABSTAIN`` with radius 0 when ``p_lower <= 1/2``.
        """
        _check_samples(n0, "n0")
        _check_samples(n, "n")
        guess = int(self.counts(x, n0, generator).argmax())
        count = int(self.counts(x, n, generator)[guess])
        p_lower = clopper_pearson_lower(count, n, alpha)
        if p_lower <= 0.5:
            return Certificate(ABSTAIN, 0.0, p_lower, count, n)
        radius = self.sigma * float(torch.special.ndtri(torch.tensor(p_lower, dtype=torch.float64)))
        return Certificate(guess, radius, p_lower, count, n)


def _check_samples(value: int, name: str) -> None:
    if not (isinstance(value, int) and value >= 1):
        raise InputError(f"{name} must be a positive number of noise samples, got {value!r}")
