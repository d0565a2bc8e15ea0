"""APGD-CE / APGD-DLR / APGD-T (Croce & Hein 2020) on the small trained MNIST model."""

from __future__ import annotations

import pytest
import torch
from gradient_attack_helpers import assert_attack_effective, assert_within_budget
from torch import nn

from advlab.attacks.apgd import APGD, APGDDLR, APGDTargeted, apgd_checkpoints
from advlab.attacks.pgd import PGD
from advlab.errors import InputError


def test_checkpoints_follow_the_paper_schedule() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99: gaps shrink by 0.03 down to 0.06.
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9, 10]
    assert apgd_checkpoints(1) == [1]


@pytest.mark.parametrize("attack", [APGD(eps=0.1, steps=10, seed=0), APGDDLR(eps=0.1, steps=10, seed=0),
                                    APGDTargeted(eps=0.1, steps=10, seed=0, target_classes=2)], ids=repr)
def test_apgd_stays_in_budget_and_cuts_accuracy(trained_cnn, test_batch, attack) -> None:
    x, y = test_batch
    result = attack(trained_cnn, x, y)
    assert_within_budget(result, x, 0.1, "linf")
    assert_attack_effective(result, max_robust=0.3, min_drop=0.6)
    assert result.target is None


def test_apgd_is_at_least_as_strong_as_pgd_with_the_same_iterations(trained_cnn, test_batch) -> None:
    x, y = test_batch
    pgd = PGD(eps=0.075, steps=10, seed=0)(trained_cnn, x, y)
    for attack in (APGD(eps=0.075, steps=10, seed=0), APGDDLR(eps=0.075, steps=10, seed=0)):
        result = attack(trained_cnn, x, y)
        assert result.robust_accuracy <= pgd.robust_accuracy, f"{attack!r} weaker than PGD-10"
        assert result.robust_accuracy < result.clean_accuracy - 0.4


def test_targeted_apgd_reaches_the_given_target(trained_cnn, test_batch) -> None:
    x, y = test_batch
    target = (y + 5) % 10
    result = APGDTargeted(eps=0.2, steps=20, seed=0)(trained_cnn, x, target=target)
    assert torch.equal(result.success, result.adv_pred == target)
    # Targeted DLR only compares z_t with z_y (eq. 6), so reaching one given class is a little harder than with
    # targeted CE; both are far above chance (0.1).
    assert result.success_rate > 0.8
    ce = APGD(eps=0.2, steps=20, seed=0)(trained_cnn, x, target=target)
    assert ce.success_rate > 0.9


def test_restarts_and_early_stop_are_never_weaker(trained_cnn, test_batch) -> None:
    x, y = test_batch
    base = APGD(eps=0.075, steps=10, seed=0)(trained_cnn, x, y)
    restarted = APGD(eps=0.075, steps=10, seed=0, restarts=3)(trained_cnn, x, y)
    fixed = APGD(eps=0.075, steps=10, seed=0, early_stop=False)(trained_cnn, x, y)
    robust = base.adv_pred == y
    assert not ((restarted.adv_pred == y) & ~robust).any()
    assert not (robust & (fixed.adv_pred != y)).any()
    assert base.queries < 0.8 * fixed.queries


def test_images_misclassified_before_the_attack_are_left_alone(trained_cnn, mnist_arrays) -> None:
    x, y = mnist_arrays["test_x"][:1000].float() / 255, mnist_arrays["test_y"][:1000]
    with torch.no_grad():
        wrong = trained_cnn(x).argmax(dim=1) != y
    assert wrong.sum() > 5
    result = APGD(eps=0.05, steps=3, seed=0)(trained_cnn, x[wrong], y[wrong])
    assert torch.equal(result.adv, x[wrong]) and result.success.all()


def test_dlr_needs_enough_classes() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(InputError, match="classes"):
        APGDDLR(eps=0.1, steps=2)(model, torch.rand(3, 1, 2, 2), torch.tensor([0, 1, 0]))


@pytest.mark.parametrize(("factory", "settings"), [
    (APGD, {"eps": -0.1}), (APGD, {"eps": 4}), (APGD, {"steps": 0}), (APGD, {"restarts": 0}), (APGD, {"rho": 0}),
    (APGD, {"momentum": 1.5}), (APGD, {"loss": "nll"}), (APGDTargeted, {"target_classes": 0}),
    (APGDDLR, {"eot_samples": 0}),
])
def test_invalid_settings_raise_input_error(factory, settings) -> None:
    with pytest.raises(InputError):
        factory(**settings)
