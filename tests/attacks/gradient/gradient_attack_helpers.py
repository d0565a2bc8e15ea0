"""Helpers for the gradient-sign and noise attack tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch import nn

from advlab.attacks.base import AttackResult
from advlab.models.layers import MNIST_MEAN, MNIST_STD, Normalize


def read_idx(path: Path) -> torch.Tensor:
    """An idx file (magic, dims, uint8 payload) as a uint8 tensor of its stated shape."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).copy()).view(shape)


def small_cnn() -> nn.Sequential:
    """A patchifying conv (4x4, stride 4), a hidden layer and a linear read-out (~102k parameters), Normalize
    inside: [0, 1] in, logits out. Small on purpose: the suite shares two CPU cores; one epoch takes seconds."""
    return nn.Sequential(
        Normalize(MNIST_MEAN, MNIST_STD),
        nn.Conv2d(1, 16, 4, stride=4), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def assert_attack_effective(result: AttackResult, *, max_robust: float, min_drop: float) -> None:
    """Fail unless the attack really hurt: robust accuracy at most ``max_robust`` and ``min_drop`` below clean.

    Written so that an identity "attack" (adv = x) fails it whenever ``min_drop > 0``: then robust == clean.
    """
    clean, robust = result.clean_accuracy, result.robust_accuracy
    assert robust <= max_robust, f"robust accuracy {robust:.3f} above {max_robust} (clean {clean:.3f})"
    assert clean - robust >= min_drop, f"accuracy fell only {clean - robust:.3f} (< {min_drop}): attack ineffective"


def assert_within_budget(result: AttackResult, x: torch.Tensor, eps: float | None, norm: str) -> None:
    """The adversarial images lie in [0, 1] and, when ``eps`` is set, in the ``norm`` ball of radius ``eps``."""
    assert result.adv.min() >= 0 and result.adv.max() <= 1
    assert result.adv.shape == x.shape and result.adv.dtype == x.dtype
    if eps is not None:
        assert float(result.norms[norm].max()) <= eps * (1 + 1e-5) + 1e-6
