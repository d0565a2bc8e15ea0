"""The paper's Random Adversarial Training set (van Everdingen §6, Eq. 2): one random-sign copy drawn before
training, uint8-rounded so each pixel's expected move is exactly ε, added to the training set."""

from __future__ import annotations

import pytest
import torch

from advlab.data.dataset import ImageDataset
from advlab.defenses.noise import random_sign_set, with_random_sign_set
from advlab.errors import InputError


def _grey(n: int = 200, value: int = 128) -> ImageDataset:
    images = torch.full((n, 3, 8, 8), value, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 10, tuple(str(k) for k in range(10)), "grey")


def test_every_pixel_moves_two_or_three_levels_and_by_eps_on_average() -> None:
    data = _grey()
    copies = random_sign_set(data, 0.01, seed=0)
    levels = copies.images.long() - data.images.long()
    assert set(levels.abs().unique().tolist()) == {2, 3}  # 255 · 0.01 = 2.55 levels, rounded either way
    signs = levels.sign()
    assert abs(float((signs > 0).float().mean()) - 0.5) < 0.01  # R is a fair coin per pixel
    assert float(levels.abs().float().mean()) / 255 == pytest.approx(0.01, rel=0.01)  # E|move| = ε
    assert torch.equal(copies.labels, data.labels) and copies.classes == data.classes


def test_the_set_is_fixed_by_its_seed_and_clipped_to_the_pixel_range() -> None:
    data = _grey()
    assert torch.equal(random_sign_set(data, 0.01, seed=3).images, random_sign_set(data, 0.01, seed=3).images)
    assert not torch.equal(random_sign_set(data, 0.01, seed=3).images, random_sign_set(data, 0.01, seed=4).images)
    dark, bright = random_sign_set(_grey(value=0), 0.05).images, random_sign_set(_grey(value=255), 0.05).images
    assert int(dark.min()) == 0 and int(bright.max()) == 255
    assert set(dark.unique().tolist()) <= {0, 12, 13} and set(bright.unique().tolist()) <= {242, 243, 255}
    with pytest.raises(InputError, match="scale"):
        random_sign_set(data, -0.1)


def test_union_holds_the_originals_then_their_copies() -> None:
    data = _grey(n=50)
    union = with_random_sign_set(data, 0.01, seed=1)
    assert len(union) == 100
    assert torch.equal(union.images[:50], data.images)
    assert torch.equal(union.images[50:], random_sign_set(data, 0.01, seed=1).images)
    assert torch.equal(union.labels, torch.cat([data.labels, data.labels]))
