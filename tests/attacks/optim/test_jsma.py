"""JSMA: targeted success with at most γ·D changed features; the batched saliency equals a per-sample reference."""

from __future__ import annotations

import copy

import pytest
import torch

from advlab.attacks.jsma import JSMA
from advlab.errors import InputError

from .conftest import assert_in_box


def test_targeted_success_within_budget(mnist_cnn, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    target = (y + 1) % 10
    result = JSMA(gamma=0.1)(mnist_cnn, x, target=target)
    assert result.success_rate >= 0.6  # chance is 10 %
    assert (result.norms["l0"] <= 0.1 * 784).all()
    changed = result.adv != x
    assert (result.adv[changed] == 1.0).all(), "JSMA (θ = +1) sets every changed feature to the maximum"
    assert_in_box(result.adv)


def test_untargeted_uses_second_best_class(mnist_cnn, batch) -> None:
    x, y = batch[0][:8], batch[1][:8]
    result = JSMA()(mnist_cnn, x, y)
    assert result.success_rate >= 0.6


def reference_jsma(model, image, target, gamma):
    """Paper's Algorithm 2 for one image, pairs scanned row by row in plain Python over p (first best wins)."""
    adv = image.clone().flatten()
    domain = [i for i in range(adv.numel()) if adv[i] < 1.0]
    for _ in range(int(gamma * adv.numel()) // 2):
        point = adv.view_as(image)[None].clone().requires_grad_(True)
        logits = model(point)
        if logits.argmax(1).item() == target:
            break
        (alpha,) = torch.autograd.grad(logits[0, target], point, retain_graph=True)
        (total,) = torch.autograd.grad(logits.sum(), point)
        alpha, beta = alpha.flatten(), (total - alpha).flatten()
        best, best_pair = 0.0, None
        in_domain = torch.zeros_like(adv, dtype=torch.bool)
        in_domain[domain] = True
        for p in domain:
            a, b = alpha[p] + alpha, beta[p] + beta
            ok = (a > 0) & (b < 0) & in_domain
            ok[p] = False
            score = torch.where(ok, a * b.abs(), torch.zeros_like(a))
            q = int(score.argmax())
            if score[q] > best:
                best, best_pair = float(score[q]), (p, q)
        if best_pair is None:
            break
        for i in best_pair:
            adv[i] = 1.0
            domain.remove(i)
    return adv.view_as(image)


def test_vectorized_equals_reference(mnist_cnn, batch) -> None:
    model = copy.deepcopy(mnist_cnn).double()
    x, y = batch[0][:2].double(), batch[1][:2]
    target = (y + 3) % 10
    gamma = 0.05
    batched = JSMA(gamma=gamma)(model, x, target=target).adv
    for i in range(2):
        expected = reference_jsma(model, x[i], int(target[i]), gamma)
        assert torch.equal(batched[i], expected)


def test_bad_gamma_raises() -> None:
    with pytest.raises(InputError):
        JSMA(gamma=0.0)


def test_target_saliency_raises_the_target_logit_pixel_by_pixel(mnist_cnn, batch) -> None:
    x, y = batch[0][:16], batch[1][:16]
    target = (y + 1) % 10
    result = JSMA(gamma=0.1, saliency="target")(mnist_cnn, x, target=target)
    assert result.success_rate >= 0.6  # chance is 10 %
    assert (result.norms["l0"] <= 0.1 * 784).all()
    assert (result.adv[result.adv != x] == 1.0).all()
    with torch.no_grad():
        gain = mnist_cnn(result.adv).gather(1, target[:, None]) - mnist_cnn(x).gather(1, target[:, None])
    assert (gain > 0).float().mean() >= 0.9  # each step moves the two pixels of steepest target-logit ascent
    with pytest.raises(InputError, match="saliency"):
        JSMA(saliency="sum")
