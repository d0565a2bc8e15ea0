"""Small building blocks shared by the model definitions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from advlab.errors import InputError, UnknownNameError

# Channel statistics used by the papers' models, for [0, 1] inputs.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IDENTITY_MEAN, IDENTITY_STD = (0.0,), (1.0,)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as the model's first layer (DESIGN.md §3.1).

    Keeping normalization inside the model means every attack works in pixel space [0, 1] and epsilons mean the
    same thing for every model. ``mean``/``std`` are buffers, so they are saved with the weights, move with
    ``.to(device)`` and are never trained.

    Shape: (N, C, H, W) -> (N, C, H, W); a single value broadcasts over all channels.
    """

    # Buffers registered in __init__ (annotations only: nn.Module.__getattr__ serves them).
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"Normalize needs one positive std per mean, got mean={mean}, std={std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


# name -> (mean, std) for [0, 1] inputs; "none" keeps the pixels as they are.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": (MNIST_MEAN, MNIST_STD),
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "none": (IDENTITY_MEAN, IDENTITY_STD),
}


def normalization_layer(normalization: str, *, channels: int) -> Normalize:
    """The :class:`Normalize` layer for a named set of channel statistics, checked against the input channels.

    A 1-channel statistic ("mnist", "none") broadcasts over any number of channels; a 3-channel one ("cifar10",
    "imagenet") needs 3-channel images, because broadcasting it over a grey image would silently turn the image
    into three channels.
    """
    if normalization not in NORMALIZATIONS:
        raise UnknownNameError(
            f"unknown normalization {normalization!r}; choose one of {', '.join(sorted(NORMALIZATIONS))}."
        )
    mean, std = NORMALIZATIONS[normalization]
    if len(mean) not in (1, channels):
        raise InputError(
            f"normalization {normalization!r} has {len(mean)} channel statistics but the model takes {channels}-"
            f"channel images; choose 'none', 'mnist' or a statistic with {channels} channels."
        )
    return Normalize(mean, std)
