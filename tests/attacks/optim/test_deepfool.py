"""DeepFool: flips nearly every image with small perturbations, batched without cross-talk, frozen once flipped."""

from __future__ import annotations

import torch

from advlab.attacks.deepfool import DeepFool, DeepFoolLinf
from advlab.attacks.fgsm import FGM, FGSM
from advlab.attacks.registry import create_attack

from .conftest import assert_in_box


def smallest_successful_eps(attack_cls, model, x, y, grid, success_rate) -> float:
    """The smallest budget on ``grid`` at which a one-step attack reaches ``success_rate`` (inf: never)."""
    for eps in grid:
        if attack_cls(eps=eps)(model, x, y).success_rate >= success_rate:
            return eps
    return float("inf")


def test_l2_flips_nearly_all_with_smaller_norms_than_fgm(mnist_cnn, batch) -> None:
    x, y = batch
    result = DeepFool()(mnist_cnn, x, y)
    assert result.success_rate >= 0.95
    assert_in_box(result.adv)
    fgm_eps = smallest_successful_eps(FGM, mnist_cnn, x, y, [1.0, 2.0, 3.0, 4.0, 6.0, 8.0], result.success_rate)
    # Every DeepFool perturbation is smaller than the single budget FGM needs to match its success rate.
    assert float(result.norms["l2"][result.success].max()) < fgm_eps


def test_linf_variant(mnist_cnn, batch) -> None:
    x, y = batch
    result = create_attack("deepfool_linf")(mnist_cnn, x, y)
    assert isinstance(create_attack("deepfool_linf"), DeepFoolLinf)
    assert result.success_rate >= 0.9
    fgsm_eps = smallest_successful_eps(FGSM, mnist_cnn, x, y, [0.05, 0.1, 0.15, 0.2, 0.3, 0.4], result.success_rate)
    assert float(result.norms["linf"][result.success].median()) < fgsm_eps
    assert_in_box(result.adv)


def test_batched_equals_one_by_one(mnist_cnn, batch) -> None:
    x, y = batch[0][:4], batch[1][:4]
    together = DeepFool()(mnist_cnn, x, y).adv
    alone = torch.cat([DeepFool()(mnist_cnn, x[i:i + 1], y[i:i + 1]).adv for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_already_misclassified_samples_are_left_alone(mnist_cnn, batch) -> None:
    x, y = batch[0][:6], batch[1][:6].clone()
    y[:3] = (y[:3] + 1) % 10  # wrong labels: the model already "fails" on these
    result = DeepFool()(mnist_cnn, x, y)
    assert torch.equal(result.adv[:3], x[:3])
    assert (result.norms["l2"][3:] > 0).all()
