"""Property tests (hypothesis) for the ε-ball + box projection and the random starts the attacks rely on."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advlab.attacks.base import Norm, project
from advlab.attacks.pgd import StepRule, random_in_ball, step_direction

NORMS = st.sampled_from([Norm.LINF, Norm.L2])


def _pair(seed: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 2, 4, 4, generator=generator)
    return x, x + scale * torch.randn(x.shape, generator=generator)


def _norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm is Norm.LINF else flat.norm(dim=1)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.0, 3.0), eps=st.floats(0.0, 1.0), norm=NORMS)
def test_projection_lands_in_ball_and_box_and_is_idempotent(seed: int, scale: float, eps: float, norm: Norm) -> None:
    x, adv = _pair(seed, scale)
    once = project(x, adv, eps, norm)
    assert once.min() >= 0 and once.max() <= 1
    assert (_norm(once - x, norm) <= eps * (1 + 1e-5) + 1e-6).all()
    torch.testing.assert_close(project(x, once, eps, norm), once, atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), norm=NORMS)
def test_projection_leaves_points_inside_unchanged(seed: int, norm: Norm) -> None:
    x, adv = _pair(seed, 0.01)
    adv = adv.clamp(0, 1)
    big_eps = 1.0 if norm is Norm.LINF else 100.0
    torch.testing.assert_close(project(x, adv, big_eps, norm), adv, atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.0, 3.0), norm=NORMS)
def test_unbounded_projection_only_clips_to_box(seed: int, scale: float, norm: Norm) -> None:
    x, adv = _pair(seed, scale)
    assert torch.equal(project(x, adv, None, norm), adv.clamp(0, 1))


def test_l2_random_start_is_uniform_in_the_ball() -> None:
    # In d = 4 dimensions a uniform point lies within half the radius with probability (1/2)^4 = 1/16.
    x = torch.full((20_000, 1, 2, 2), 0.5)
    delta = random_in_ball(x, 0.3, Norm.L2, torch.Generator().manual_seed(0)) - x
    radius = delta.flatten(1).norm(dim=1)
    assert (radius <= 0.3 + 1e-6).all()
    assert abs(float((radius <= 0.15).float().mean()) - 1 / 16) < 0.01
    assert delta.mean(dim=0).abs().max() < 0.01  # no preferred direction


def test_linf_random_start_fills_the_cube() -> None:
    x = torch.full((5_000, 1, 2, 2), 0.5)
    delta = random_in_ball(x, 0.1, Norm.LINF, torch.Generator().manual_seed(0)) - x
    assert delta.abs().max() <= 0.1 and delta.abs().max() > 0.099
    assert abs(float((delta.abs() < 0.05).float().mean()) - 0.5) < 0.02


def test_step_directions_have_unit_size_in_their_norm() -> None:
    grad = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    grad[0] = 0  # a zero gradient must give a zero step, not NaN
    sign = step_direction(grad, StepRule.SIGN)
    l2 = step_direction(grad, StepRule.L2)
    scaled = step_direction(grad, StepRule.SCALED)
    assert torch.equal(sign, grad.sign())
    torch.testing.assert_close(l2[1:].flatten(1).norm(dim=1), torch.ones(3))
    torch.testing.assert_close(scaled[1:].flatten(1).abs().amax(dim=1), torch.ones(3))
    # The scaled step keeps the gradient's shape (a positive multiple of it), unlike the sign step.
    ratio = scaled[1:].flatten(1) / grad[1:].flatten(1)
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert (ratio > 0).all()
    for step in (sign, l2, scaled):
        assert torch.isfinite(step).all() and (step[0] == 0).all()
