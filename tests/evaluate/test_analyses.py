from __future__ import annotations

import pytest
import torch
from evaluate_helpers import IterativeSign, OneStepSign

from advlab.attacks.base import perturbation_norms
from advlab.errors import InputError
from advlab.evaluate import (
    accuracy_vs_noise,
    accuracy_vs_steps,
    average_adversarial_grid,
    average_perturbation_images,
    input_gradient_norms,
    perturbation_statistics,
    pixel_histograms,
    transfer_matrix,
)


@pytest.fixture(scope="module")
def balanced(test_xy):
    """Six test points per class (60), so every grid cell has examples."""
    x, y = test_xy
    index = torch.cat([(y == c).nonzero().squeeze(1)[:6] for c in range(10)])
    return x[index], y[index]


def test_average_adversarial_grid(trained, balanced) -> None:
    x, y = balanced
    eps = 0.2
    grid = average_adversarial_grid(trained, (x, y), IterativeSign(eps=eps, steps=5), batch_size=64)
    assert grid.images.shape == (10, 10, 1, 28, 28)
    class_means = torch.stack([x[y == c].mean(0) for c in range(10)])
    for c in range(10):
        assert torch.allclose(grid.images[c, c], class_means[c], atol=1e-6)
        assert grid.counts[c, c] == 6
    off = ~torch.eye(10, dtype=torch.bool)
    assert (grid.counts[off] == 6).all()
    distance = (grid.images - class_means[:, None]).flatten(2).abs().amax(-1)
    assert (distance[off] <= eps + 1e-5).all() and (distance[off] > 0.01).all()
    assert grid.success_rate[off].mean() > 0.3  # a targeted attack reaches the target far above chance (0.1)
    assert grid.success_rate.diagonal().mean() > 0.8  # the diagonal holds clean accuracy


def test_perturbation_statistics_histograms_and_average_perturbations() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(20, 1, 6, 6, generator=generator) * 0.8
    adv = x + 0.1 * torch.sign(torch.randn(20, 1, 6, 6, generator=generator))
    stats = perturbation_statistics(x, adv)
    assert stats["linf"].mean == pytest.approx(0.1, abs=1e-6) and stats["l0"].max == 36
    expected_l2 = perturbation_norms(adv - x)["l2"].double()
    assert stats["l2"].std == pytest.approx(float(expected_l2.std()), abs=1e-9)
    masked = perturbation_statistics(x, adv, mask=torch.arange(20) < 5)
    assert masked["l1"].mean == pytest.approx(float(perturbation_norms(adv[:5] - x[:5])["l1"].mean()))
    histogram = pixel_histograms(x, adv.clamp(0, 1), bins=10)
    assert histogram.edges.shape == (11,) and histogram.clean.sum() == pytest.approx(1.0)
    assert not torch.equal(histogram.clean, histogram.adversarial)
    labels = torch.arange(20) % 4
    images, counts = average_perturbation_images(x, adv, labels, 5)
    assert images.shape == (5, 1, 6, 6) and counts.tolist() == [5, 5, 5, 5, 0]
    assert torch.allclose(images[1], (adv - x)[labels == 1].mean(0)) and images[4].abs().max() == 0
    with pytest.raises(InputError):
        perturbation_statistics(x, adv[:3])


def test_gradient_norms_are_larger_on_misclassified_points(trained, test_xy) -> None:
    result = input_gradient_norms(trained, (test_xy[0][:400], test_xy[1][:400]), batch_size=128)
    assert result.norms.shape == (400,) and result.incorrect_norms.numel() > 5
    assert result.incorrect_norms.median() > 3 * result.correct_norms.median()
    summary = result.to_dict()
    assert summary["correct"]["n"] + summary["incorrect"]["n"] == 400


def test_transfer_matrix(trained, trained_other, test_xy) -> None:
    data = (test_xy[0][:100], test_xy[1][:100])
    matrix = transfer_matrix({"a": trained, "b": trained_other}, data, IterativeSign(eps=0.07, steps=5))
    assert matrix.accuracy.shape == (2, 2) and matrix.names == ("a", "b")
    # Per target model (column): its own white-box examples vs those crafted on the other model.
    white_box, transferred = matrix.accuracy.diagonal(), matrix.accuracy.flipud().diagonal()
    assert (white_box < transferred).all(), matrix.accuracy  # white-box beats transfer
    assert (transferred < matrix.clean_accuracy).all()  # but adversarial examples do transfer


def test_accuracy_vs_steps_and_noise(trained, test_xy) -> None:
    data = (test_xy[0][:100], test_xy[1][:100])
    sweep = accuracy_vs_steps(trained, data, IterativeSign(eps=0.15, step_size=0.02), [1, 4, 10])
    assert sweep.robust_accuracy[0] > sweep.robust_accuracy[-1] and sweep.values == (1, 4, 10)
    noise = accuracy_vs_noise(trained, data, [0.0, 0.3, 1.0], draws=2)
    clean = float((trained(data[0]).argmax(1) == data[1]).float().mean())
    assert noise.accuracy[0] == pytest.approx(clean) and noise.accuracy_std[0] == 0
    assert noise.accuracy[2] < noise.accuracy[0] - 0.3
    with pytest.raises(InputError, match="no setting"):
        accuracy_vs_steps(trained, data, OneStepSign(), [1, 2])
