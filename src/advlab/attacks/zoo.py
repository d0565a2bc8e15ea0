"""ZOO: the C&W L2 objective optimized from scores only, with coordinate-wise finite differences and ADAM.

Paper: P.-Y. Chen, H. Zhang, Y. Sharma, J. Yi, C.-J. Hsieh, "ZOO: Zeroth Order Optimization based Black-box
Attacks to Deep Neural Networks without Training Substitute Models", 2017, arXiv:1708.03999 (Algorithm 2,
ZOO-ADAM). Importance sampling and hierarchical attack (for large images) are not implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.cw import (
    adam_update,
    binary_search_step,
    cw_objective,
    from_tanh_space,
    objective_reached,
    to_tanh_space,
)
from advlab.attacks.gradients import FiniteDifferenceGradient, LossFn
from advlab.attacks.registry import register_attack
from advlab.errors import InputError


class CoordinateView(nn.Module):
    """The model seen as a function of ``k`` chosen tanh-space coordinates per image.

    ``forward(v)`` takes values ``v`` (B, k, 1, 1) for the coordinates ``coords`` (N, k) of the tanh-space points
    ``w`` (N, D), puts them in place and returns the logits of the images. B is a multiple of N with the probes
    of image i in the i-th block of B / N rows (the layout of :class:`FiniteDifferenceGradient`'s probes), so
    the estimator with ``coordinates=None`` differentiates exactly the chosen coordinates, batched over images.
    """

    def __init__(self, model: nn.Module, w: torch.Tensor, coords: torch.Tensor, image_shape: torch.Size) -> None:
        super().__init__()
        self.model, self.w, self.coords, self.image_shape = model, w, coords, image_shape

    def values(self) -> torch.Tensor:
        """The current coordinate values (N, k, 1, 1): the point at which to differentiate."""
        return self.w.gather(1, self.coords)[:, :, None, None]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        owner = torch.arange(v.shape[0], device=v.device) // (v.shape[0] // self.w.shape[0])
        w = self.w[owner].scatter(1, self.coords[owner], v.flatten(1))
        return self.model(from_tanh_space(w).view(-1, *self.image_shape))


def coordinate_gradient(
    model: nn.Module, w: torch.Tensor, coords: torch.Tensor, loss_fn: LossFn, image_shape: torch.Size,
    *, h: float = 1e-4, chunk: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric finite-difference derivatives of ``loss_fn(model(tanh-box(w)))`` along ``coords`` (N, k).

    Returns ``(loss (N,), derivatives (N, k))`` using 2k + 1 model evaluations per image (ZOO eq. 6).
    """
    view = CoordinateView(model, w, coords, image_shape)
    loss, grad = FiniteDifferenceGradient(h=h, coordinates=None, chunk=chunk)(view, view.values(), loss_fn)
    return loss, grad.flatten(1)


@register_attack("zoo", family="black-box", norm="l2")
@dataclass(frozen=True, kw_only=True)
class ZOO(Attack):
    """ZOO-ADAM (score-based black-box, L2): C&W's tanh-box objective, gradients by coordinate finite differences.

    The loss is the paper's ``‖δ‖₂² + c·max(log F(x)_y - max_{j≠y} log F(x)_j, -κ)`` (targeted: t and the sign
    swapped) on log-probabilities; the model is only evaluated, never differentiated. The ‖δ‖² term is a known
    function of w, so its derivative is exact and costs no queries; c·f is estimated from scores.

    Threat model: black-box with scores, L2, unbounded (reports the smallest successful L2).

    Args:
        confidence: κ ≥ 0 on the log-probability margin.
        initial_const: starting c (the authors' code: 1.0); ``binary_steps`` per-sample binary-search steps.
        steps: ADAM iterations per binary step (each costs 2·coordinates + 1 queries per image).
        lr: ADAM step size in tanh space (paper: 0.01); β1 0.9, β2 0.999, ε 1e-8 as in the paper.
        coordinates: coordinates estimated per iteration and image (paper: 128).
        h: finite-difference step in tanh space (paper: 1e-4).
        chunk: probe images per model call. seed: seeds the coordinate choice.

    Shapes: x (N, C, H, W) in [0, 1]. ``extras``: ``best_l2`` (N,), inf where no success; ``queries_to_success``
    (N,), the queries spent on an image before its first success (inf where none).

    Example::

        result = ZOO(steps=200, binary_steps=1)(black_box_model, x, y)
        print(result.success_rate, result.queries)
    """

    norm: ClassVar[Norm] = Norm.L2

    confidence: float = 0.0
    initial_const: float = 1.0
    binary_steps: int = 3
    steps: int = 1000
    lr: float = 1e-2
    coordinates: int = 128
    h: float = 1e-4
    chunk: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.confidence < 0 or self.initial_const <= 0 or self.lr <= 0 or self.h <= 0:
            raise InputError("ZOO needs confidence >= 0 and initial_const, lr, h > 0")
        if min(self.binary_steps, self.steps, self.coordinates, self.chunk) < 1:
            raise InputError("ZOO needs binary_steps, steps, coordinates and chunk >= 1")

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n, dim = x.shape[0], x[0].numel()
        k = min(self.coordinates, dim)
        generator = torch.Generator().manual_seed(self.seed)
        x_flat = x.flatten(1)
        w_clean = to_tanh_space(x_flat)
        const = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower, upper = torch.zeros_like(const), torch.full_like(const, 1e10)
        best_l2 = torch.full_like(const, math.inf)
        first_success = torch.full_like(const, math.inf)
        best_adv, last_adv = x_flat.clone(), x_flat.clone()
        spent = 0
        rows = torch.arange(n, device=x.device)[:, None]
        for _ in range(self.binary_steps):
            w = w_clean.clone()
            # ZOO-ADAM keeps one moment pair and one step counter per coordinate, updated only when sampled.
            m1, m2, count = torch.zeros_like(w), torch.zeros_like(w), torch.zeros_like(w)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)

            def scaled_objective(logits: torch.Tensor, const: torch.Tensor = const) -> torch.Tensor:
                return const * cw_objective(logits.log_softmax(dim=1), y, target, math.inf)

            for _ in range(self.steps):
                coords = torch.rand(n, dim, generator=generator).topk(k, dim=1).indices.to(x.device)
                c_f, grad_f = coordinate_gradient(model, w, coords, scaled_objective, x.shape[1:], h=self.h,
                                                  chunk=self.chunk)
                spent += 2 * k + 1
                # Success and L2 at the current point come free with the base evaluation of the estimator.
                adv = from_tanh_space(w)
                l2 = (adv - x_flat).norm(dim=1)
                reached = objective_reached(c_f / const, self.confidence)
                # The paper clamps f at -κ: its derivative is zero there (estimated unclamped so that the base
                # evaluation also tells success; the two differ only within h of the kink).
                grad_f = grad_f.masked_fill((c_f / const <= -self.confidence)[:, None], 0.0)
                first_success = torch.where(reached & first_success.isinf(), float(spent), first_success)
                improved = reached & (l2 < best_l2)
                best_l2 = torch.where(improved, l2, best_l2)
                best_adv[improved] = adv[improved]
                succeeded |= reached
                last_adv = adv
                # d‖δ‖²/dw = 2δ · (1 - tanh²w) / 2, exact; added to the estimated c·f derivative.
                w_sel = w.gather(1, coords)
                grad = grad_f + (adv - x_flat).gather(1, coords) * (1 - torch.tanh(w_sel) ** 2)
                count[rows, coords] += 1
                w[rows, coords], m1[rows, coords], m2[rows, coords] = adam_update(
                    w_sel, grad, m1.gather(1, coords), m2.gather(1, coords), count.gather(1, coords), self.lr)
            const, lower, upper = binary_search_step(const, lower, upper, succeeded)
        found = torch.isfinite(best_l2)
        adv = torch.where(found[:, None], best_adv, last_adv).view_as(x)
        return adv, {"best_l2": best_l2, "queries_to_success": first_success}
