"""Auto-PGD: PGD with momentum and a step size that adapts itself, without tuning (APGD-CE, APGD-DLR, APGD-T).

Paper: Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks" (ICML 2020, arXiv:2003.01690), Algorithm 1. Per sample:

* start at a random point of the ε-ball, step size η = 2ε;
* ``z = Π(x_k + η·sign(∇f(x_k)))``, ``x_{k+1} = Π(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))`` with α = 0.75
  (α = 1 on the first step);
* at the checkpoints ``w_j = ⌈p_j·N_iter⌉`` (p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06))
  halve η and restart from the best point when (a) fewer than ρ = 0.75 of the steps since the last checkpoint
  increased the loss, or (b) η was not halved at the last checkpoint and the best loss has not improved since.
  Unlike the reference code, the momentum term is reset at such a restart (x_{k−1} := x_best).

Per image the first adversarial point is kept (the reference code does the same); ``early_stop=True`` also drops
the image from the remaining iterations. Restarts and target classes run one after another on the images that
are still robust, as in AutoAttack. Images misclassified before the attack are returned unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm, project
from advlab.attacks.gradients import GradientEstimator
from advlab.attacks.pgd import (
    AttackLoss,
    StepRule,
    bind_labels,
    check_settings,
    confirmed_fooled,
    is_fooled,
    loss_and_gradient,
    make_generator,
    make_loss,
    resolve_gradient,
    step_direction,
)
from advlab.attacks.randomized import forward_is_random
from advlab.attacks.registry import register_attack
from advlab.errors import InputError


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations (1-based counts of steps done) at which APGD checks its step size, e.g. 22, 41, 57, ... for 100."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({w for w in (math.ceil(q * steps - 1e-9) for q in p[1:]) if 1 <= w <= steps})


def _pick(values: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if values is None else values[rows]


def apgd_single_run(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss_target: torch.Tensor | None,
    success_target: torch.Tensor | None, eps: float, norm: Norm, steps: int, rho: float, momentum: float,
    loss: AttackLoss, estimator: GradientEstimator | None, early_stop: bool, generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run from a random start; returns ``(points (N, C, H, W), fooled (N,), loss (N,))`` at the points.

    Points are the first adversarial iterate when one was seen, else the iterate of highest loss. With a custom
    estimator (EOT) the logits are not seen, so points are the highest-loss iterates; ``fooled`` and ``loss``
    always come from one final forward pass.
    """
    n, view = x.shape[0], (-1, *([1] * (x.dim() - 1)))
    rule = StepRule.SIGN if norm is Norm.LINF else StepRule.L2
    if norm is Norm.LINF:
        start = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        start = start / start.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(view)
    else:
        start = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        start = start / start.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
    adv = project(x, x + eps * start, eps, norm)

    def evaluate(rows: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return loss_and_gradient(model, points, bind_labels(loss, y[rows], _pick(loss_target, rows)), estimator)

    everyone = torch.arange(n, device=x.device)
    first_loss, grad, logits = evaluate(everyone, adv)
    # A randomized model's logits are one noise draw: keeping the iterate one draw misclassified would let luck
    # decide (see attacks/randomized.py), so such a model is treated like an estimator's: highest-loss points.
    observable = logits is not None and not forward_is_random(model, x)
    found = (confirmed_fooled(model, adv, is_fooled(logits, y, success_target), y, success_target)
             if observable and logits is not None else torch.zeros(n, dtype=torch.bool, device=x.device))
    x_found, x_best, grad_best, best_loss = adv.clone(), adv.clone(), grad.clone(), first_loss.clone()
    step = torch.full((n,), 2.0 * eps, device=x.device, dtype=x.dtype)
    previous = adv.clone()
    history = torch.full((steps + 1, n), -math.inf, device=x.device, dtype=first_loss.dtype)
    history[0] = first_loss
    checkpoints = set(apgd_checkpoints(steps))
    last_check, best_at_check = 0, best_loss.clone()
    halved_at_check = torch.zeros(n, dtype=torch.bool, device=x.device)
    can_stop = early_stop and observable
    active = ~found if can_stop else torch.ones(n, dtype=torch.bool, device=x.device)

    for i in range(steps):
        rows = active.nonzero().squeeze(1)
        if rows.numel() == 0:
            break
        x_r, current = x[rows], adv[rows]
        z = project(x_r, current + step[rows].view(view) * step_direction(grad[rows], rule), eps, norm)
        weight = 1.0 if i == 0 else momentum
        new = project(x_r, current + weight * (z - current) + (1 - weight) * (current - previous[rows]), eps, norm)
        previous[rows], adv[rows] = current, new
        loss_r, grad_r, logits_r = evaluate(rows, new)
        grad[rows], history[i + 1, rows] = grad_r, loss_r
        if observable and logits_r is not None:  # observable: the autograd path, which returns its logits
            fooled = confirmed_fooled(model, new, is_fooled(logits_r, y[rows], _pick(success_target, rows)), y[rows],
                                      _pick(success_target, rows))
            newly = fooled & ~found[rows]
            x_found[rows[newly]], found[rows[newly]] = new[newly], True
        better = loss_r > best_loss[rows]
        improved = rows[better]
        best_loss[improved], x_best[improved], grad_best[improved] = loss_r[better], new[better], grad_r[better]
        if i + 1 in checkpoints:
            span = i + 1 - last_check
            increases = (history[last_check + 1:i + 2] > history[last_check:i + 1]).sum(dim=0)
            halve = ((increases < rho * span) | (~halved_at_check & (best_loss <= best_at_check))) & active
            step = torch.where(halve, step / 2, step)
            adv[halve] = previous[halve] = x_best[halve]
            grad[halve] = grad_best[halve]
            halved_at_check, best_at_check, last_check = halve, best_loss.clone(), i + 1
        if can_stop:
            active &= ~found

    points = torch.where(found.view(view), x_found, x_best)
    with torch.no_grad():
        final_logits = model(points)
    return points, is_fooled(final_logits, y, success_target), loss(final_logits, y, loss_target).detach()


@register_attack("apgd_ce", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class APGD(Attack):
    """Auto-PGD (Croce & Hein 2020, arXiv:2003.01690) on the cross-entropy (``apgd_ce``) or DLR loss, L∞.

    Args:
        eps: L∞ radius in [0, 1] pixel units (default 8/255).
        steps: N_iter, iterations per run (default 100). restarts: random restarts on still-robust images (1).
        loss: "ce" (APGD-CE, default), "dlr" (APGD-DLR) or "margin"/"cw"; targeted variants with ``target=...``.
        rho: ρ, share of loss-increasing steps below which the step is halved (0.75).
        momentum: α of the momentum update (0.75).
        gradient / eot_samples: gradient estimator (None: autograd); ``eot_samples > 1`` is EOT-APGD.
        early_stop: drop an image from further iterations once fooled (default True; results are the same).
        seed: seeds the random starts (None: torch's global RNG).

    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> ``AttackResult.adv`` (N, C, H, W).

    Example::

        result = APGD(eps=8 / 255, loss="dlr")(model, x, y)
        print(result.robust_accuracy)
    """

    norm: ClassVar[Norm] = Norm.LINF

    eps: float = 8 / 255
    steps: int = 100
    restarts: int = 1
    loss: str = "ce"
    rho: float = 0.75
    momentum: float = 0.75
    gradient: GradientEstimator | None = None
    eot_samples: int = 1
    early_stop: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        check_settings(self.eps, self.norm, self.steps, None, self.restarts)
        make_loss(self.loss, targeted=False)
        resolve_gradient(self.gradient, self.eot_samples)
        for name in ("rho", "momentum"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise InputError(f"{name} must lie in (0, 1], got {value!r}")

    def target_plans(
        self, clean_logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """``(loss_target, success_target)`` per sequence of runs: here just the caller's target (or none)."""
        return [(target, target)]

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            clean_logits = model(x)
        plans = self.target_plans(clean_logits, y, target)
        if self.loss == "dlr" and clean_logits.shape[1] < (4 if plans[0][0] is not None else 3):
            raise InputError("the DLR loss needs at least 3 classes (4 when targeted); use loss='ce'")
        generator = make_generator(self.seed, x.device)
        estimator = resolve_gradient(self.gradient, self.eot_samples)
        result = x.clone()
        robust = ~is_fooled(clean_logits, y, target)
        best_loss = torch.full((x.shape[0],), -math.inf, device=x.device)
        for loss_target, success_target in plans:
            loss = make_loss(self.loss, loss_target is not None)
            for _ in range(self.restarts):
                rows = robust.nonzero().squeeze(1)
                if rows.numel() == 0:
                    return result
                points, fooled, final_loss = apgd_single_run(
                    model, x[rows], y[rows], loss_target=_pick(loss_target, rows),
                    success_target=_pick(success_target, rows), eps=self.eps, norm=self.norm, steps=self.steps,
                    rho=self.rho, momentum=self.momentum, loss=loss, estimator=estimator,
                    early_stop=self.early_stop, generator=generator,
                )
                # Fooled images stop here; robust ones keep their highest-loss point over the runs.
                keep = fooled | (final_loss > best_loss[rows])
                result[rows[keep]] = points[keep]
                best_loss[rows[keep]] = final_loss[keep]
                robust[rows[fooled]] = False
        return result


@register_attack("apgd_dlr", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class APGDDLR(APGD):
    """APGD on the Difference-of-Logits-Ratio loss (Croce & Hein 2020, eq. 5): invariant to logit scaling.

    Example::

        result = APGDDLR(eps=8 / 255)(model, x, y)
    """

    loss: str = "dlr"


@register_attack("apgd_dlr_targeted", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class APGDTargeted(APGD):
    """APGD-T: targeted DLR loss (Croce & Hein 2020, eq. 6) against each of the top-``target_classes`` classes.

    Without ``target=...`` the attack is untargeted in effect (success = misclassification): it runs targeted
    APGD-DLR toward the highest-scoring wrong class, then the next one, ..., on the images still robust. With
    ``target=...`` it runs toward that class only and success means reaching it.

    Args:
        target_classes: how many of the top wrong classes to try (default 9, AutoAttack's setting).
        Others as :class:`APGD` (loss defaults to "dlr").

    Example::

        result = APGDTargeted(eps=8 / 255, target_classes=3)(model, x, y)
    """

    loss: str = "dlr"
    target_classes: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.target_classes, int) or self.target_classes < 1:
            raise InputError(f"target_classes must be an integer >= 1, got {self.target_classes!r}")

    def target_plans(
        self, clean_logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        if target is not None:
            return [(target, target)]
        k = min(self.target_classes, clean_logits.shape[1] - 1)
        others = clean_logits.scatter(1, y[:, None], -math.inf).topk(k, dim=1).indices
        return [(others[:, j], None) for j in range(k)]
