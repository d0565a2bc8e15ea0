"""JSMA with Wang, Kunin, Pyron's additive single-pixel saliency ∂F_t/∂x + Σ_{k≠t} −∂F_k/∂x."""

from __future__ import annotations

import torch

from advlab.attacks.jsma import JSMA, best_additive_pixels

from .conftest import assert_in_box


def _additive_saliency(model, image: torch.Tensor, target: int) -> torch.Tensor:
    """The paper's score for every pixel of one image, one backward pass per class (a plain reference)."""
    point = image[None].clone().requires_grad_(True)
    logits = model(point)[0]
    rows = [torch.autograd.grad(logits[k], point, retain_graph=True)[0].flatten() for k in range(logits.numel())]
    jacobian = torch.stack(rows)
    others = torch.ones(logits.numel(), dtype=torch.bool)
    others[target] = False
    return jacobian[target] - jacobian[others].sum(0)


def test_first_step_raises_the_two_pixels_of_highest_additive_saliency(mnist_cnn, batch) -> None:
    x, y = batch[0][:6], batch[1][:6]
    target = (y + 1) % 10
    one_step = JSMA(gamma=2.5 / 784, saliency="additive")(mnist_cnn, x, target=target).adv
    for i in range(x.shape[0]):
        score = _additive_saliency(mnist_cnn, x[i], int(target[i]))
        score[x[i].flatten() >= 1.0] = float("-inf")  # pixels already at the maximum cannot be raised
        expected = set(score.topk(2).indices.tolist())
        changed = set((one_step[i] != x[i]).flatten().nonzero().squeeze(1).tolist())
        assert changed == expected


def test_additive_saliency_reaches_the_target_within_the_budget(mnist_cnn, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    result = JSMA(gamma=0.1, saliency="additive")(mnist_cnn, x, target=(y + 1) % 10)
    assert result.success_rate >= 0.5  # chance is 10 %
    assert (result.norms["l0"] <= 0.1 * 784).all()
    assert (result.adv[result.adv != x] == 1.0).all()
    assert_in_box(result.adv)


def test_no_pixel_with_a_positive_score_means_no_move() -> None:
    alpha = torch.tensor([[0.1, -0.2, 0.3], [-1.0, -2.0, -3.0]])
    beta = torch.tensor([[-0.1, 0.0, 0.6], [0.0, 0.0, 0.0]])
    domain = torch.ones(2, 3, dtype=torch.bool)
    p, q, found = best_additive_pixels(alpha, beta, domain)
    assert (p[0].item(), q[0].item()) == (0, 1) and found.tolist() == [True, False]  # scores 0.2, -0.2, -0.3
