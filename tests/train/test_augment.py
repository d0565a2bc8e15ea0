"""Batched augmentation: shape, range and dtype kept, images really changed, and every output a true crop/flip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlab.augment import get_augmentation, list_augmentations, random_crop_flip
from advlab.errors import UnknownNameError


def _batch(n: int = 64, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_cifar_augmentation_keeps_shape_range_and_changes_images() -> None:
    x = _batch()
    out = get_augmentation("cifar")(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    changed = (out != x).flatten(1).any(dim=1)
    assert changed.float().mean() > 0.8  # only an unshifted, unflipped crop (1/81 * 1/2) stays the same


def test_every_output_is_a_crop_of_the_padded_image_possibly_flipped() -> None:
    x = _batch(n=16, size=8)
    out = random_crop_flip(x, torch.Generator().manual_seed(3), padding=2)
    padded = F.pad(x, (2, 2, 2, 2))
    flips_seen = 0
    for i in range(len(x)):
        candidates = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                      if torch.equal(out[i], (lambda c: c.flip(-1) if flip else c)(padded[i, :, dy:dy + 8, dx:dx + 8]))]
        assert candidates, f"sample {i} is not a crop of its padded image"
        flips_seen += all(flip for _, _, flip in candidates)
    assert 0 < flips_seen < len(x)


def test_augmentation_is_repeatable_from_the_generator_and_none_is_identity() -> None:
    x = _batch(n=8)
    first = random_crop_flip(x, torch.Generator().manual_seed(5))
    assert torch.equal(first, random_crop_flip(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(first, random_crop_flip(x, torch.Generator().manual_seed(6)))
    assert get_augmentation("none")(x, None) is x
    assert list_augmentations() == ["cifar", "none"]
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar'"):
        get_augmentation("cifra")
