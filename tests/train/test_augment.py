"""Batched augmentation: shape, range and dtype kept, images really changed, every output a true crop/flip, and
brightness/contrast one affine map per image within the stated range."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlab.augment import (
    flip_shift_brightness_contrast,
    get_augmentation,
    list_augmentations,
    random_brightness_contrast,
    random_crop_flip,
)
from advlab.errors import UnknownNameError
from advlab.training.config import TrainConfig


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
    assert list_augmentations() == ["cifar", "flip_shift_brightness_contrast", "none"]
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar'"):
        get_augmentation("cifra")


def test_edge_fill_shift_repeats_the_border_pixels() -> None:
    x = _batch(n=32, size=8)
    out = random_crop_flip(x, torch.Generator().manual_seed(2), padding=2, fill="edge")
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    for i in range(len(x)):
        assert any(torch.equal(out[i], (padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1) if flip
                                        else padded[i, :, dy:dy + 8, dx:dx + 8]))
                   for dy in range(5) for dx in range(5) for flip in (False, True))
    assert bool((out > 0).all())  # no black border: every value comes from the image (torch.rand > 0)
    with pytest.raises(ValueError, match="fill"):
        random_crop_flip(x, None, fill="mirror")


def test_brightness_contrast_is_one_affine_map_per_image_within_the_stated_range() -> None:
    x = 0.25 + 0.5 * _batch(n=64, size=8)  # away from 0 and 1, so clipping never acts
    out = random_brightness_contrast(x, torch.Generator().manual_seed(4), brightness=0.1, contrast=0.2)
    for i in range(len(x)):
        # out = (x + d - m)·c + m with m = mean(x + d) per channel: the slope of out against x is c, the same
        # in every channel; the channel means shift by d.
        dx = x[i] - x[i].mean(dim=(1, 2), keepdim=True)
        dy = out[i] - out[i].mean(dim=(1, 2), keepdim=True)
        c = float((dx * dy).sum() / (dx * dx).sum())  # least-squares slope over all channels
        assert torch.allclose(dy, c * dx, atol=1e-5)
        assert 0.8 - 1e-5 <= c <= 1.2 + 1e-5
        shift = out[i].mean(dim=(1, 2)) - x[i].mean(dim=(1, 2))
        assert torch.allclose(shift, shift[:1].expand(3), atol=1e-5) and abs(float(shift[0])) <= 0.1 + 1e-5
    assert float((out - x).abs().amax(dim=(1, 2, 3)).min()) > 0  # every image changed


def test_van_everdingen_augmentation_is_registered_repeatable_and_trainable_by_name() -> None:
    x = _batch()
    augment = get_augmentation("flip_shift_brightness_contrast")
    out = augment(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, augment(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(out, augment(x, torch.Generator().manual_seed(2)))
    assert TrainConfig(augmentation="flip_shift_brightness_contrast").augmentation == \
        "flip_shift_brightness_contrast"  # what --augment feeds: the registry validates the name
    assert flip_shift_brightness_contrast(x[:0], None).shape == (0, 3, 32, 32)
