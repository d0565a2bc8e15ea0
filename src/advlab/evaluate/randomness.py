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
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack
from advlab.attacks.randomized import declares_stochastic, is_randomized
from advlab.errors import InputError
from advlab.evaluate.inputs import EvalData

__all__ = [
    "DEFAULT_EOT_SAMPLES",
    "DEFAULT_TRIALS",
    "declares_stochastic",
    "detect_randomized",
    "eot_samples_of",
    "has_eot_setting",
    "is_randomized",
    "mean_std",
    "seeded",
    "with_eot",
]

DEFAULT_EOT_SAMPLES = 10
DEFAULT_TRIALS = 5
#: Points of the two forward passes that decide whether a model is randomized.
DETECTION_POINTS = 32


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
        settings: dict[str, Any] = {"eot_samples": samples}
        return dataclasses.replace(attack, **settings)
    return attack


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0.0 for a single value)."""
    if not values:
        return math.nan, math.nan
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    std = float(tensor.std(unbiased=True)) if len(values) > 1 else 0.0
    return float(tensor.mean()), std


def detect_randomized(model: nn.Module, data: EvalData, device: torch.device, seed: int) -> bool:
    """Declared ``stochastic`` or two forward passes on the first few points disagree."""
    if declares_stochastic(model):
        return True
    x, _ = data.batch(0, DETECTION_POINTS, device)
    with seeded(seed, "detect", device=device):
        return is_randomized(model, x)
