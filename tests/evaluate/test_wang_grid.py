"""The Fig. 1 grid of Wang, Kunin, Pyron over successful attacks only, with a success count per cell."""

from __future__ import annotations

import pytest
import torch
from evaluate_helpers import IterativeSign

from advlab.evaluate.statistics import (
    TargetedPairs,
    average_adversarial_grid,
    grid_from_pairs,
    targeted_pairs,
)


def _pairs() -> TargetedPairs:
    """Three 1×1×2 points of classes 0, 0, 1 (K = 3), each attacked towards both other classes."""
    clean = torch.tensor([[0.0, 0.0], [0.2, 0.2], [1.0, 1.0]]).view(3, 1, 1, 2)
    index = torch.tensor([0, 1, 2, 0, 1, 2])
    target = torch.tensor([1, 1, 0, 2, 2, 2])
    adv = torch.tensor([[0.1, 0.1], [0.3, 0.5], [0.9, 0.9], [0.4, 0.4], [0.6, 0.6], [0.7, 0.7]]).view(6, 1, 1, 2)
    adv_pred = torch.tensor([1, 0, 0, 0, 0, 2])  # successes: pair 0 (0→1), pair 2 (1→0), pair 5 (1→2)
    return TargetedPairs(clean=clean, labels=torch.tensor([0, 0, 1]), clean_pred=torch.tensor([0, 1, 1]),
                         index=index, target=target, adv=adv, adv_pred=adv_pred, num_classes=3)


def test_successful_only_grid_averages_the_successes_and_counts_them() -> None:
    pairs = _pairs()
    grid = grid_from_pairs(pairs, successful_only=True)
    assert grid.successful_only and grid.successes is not None
    assert torch.allclose(grid.images[0, 1].flatten(), torch.tensor([0.1, 0.1]))  # only pair 0 of the two 0→1
    assert torch.allclose(grid.images[1, 0].flatten(), torch.tensor([0.9, 0.9]))
    assert grid.images[0, 2].abs().max() == 0 and grid.counts[0, 2] == 0  # no 0→2 attack succeeded
    assert grid.successes.tolist() == [[1, 1, 0], [1, 1, 1], [0, 0, 0]]  # diagonal: correct clean predictions
    assert grid.counts.tolist() == [[2, 1, 0], [1, 1, 1], [0, 0, 0]]  # diagonal: class sizes
    assert torch.allclose(grid.images[0, 0].flatten(), torch.tensor([0.1, 0.1]))  # the diagonal: clean means
    assert torch.allclose(grid.success_rate[0], torch.tensor([0.5, 0.5, 0.0]))


def test_default_grid_still_averages_every_attack() -> None:
    grid = grid_from_pairs(_pairs())
    assert not grid.successful_only
    assert torch.allclose(grid.images[0, 1].flatten(), torch.tensor([0.2, 0.3]))  # pairs 0 and 1
    assert grid.counts[0, 2] == 2 and torch.allclose(grid.images[0, 2].flatten(), torch.tensor([0.5, 0.5]))
    assert grid.success_rate[0, 2] == 0 and grid.to_dict()["successes"][1][2] == 1


@pytest.fixture(scope="module")
def balanced(test_xy) -> tuple[torch.Tensor, torch.Tensor]:
    """Six test points per class (60)."""
    x, y = test_xy
    index = torch.cat([(y == c).nonzero().squeeze(1)[:6] for c in range(10)])
    return x[index], y[index]


def test_grid_on_a_trained_model_matches_its_pairs(trained, balanced) -> None:
    x, y = balanced
    attack = IterativeSign(eps=0.15, steps=3)
    grid = average_adversarial_grid(trained, (x, y), attack, batch_size=64, successful_only=True)
    pairs = targeted_pairs(trained, (x, y), attack, batch_size=64)
    off = ~torch.eye(10, dtype=torch.bool)
    assert 0 < int(grid.counts[off].sum()) < int(off.sum()) * 6  # some attacks fail, some succeed
    assert torch.equal(grid.counts[off], grid.successes[off])
    for source, target in ((1, 2), (7, 3)):
        chosen = pairs.select(source, target)
        if chosen.numel():
            assert torch.allclose(grid.images[source, target], pairs.adv[chosen].mean(0), atol=1e-6)
        assert grid.counts[source, target] == chosen.numel()
