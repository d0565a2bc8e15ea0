"""Randomized models: detect them, attack them with EOT, and seed every batch reproducibly.

A model whose eval-mode forward pass is random (input noise, PNI weight noise, dropout at test time) must be
attacked with Expectation over Transformation gradients and evaluated over several trials, reporting
mean ± std (Athalye, Carlini, Wagner 2018, "Obfuscated Gradients Give a False Sense of Security",
arXiv:1802.00420, §5.3). Without EOT the gradient of one noise draw points somewhere random and robust accuracy
is overestimated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from advlab.attacks.base import Attack, frozen_eval
from advlab.errors import InputError

DEFAULT_EOT_SAMPLES = 10
DEFAULT_TRIALS = 5


@contextmanager
def seeded(seed: int, *parts: object, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's RNG seeded from ``(seed, *parts)``, restoring the caller's RNG state after.

    Seeding each batch from its coordinates (trial, stage, batch) alone makes a resumed evaluation draw the
    same random starts and noise as an uninterrupted one.
    """
    digest = hashlib.sha256(repr((int(seed), *parts)).encode()).digest()
    devices = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF)
        yield


def declares_stochastic(model: nn.Module) -> bool:
    """True when the model or one of its submodules declares ``stochastic = True`` (advlab's noise defenses)."""
    return any(getattr(module, "stochastic", False) is True for module in model.modules())


def is_randomized(model: nn.Module, x: torch.Tensor, *, passes: int = 2, rtol: float = 1e-4) -> bool:
    """True when ``passes`` eval-mode forward passes on ``x`` (N, C, H, W) disagree beyond float noise.

    Two logits tensors differ "beyond float noise" when ``max |a - b| > rtol * (1 + max |a|)``; nondeterministic
    GPU kernels change logits by ~1e-6 relative, a noise layer by far more. The model's mode and parameter
    flags are restored afterwards.
    """
    if passes < 2:
        raise InputError(f"randomness detection needs at least 2 forward passes, got {passes}")
    with frozen_eval(model), torch.no_grad():
        first = model(x)
        scale = float(first.abs().max()) if first.numel() else 0.0
        for _ in range(passes - 1):
            if float((model(x) - first).abs().max()) > rtol * (1.0 + scale):
                return True
    return False


def has_eot_setting(attack: Attack) -> bool:
    return any(field.name == "eot_samples" for field in dataclasses.fields(attack))


def eot_samples_of(attack: Attack) -> int:
    """How many gradient samples the attack averages: its ``eot_samples``, or its EOT estimator's ``samples``."""
    samples = int(getattr(attack, "eot_samples", 1) or 1)
    gradient = getattr(attack, "gradient", None)
    return max(samples, int(getattr(gradient, "samples", 1) or 1))


def with_eot(attack: Attack, samples: int = DEFAULT_EOT_SAMPLES) -> Attack:
    """``attack`` with ``eot_samples=samples`` when it has that field and uses fewer; else ``attack`` itself."""
    if samples < 1:
        raise InputError(f"eot_samples must be >= 1, got {samples}")
    if has_eot_setting(attack) and eot_samples_of(attack) < samples:
        return dataclasses.replace(attack, eot_samples=samples)
    return attack


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0.0 for a single value)."""
    if not values:
        return math.nan, math.nan
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    std = float(tensor.std(unbiased=True)) if len(values) > 1 else 0.0
    return float(tensor.mean()), std
