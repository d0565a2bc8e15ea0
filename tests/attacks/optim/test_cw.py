"""C&W L2: finds small perturbations, reports the smallest successful L2, binary search and the PNI preset."""

from __future__ import annotations

import math

import pytest
import torch

from advlab.attacks.cw import CarliniWagnerL2, from_tanh_space, to_tanh_space
from advlab.attacks.losses import margin
from advlab.attacks.registry import create_attack
from advlab.errors import InputError

from .conftest import assert_in_box

FAST = {"steps": 100, "binary_steps": 4, "lr": 0.05, "initial_const": 1.0}


def test_tanh_box_round_trip() -> None:
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    w = to_tanh_space(x)
    assert torch.isfinite(w).all()
    assert torch.allclose(from_tanh_space(w), x, atol=1e-5)


def test_untargeted_success_and_best_l2(mnist_cnn, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    result = CarliniWagnerL2(**FAST)(mnist_cnn, x, y)
    assert result.success_rate > 0.9
    best_l2 = result.extras["best_l2"]
    assert torch.isfinite(best_l2[result.success]).all()
    assert torch.isinf(best_l2[~result.success]).all()
    # best_l2 is the L2 of the returned adversarial, and it is small: far below what random noise would need.
    assert torch.allclose(best_l2[result.success], result.norms["l2"][result.success], atol=1e-3)
    assert float(best_l2[result.success].median()) < 3.0
    assert_in_box(result.adv)


def test_binary_search_shrinks_the_perturbation(mnist_cnn, batch) -> None:
    x, y = batch[0][:8], batch[1][:8]
    large_c = CarliniWagnerL2(steps=100, binary_steps=1, lr=0.05, initial_const=100.0)(mnist_cnn, x, y)
    searched = CarliniWagnerL2(steps=100, binary_steps=5, lr=0.05, initial_const=100.0)(mnist_cnn, x, y)
    both = large_c.success & searched.success
    assert both.sum() >= 6
    assert float(searched.extras["best_l2"][both].mean()) < 0.9 * float(large_c.extras["best_l2"][both].mean())


def test_targeted_with_confidence(mnist_cnn, batch) -> None:
    x, y = batch[0][:8], batch[1][:8]
    target = (y + 1) % 10
    kappa = 2.0
    result = CarliniWagnerL2(**FAST, confidence=kappa)(mnist_cnn, x, target=target)
    assert result.success_rate >= 0.75
    with torch.no_grad():
        reached = -margin(mnist_cnn(result.adv), target)  # z_t - max_{j≠t} z_j
    assert (reached[result.success] >= kappa - 1e-3).all()


def test_pni_preset(mnist_cnn, batch) -> None:
    preset = CarliniWagnerL2.pni()
    # Rakin, He, Fan 2019, §4.1: c 0.01, Adam lr 5e-4, κ 0, 9 binary-search steps, 10 iterations
    assert (preset.initial_const, preset.lr, preset.steps, preset.binary_steps, preset.confidence) == (
        0.01, 5e-4, 10, 9, 0.0)
    assert create_attack("cw_pni") == preset
    assert create_attack("cw_pni", steps=20).steps == 20
    x, y = batch[0][:8], batch[1][:8]
    result = preset(mnist_cnn, x, y)
    assert result.queries == 8 * 10 * 9  # ten iterations in each of the nine binary steps, no early abort
    assert result.norms["l2"].max() > 0  # it moved, if only a little: a weak attack by design
    # Adam restarts from δ = 0 at every c: 10 steps of at most lr·(1 − β1)/√(1 − β2) in tanh space, halved in [0, 1]
    assert float((result.adv - x).abs().max()) <= 10 * 5e-4 * (0.1 / 0.001**0.5) / 2 + 1e-6
    assert_in_box(result.adv)


def test_failed_samples_report_inf(mnist_cnn, batch) -> None:
    result = CarliniWagnerL2(steps=2, binary_steps=1, initial_const=1e-6, abort_early=False)(mnist_cnn, *batch)
    assert not result.success.any()
    assert all(math.isinf(v) for v in result.extras["best_l2"].tolist())


def test_bad_settings_raise() -> None:
    with pytest.raises(InputError):
        CarliniWagnerL2(steps=0)
    with pytest.raises(InputError):
        CarliniWagnerL2(confidence=-1.0)
