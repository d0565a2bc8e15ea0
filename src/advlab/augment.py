"""Data augmentation on batched image tensors, on the batch's device: no PIL, no per-sample Python loops.

Every augmentation is ``augment(x, generator) -> x'`` with x float32 (N, C, H, W) in [0, 1] and x' of the same
shape, dtype, device and range. Random draws come from ``generator`` (a CPU ``torch.Generator``: the run's data
generator, whose state ``fit`` saves for resume); only N small integers per batch are drawn on the CPU and moved,
so the same seed gives the same augmentation on CPU and GPU.

Registered names (``TrainConfig.augmentation``):
    ``none``  -- the identity.
    ``cifar`` -- the standard CIFAR-10 recipe (He et al. 2016, "Deep residual learning", §4.2): zero-pad 4 pixels
                 on each side, take a random crop of the original size, flip horizontally with probability 1/2.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from advlab.registry import Registry

Augmentation = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]

AUGMENTATIONS: Registry[torch.Tensor] = Registry("augmentation")


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator | None = None, *, padding: int = 4, flip: bool = True
) -> torch.Tensor:
    """Random crop of the original size from the zero-padded batch, plus an optional random horizontal flip.

    One gather does both: each sample's row/column indices into the padded batch are its crop offset plus
    ``arange``, and a flipped sample reads its columns in reverse. Shape (N, C, H, W) -> (N, C, H, W).
    """
    n, channels, height, width = x.shape
    if n == 0:
        return x
    padded = F.pad(x, (padding, padding, padding, padding))  # zeros = black border, as in the recipe
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)  # (N, H)
    cols_forward = torch.arange(width, device=x.device)
    cols = offsets[1, :, None] + torch.where(flips[:, None], width - 1 - cols_forward, cols_forward)  # (N, W)
    batch_index = torch.arange(n, device=x.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=x.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]


@AUGMENTATIONS.register("none")
def _no_augmentation() -> Augmentation:
    return lambda x, generator: x


@AUGMENTATIONS.register("cifar")
def _cifar_augmentation() -> Augmentation:
    return lambda x, generator: random_crop_flip(x, generator, padding=4, flip=True)


def get_augmentation(name: str) -> Augmentation:
    """The augmentation registered as ``name`` (``none``, ``cifar``); an unknown name raises UnknownNameError."""
    return AUGMENTATIONS.create(name)  # type: ignore[return-value]


def list_augmentations() -> list[str]:
    return AUGMENTATIONS.names()
