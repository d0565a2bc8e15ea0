"""Carlini & Wagner L2 attack: the smallest L2 perturbation found by Adam in tanh space, binary search over c.

Paper: N. Carlini, D. Wagner, "Towards Evaluating the Robustness of Neural Networks", 2017, arXiv:1608.04644.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.losses import margin, targeted_margin
from advlab.attacks.registry import register_attack
from advlab.errors import InputError

_BIG = 1e10  # the paper's "no successful c yet" upper bound


def to_tanh_space(x: torch.Tensor) -> torch.Tensor:
    """The w with ``(tanh(w) + 1) / 2 == x``; x is shrunk by 1e-6 so that 0 and 1 map to finite w."""
    return torch.atanh((2 * x - 1) * (1 - 1e-6))


def from_tanh_space(w: torch.Tensor) -> torch.Tensor:
    """The box constraint as a change of variables: any real w maps into [0, 1]."""
    return (torch.tanh(w) + 1) / 2


def cw_objective(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, kappa: float) -> torch.Tensor:
    """The paper's f6, as a per-sample loss to *minimize*: ``max(z_y - max_{j≠y} z_j, -κ)`` (untargeted) or
    ``max(max_{j≠t} z_j - z_t, -κ)`` (targeted). It reaches its floor -κ once the confidence margin κ is met."""
    if target is None:
        return -margin(logits, y, kappa)
    return -targeted_margin(logits, target, kappa)


def adam_update(
    value: torch.Tensor, grad: torch.Tensor, moment1: torch.Tensor, moment2: torch.Tensor,
    step: int | torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Adam descent step (Kingma & Ba 2015) on tensors; ``step`` counts from 1 and may be per-element (ZOO's
    coordinate-wise Adam). Returns (value, moment1, moment2). Written out rather than ``torch.optim.Adam``: the
    optimizer's first construction imports torch._dynamo, seconds per process for a few lines of arithmetic."""
    moment1 = betas[0] * moment1 + (1 - betas[0]) * grad
    moment2 = betas[1] * moment2 + (1 - betas[1]) * grad**2
    corrected1 = moment1 / (1 - betas[0] ** step)
    corrected2 = moment2 / (1 - betas[1] ** step)
    return value - lr * corrected1 / (corrected2.sqrt() + eps), moment1, moment2


def objective_reached(f: torch.Tensor, kappa: float) -> torch.Tensor:
    """Whether the unclamped objective f (N,) met the confidence κ; for κ = 0 a strict flip (f < 0) is required."""
    return f < 0 if kappa == 0 else f <= -kappa


def binary_search_step(
    const: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, succeeded: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One per-sample binary-search update of c (all (N,)): success -> smaller c (bisect toward ``lower``);
    failure -> larger c (bisect toward ``upper``, or x10 while no c has succeeded yet). Returns (c, lower, upper)."""
    upper = torch.where(succeeded, torch.minimum(upper, const), upper)
    lower = torch.where(succeeded, lower, torch.maximum(lower, const))
    const = torch.where(upper < _BIG, (lower + upper) / 2, const * 10)
    return const, lower, upper


@register_attack("cw", family="optimization", norm="l2")
@dataclass(frozen=True, kw_only=True)
class CarliniWagnerL2(Attack):
    """C&W L2: minimize ``‖δ‖₂² + c·f(x + δ)`` over ``x + δ = (tanh(w) + 1) / 2`` with Adam, per-sample c.

    Threat model: white-box, L2, unbounded (reports the smallest successful L2 rather than a fixed budget).

    Args:
        confidence: κ ≥ 0, the logit margin the adversarial must reach (0: just cross the boundary).
        initial_const: the starting c of every sample (paper: 1e-3).
        binary_steps: binary-search steps over c (paper: 9). With 1, c stays ``initial_const``.
        steps: Adam iterations per binary step. The paper uses 10,000; 1000 with early abort finds nearly the
            same L2 at a tenth of the cost, so it is the default here.
        lr: Adam step size in tanh space (paper: 1e-2).
        abort_early: stop a binary step when the batch loss has not fallen by 0.01 % over ``steps // 10``
            iterations (the paper's rule).

    Shapes: x (N, C, H, W) in [0, 1]; ``result.extras["best_l2"]`` (N,) holds the L2 of the smallest successful
    perturbation (inf where none succeeded; those samples return the last iterate).

    Example::

        result = CarliniWagnerL2(steps=100, binary_steps=5)(model, x, y)
        print(result.success_rate, result.extras["best_l2"][result.success].mean())
    """

    norm: ClassVar[Norm] = Norm.L2

    confidence: float = 0.0
    initial_const: float = 1e-3
    binary_steps: int = 9
    steps: int = 1000
    lr: float = 1e-2
    abort_early: bool = True

    def __post_init__(self) -> None:
        if self.confidence < 0 or self.initial_const <= 0 or self.lr <= 0:
            raise InputError("C&W needs confidence >= 0, initial_const > 0 and lr > 0")
        if self.binary_steps < 1 or self.steps < 1:
            raise InputError("C&W needs binary_steps >= 1 and steps >= 1")

    @classmethod
    def pni(cls, **overrides: Any) -> CarliniWagnerL2:
        """The C&W L2 setting of the PNI paper (Rakin, He, Fan 2019, arXiv:1811.09310, §4.1): c = 0.01 (the
        starting c of the binary search), Adam lr 5e-4, κ = 0, 9 binary-search steps of 10 iterations each.
        ``abort_early=False`` is not in that paper (with 10 iterations the early-abort check would run every step).

        A weak attack by design: each binary step restarts Adam from δ = 0, and 10 Adam steps of 5e-4 in tanh space
        move a pixel by at most 10 · 5e-4 / 2 = 2.5e-3 in [0, 1] units while the gradient keeps its sign (Adam's
        step is then at most lr), an L2 of about 0.14 on a 3×32×32 image; Adam's worst case, a step of
        lr·(1 − β1)/√(1 − β2) ≈ 3.2·lr, bounds it by about 8e-3 per pixel.
        """
        preset = cls(initial_const=0.01, lr=5e-4, steps=10, binary_steps=9, abort_early=False)
        return replace(preset, **overrides)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = x.shape[0]
        w_clean = to_tanh_space(x)
        const = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, _BIG)
        best_l2 = torch.full_like(const, math.inf)
        best_adv = x.clone()
        last_adv = x.clone()
        for _ in range(self.binary_steps):
            # The paper restarts Adam from δ = 0 at every c, so each binary step is an independent optimization.
            modifier = torch.zeros_like(x)
            moment1, moment2 = torch.zeros_like(x), torch.zeros_like(x)
            succeeded_at_this_c = torch.zeros(n, dtype=torch.bool, device=x.device)
            previous = math.inf
            for step in range(self.steps):
                with torch.enable_grad():
                    modifier.requires_grad_(True)
                    adv = from_tanh_space(w_clean + modifier)
                    logits = model(adv)
                    sq_l2 = (adv - x).flatten(1).pow(2).sum(1)
                    # f unclamped decides success; the loss uses the paper's clamp at -κ.
                    f = cw_objective(logits, y, target, math.inf)
                    loss = (sq_l2 + const * f.clamp_min(-self.confidence)).sum()
                    (grad,) = torch.autograd.grad(loss, modifier)
                adv, sq_l2, f = adv.detach(), sq_l2.detach(), f.detach()
                reached = objective_reached(f, self.confidence)
                improved = reached & (sq_l2.sqrt() < best_l2)
                best_l2 = torch.where(improved, sq_l2.sqrt(), best_l2)
                best_adv[improved] = adv[improved]
                succeeded_at_this_c |= reached
                last_adv = adv
                modifier, moment1, moment2 = adam_update(modifier.detach(), grad, moment1, moment2, step + 1, self.lr)
                if self.abort_early and step % max(1, self.steps // 10) == 0:
                    if float(loss.detach()) > previous * 0.9999:
                        break
                    previous = float(loss.detach())
            const, lower, upper = binary_search_step(const, lower, upper, succeeded_at_this_c)
        found = torch.isfinite(best_l2)
        adv = torch.where(found.view(-1, 1, 1, 1), best_adv, last_adv)
        return adv, {"best_l2": best_l2}


register_attack("cw_pni", family="optimization", norm="l2")(CarliniWagnerL2.pni)
