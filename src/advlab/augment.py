"""Data augmentation on batched image tensors, on the batch's device: no PIL, no per-sample Python loops.

Every augmentation is ``augment(x, generator) -> x'`` with x float32 (N, C, H, W) in [0, 1] and x' of the same
shape, dtype, device and range. Random draws come from ``generator`` (a CPU ``torch.Generator``: the run's data
generator, whose state ``fit`` saves for resume); only N small integers per batch are drawn on the CPU and moved,
so the same seed gives the same augmentation on CPU and GPU.

Registered names (``TrainConfig.augmentation``):
    ``none``  -- the identity.
    ``cifar`` -- the standard CIFAR-10 recipe (He et al. 2016, "Deep residual learning", §4.2): zero-pad 4 pixels
                 on each side, take a random crop of the original size, flip horizontally with probability 1/2.
    ``flip_shift_brightness_contrast`` -- the four operations van Everdingen, "CNNs and adversarial examples"
                 (§5) names: random horizontal flips, brightness and contrast adjustment, horizontal and vertical
                 shifts. The paper gives no magnitudes; ours (:data:`VAN_EVERDINGEN_MAGNITUDES`) are a choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

import torch
import torch.nn.functional as F

from advlab.registry import Registry

Augmentation = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]

AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator | None = None, *, padding: int = 4, flip: bool = True,
    fill: str = "zeros",
) -> torch.Tensor:
    """Random crop of the original size from the padded batch, plus an optional random horizontal flip.

    A crop at offset o of the batch padded by p pixels is a shift of the image by p − o pixels, so this is also
    a random shift of up to ``padding`` pixels along each axis. ``fill`` says what the border shows: ``"zeros"``
    (black, the ResNet recipe) or ``"edge"`` (the nearest edge pixel repeated, as Keras' ``fill_mode="nearest"``).

    One gather does both: each sample's row/column indices into the padded batch are its crop offset plus
    ``arange``, and a flipped sample reads its columns in reverse. Shape (N, C, H, W) -> (N, C, H, W).
    """
    n, channels, height, width = x.shape
    if n == 0:
        return x
    if fill not in ("zeros", "edge"):
        raise ValueError(f"fill must be 'zeros' or 'edge', got {fill!r}")
    pad = (padding, padding, padding, padding)
    padded = F.pad(x, pad) if fill == "zeros" else F.pad(x, pad, mode="replicate")
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)  # (N, H)
    cols_forward = torch.arange(width, device=x.device)
    cols = offsets[1, :, None] + torch.where(flips[:, None], width - 1 - cols_forward, cols_forward)  # (N, W)
    batch_index = torch.arange(n, device=x.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=x.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]


def random_brightness_contrast(
    x: torch.Tensor, generator: torch.Generator | None = None, *, brightness: float = 0.1, contrast: float = 0.2
) -> torch.Tensor:
    """Per image: add a brightness offset δ ~ U(−b, b), then scale the contrast by c ~ U(1 − k, 1 + k); clip.

    The contrast step is ``(x − m)·c + m`` with m the image's per-channel mean (TensorFlow's ``adjust_contrast``).
    ``brightness`` is in [0, 1] pixel units, ``contrast`` a relative factor in [0, 1). Shape (N, C, H, W) kept;
    two numbers per image are drawn from ``generator`` on the CPU.
    """
    n = x.shape[0]
    if n == 0:
        return x
    if not 0.0 <= brightness <= 1.0 or not 0.0 <= contrast < 1.0:
        raise ValueError(f"brightness must lie in [0, 1] and contrast in [0, 1), got {brightness}, {contrast}")
    uniform = torch.rand(2, n, generator=generator).to(device=x.device, dtype=x.dtype) * 2.0 - 1.0  # U(-1, 1)
    delta = (brightness * uniform[0]).view(n, 1, 1, 1)
    factor = (1.0 + contrast * uniform[1]).view(n, 1, 1, 1)
    brighter = x + delta
    mean = brighter.mean(dim=(2, 3), keepdim=True)
    return ((brighter - mean) * factor + mean).clamp(0.0, 1.0)


class Magnitudes(TypedDict):
    """The keyword settings of :func:`flip_shift_brightness_contrast`."""

    max_shift: int
    brightness: float
    contrast: float


#: Magnitudes of ``flip_shift_brightness_contrast``. van Everdingen (§5) names the operations only; these values
#: are our choice: shifts of up to 3 pixels (10 % of 32, edge repeated), brightness ±0.1, contrast ×[0.8, 1.2].
VAN_EVERDINGEN_MAGNITUDES: Magnitudes = {"max_shift": 3, "brightness": 0.1, "contrast": 0.2}


def flip_shift_brightness_contrast(
    x: torch.Tensor, generator: torch.Generator | None = None, *, max_shift: int = 3, brightness: float = 0.1,
    contrast: float = 0.2,
) -> torch.Tensor:
    """Random horizontal flip (p = 1/2) and shift of up to ``max_shift`` pixels per axis, then brightness/contrast.

    Shape (N, C, H, W) in [0, 1] -> same shape, dtype, device and range.
    """
    shifted = random_crop_flip(x, generator, padding=max_shift, flip=True, fill="edge")
    return random_brightness_contrast(shifted, generator, brightness=brightness, contrast=contrast)


@AUGMENTATIONS.register("none")
def _no_augmentation() -> Augmentation:
    return lambda x, generator: x


@AUGMENTATIONS.register("cifar")
def _cifar_augmentation() -> Augmentation:
    return lambda x, generator: random_crop_flip(x, generator, padding=4, flip=True)


@AUGMENTATIONS.register("flip_shift_brightness_contrast")
def _flip_shift_brightness_contrast() -> Augmentation:
    return lambda x, generator: flip_shift_brightness_contrast(x, generator, **VAN_EVERDINGEN_MAGNITUDES)


def get_augmentation(name: str) -> Augmentation:
    """The augmentation registered as ``name`` (see the module docstring); an unknown name raises UnknownNameError."""
    return AUGMENTATIONS.create(name)


def list_augmentations() -> list[str]:
    return AUGMENTATIONS.names()
