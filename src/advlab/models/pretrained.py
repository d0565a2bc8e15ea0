"""Known pretrained weight files, recognised by their sha256 (timm's "pretrained config" idea).

Foreign state dicts carry weights only, not the preprocessing they were trained with. A file listed here is
identified by the hash of its bytes, never by its name, and :func:`advlab.loading.load_model` then builds
the model with the normalization its authors used, unless the user chose one explicitly. Download addresses are
given for real users; nothing is fetched at run time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PretrainedWeights:
    """What is known about one published weights file.

    Attributes:
        model: advlab registry name the file fits; args: factory arguments (normalization first of all).
        source: where the file comes from; test_accuracy: what its authors report, as a fraction.
    """

    sha256: str
    model: str
    args: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    test_accuracy: float | None = None


KNOWN_WEIGHTS: tuple[PretrainedWeights, ...] = (
    PretrainedWeights(
        sha256="12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8",
        model="resnet20",
        args={"normalization": "imagenet"},
        source="akamaster/pytorch_resnet_cifar10 (He et al. 2016 CIFAR ResNet-20, option-A shortcuts)",
        test_accuracy=0.9173,
    ),
)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identify(path: str | Path) -> PretrainedWeights | None:
    """The known weights whose sha256 equals the file's, else None."""
    sha256 = file_sha256(path)
    return next((known for known in KNOWN_WEIGHTS if known.sha256 == sha256), None)
