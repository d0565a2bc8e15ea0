"""ZOO: its coordinate estimator matches autograd; the attack uses scores only, counts queries, fools the model."""

from __future__ import annotations

import copy

import pytest
import torch

from advlab.attacks.cw import cw_objective, from_tanh_space, to_tanh_space
from advlab.attacks.zoo import ZOO, coordinate_gradient

from .conftest import accuracy, assert_in_box


def test_coordinate_estimator_matches_autograd(mnist_mlp, batch) -> None:
    model = copy.deepcopy(mnist_mlp).double()
    x, y = batch[0][:2].double(), batch[1][:2]
    w = to_tanh_space(x.flatten(1))
    coords = torch.arange(784).expand(2, 784)  # every coordinate: the estimator with coordinates=None

    def loss_fn(logits: torch.Tensor) -> torch.Tensor:
        return cw_objective(logits.log_softmax(1), y, None, float("inf"))

    loss, estimate = coordinate_gradient(model, w, coords, loss_fn, x.shape[1:], h=1e-5)
    w_var = w.clone().requires_grad_(True)
    exact_loss = loss_fn(model(from_tanh_space(w_var).view_as(x)))
    (exact,) = torch.autograd.grad(exact_loss.sum(), w_var)
    assert torch.allclose(loss, exact_loss.detach())
    assert torch.allclose(estimate, exact, atol=1e-7, rtol=1e-4)
    assert exact.abs().max() > 1e-3  # the comparison is not between two zero vectors


def test_scores_only_model_refuses_backward(scores_only_mlp, batch) -> None:
    x = batch[0][:2].clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="black-box"):
        scores_only_mlp(x).sum().backward()


def test_reduces_accuracy_from_scores_only(scores_only_mlp, mnist_mlp, batch) -> None:
    x, y = batch[0][:8], batch[1][:8]
    keep = (mnist_mlp(x).argmax(1) == y)
    x, y = x[keep], y[keep]
    steps, k = 40, 128
    result = ZOO(steps=steps, binary_steps=1, lr=0.5, initial_const=10.0, coordinates=k)(scores_only_mlp, x, y)
    assert result.robust_accuracy <= 0.5 * accuracy(mnist_mlp, x, y)
    assert result.queries == x.shape[0] * steps * (2 * k + 1)
    to_success = result.extras["queries_to_success"]
    assert torch.isfinite(to_success[result.success]).all()
    assert (to_success[result.success] <= steps * (2 * k + 1)).all()
    assert torch.isfinite(result.extras["best_l2"][result.success]).all()
    assert_in_box(result.adv)
