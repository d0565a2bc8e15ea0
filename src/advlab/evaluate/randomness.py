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

from advlab.attacks.base import Attack, frozen_eval, require_finite_logits
from advlab.attacks.randomized import declares_stochastic, is_randomized
from advlab.errors import InputError
from advlab.evaluate.inputs import EvalData, check_batch_size, model_device

__all__ = [
    "DEFAULT_EOT_SAMPLES",
    "DEFAULT_TRIALS",
    "declares_stochastic",
    "detect_randomized",
    "draw_accuracy",
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


def draw_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, *, seed: int = 0,
                  batch_size: int = 256) -> torch.Tensor:
    """Per point, the share of ``draws`` forward passes that classify it correctly: float64 (N,) in [0, 1].

    A randomized model draws fresh noise in every pass, so a verdict from one pass is one sample of this share.
    An evaluation that judges each point on single draws (an attack's final pass, a cascade's stages) can be
    re-judged here at the images it kept: a point counted as fooled whose share stays high was fooled by the
    draw more than by the perturbation. A deterministic model gives 0 or 1.

    Args:
        model: [0, 1] images (N, C, H, W) -> logits; run in eval mode, fp32, without gradients, mode restored.
        x: (N, C, H, W) float images in [0, 1]; y: (N,) int64 labels.
        draws: forward passes per point (>= 1).
        seed, batch_size: each batch's passes are seeded from ``(seed, "draws", batch)``, so reruns repeat.
    """
    if not isinstance(draws, int) or draws < 1:
        raise InputError(f"draws must be an integer >= 1, got {draws!r}")
    if x.shape[0] != y.shape[0]:
        raise InputError(f"x holds {x.shape[0]} images but y {y.shape[0]} labels")
    check_batch_size(batch_size)
    device = model_device(model)
    hits = torch.zeros(x.shape[0], dtype=torch.float64)
    with frozen_eval(model), torch.no_grad():
        for batch, start in enumerate(range(0, x.shape[0], batch_size)):
            xb = x[start:start + batch_size].to(device, torch.float32)
            yb = y[start:start + batch_size].to(device)
            counts = torch.zeros(xb.shape[0], dtype=torch.int64, device=device)
            with seeded(seed, "draws", batch, device=device):
                for _ in range(draws):
                    counts += require_finite_logits(model(xb)).argmax(dim=-1) == yb
            hits[start:start + batch_size] = counts.double().cpu()  # one transfer per batch, not per draw
    return hits / draws
