"""Projected gradient descent (BIM / PGD, L∞ and L2) and the iteration core that FGSM and MI-FGSM share.

Paper: Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to Adversarial Attacks"
(2018, arXiv:1706.06083); BIM: Kurakin, Goodfellow, Bengio, "Adversarial examples in the physical world" (2016,
arXiv:1607.02533). FGSM is one step of this loop without a random start and MI-FGSM is this loop with momentum
(Foolbox 3's design), so :func:`gradient_iterations` is the only implementation of a signed-gradient loop.

Evaluation vs training: ``early_stop=True`` (the default, for evaluation) drops a sample from the remaining steps
as soon as it is misclassified (or reaches its target) and keeps that first adversarial example. Its trajectory up
to that point is the fixed-step trajectory, so early stop is never weaker and spends fewer forward passes.
``early_stop=False`` runs every step on every sample and returns the last iterate (what adversarial training uses).
Early stop needs the logits of the gradient pass, so it is switched off when a custom ``gradient`` or
``eot_samples > 1`` is given, and whenever the model is randomized (declared ``stochastic`` or two forward passes
disagree, :func:`advlab.attacks.randomized.forward_is_random`): a single lucky noise draw must not freeze a sample
at an early iterate that the final pass, on a fresh draw, may classify correctly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks import losses
from advlab.attacks.base import CLEAN_LOGITS, Attack, Norm, check_eps, project
from advlab.attacks.gradients import EOTGradient, GradientEstimator
from advlab.attacks.randomized import forward_is_random
from advlab.attacks.registry import register_attack
from advlab.errors import InputError

AttackLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
LOSS_NAMES = ("ce", "margin", "cw", "dlr", "score")


class StepRule(str, Enum):
    """How a gradient becomes a step of length ``step_size``."""

    SIGN = "sign"  # L∞ steepest ascent: α·sign(g)
    L2 = "l2"  # L2 steepest ascent: α·g/‖g‖₂
    SCALED = "scaled"  # the raw gradient rescaled so that its largest entry is α: α·g/max|g| (L∞ of the step = α)


def step_direction(grad: torch.Tensor, rule: StepRule) -> torch.Tensor:
    """Unit-size ascent direction (N, C, H, W) for ``grad`` under ``rule``; zero gradients give zero steps."""
    if rule is StepRule.SIGN:
        return grad.sign()
    scale = grad.flatten(1).norm(p=2, dim=1) if rule is StepRule.L2 else grad.flatten(1).abs().amax(dim=1)
    return grad / scale.clamp_min(1e-12).view(-1, *([1] * (grad.dim() - 1)))


def make_loss(name: str, targeted: bool) -> AttackLoss:
    """Per-sample loss to *increase*: ``loss(logits, y, target)``; ``cw`` is an alias of ``margin``; ``score`` is
    the class score itself (the logit ``F_t``, Wang et al.'s targeted FGSM / gradient step).

    The loss is computed in float32 whatever the logits' dtype: under a bf16 attack the logits come out in bf16,
    whose 8-bit mantissa would round the margins and ratios the attacks compare from step to step (APGD's best
    loss, its step-size checkpoints), and per-sample losses then keep one dtype for the buffers that store them."""
    loss = _loss_in_logits_dtype(name, targeted)
    return lambda z, y, t: loss(z.float(), y, t)


def _loss_in_logits_dtype(name: str, targeted: bool) -> AttackLoss:
    """:func:`make_loss` without its float32 cast."""
    if name not in LOSS_NAMES:
        raise InputError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    if name == "ce":
        return (lambda z, y, t: losses.targeted_cross_entropy(z, _required(t))) if targeted else (
            lambda z, y, t: losses.cross_entropy(z, y))
    if name == "score":
        return (lambda z, y, t: losses.targeted_score(z, _required(t))) if targeted else (
            lambda z, y, t: losses.score(z, y))
    if name in ("margin", "cw"):
        return (lambda z, y, t: losses.targeted_margin(z, _required(t))) if targeted else (
            lambda z, y, t: losses.margin(z, y))
    return (lambda z, y, t: losses.targeted_dlr(z, y, _required(t))) if targeted else (
        lambda z, y, t: losses.dlr(z, y))


def _required(target: torch.Tensor | None) -> torch.Tensor:
    """The target classes a targeted loss needs; None there is a caller's bug, reported as an InputError."""
    if target is None:
        raise InputError("a targeted loss needs target classes (N,), got None; pass target=... to the attack")
    return target


def resolve_gradient(gradient: GradientEstimator | None, eot_samples: int) -> GradientEstimator | None:
    """The estimator an attack uses; None means exact autograd with access to the logits (early stop possible)."""
    if eot_samples < 1:
        raise InputError(f"eot_samples must be >= 1, got {eot_samples}")
    if gradient is not None and eot_samples > 1:
        raise InputError("give either gradient=... or eot_samples > 1, not both (use gradient=EOTGradient(n))")
    return EOTGradient(eot_samples) if eot_samples > 1 else gradient


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A fresh generator per call when ``seed`` is set (repeatable); None uses torch's global RNG."""
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def random_in_ball(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator | None) -> torch.Tensor:
    """A point drawn uniformly from the ``norm`` ball of radius ``eps`` around each image (not yet box-clipped).

    L2: a normal direction scaled to radius ``eps·U^(1/d)``, which is uniform in the d-dimensional ball.
    """
    if norm is Norm.LINF:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
        return x + eps * noise
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    radius = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype) ** (1 / x[0].numel())
    return x + eps * radius.view(-1, 1, 1, 1) * direction


def least_likely_class(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Target of Kurakin et al.'s least-likely-class method: argmin of the clean logits (N,)."""
    with torch.no_grad():
        return model(x).argmin(dim=1)


def bind_labels(
    loss: AttackLoss, y: torch.Tensor, target: torch.Tensor | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``logits -> loss(logits, y, target)``: the per-sample loss function a gradient estimator expects."""
    return lambda logits: loss(logits, y, target)


def loss_and_gradient(
    model: nn.Module, x: torch.Tensor, loss_of_logits: Callable[[torch.Tensor], torch.Tensor],
    estimator: GradientEstimator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(loss (N,), ∇ₓ loss, logits or None)``. The autograd path returns its logits so early stop costs no pass."""
    if estimator is not None:
        loss, grad = estimator(model, x, loss_of_logits)
        return loss, grad, None
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = loss_of_logits(logits)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad, logits.detach()


def is_fooled(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Success per sample: prediction equals the target (targeted) or differs from ``y`` (untargeted)."""
    pred = logits.argmax(dim=1)
    return pred == target if target is not None else pred != y


def confirmed_fooled(model: nn.Module, x: torch.Tensor, fooled: torch.Tensor, y: torch.Tensor,
                     target: torch.Tensor | None) -> torch.Tensor:
    """``fooled`` (N,), with the samples a reduced-precision pass called fooled re-judged by an fp32 pass.

    Under bf16 autocast the gradient pass's logits decide early stop; a sample that bf16 rounding alone tips over
    the decision boundary would be frozen at an iterate fp32 still classifies correctly, and the attack would come
    out weaker than in fp32 (measured: +1.3 points of robust accuracy on an adversarially trained ResNet-20).
    Only the candidates are re-run, so this costs one fp32 forward of the newly fooled samples.
    """
    if not fooled.any() or not torch.is_autocast_enabled(x.device.type):
        return fooled
    rows = fooled.nonzero().squeeze(1)
    with torch.autocast(x.device.type, enabled=False), torch.no_grad():
        logits = model(x[rows].float())
    confirmed = fooled.clone()
    confirmed[rows] = is_fooled(logits.float(), y[rows], None if target is None else target[rows])
    return confirmed


def check_settings(eps: float, norm: Norm, steps: int = 1, step_size: float | None = None, restarts: int = 1) -> None:
    """Raise :class:`InputError` for settings no attack of this family can run with."""
    check_eps(eps, norm)
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and not (isinstance(step_size, (int, float)) and step_size > 0):
        raise InputError(f"step_size must be a number > 0 (in [0, 1] pixel units), got {step_size!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise InputError(f"restarts must be an integer >= 1, got {restarts!r}")


def gradient_iterations(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss_target: torch.Tensor | None,
    success_target: torch.Tensor | None, eps: float, norm: Norm, step_rule: StepRule, step_size: float, steps: int,
    random_start: bool, restarts: int, loss: AttackLoss, estimator: GradientEstimator | None, early_stop: bool,
    momentum: float | None = None, generator: torch.Generator | None = None, start_in_box: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The shared loop: ``x_{k+1} = Π(x_k + step_size · direction(g_k))``, batched over ``restarts`` copies.

    Row ``r·N + i`` of the working batch is restart ``r`` of image ``i`` (one ``.repeat``); restart r draws its
    random start after restarts 0..r-1, so restart 0 is exactly the single-run attack. ``loss_target`` steers the
    loss, ``success_target`` decides success (None: misclassification; they differ for least-likely attacks).
    ``momentum`` (MI-FGSM) accumulates L1-normalized gradients ``v ← μ·v + g/‖g‖₁`` and steps along ``v``.
    Per image the result is the first adversarial copy found, else (several restarts) a fooled final copy or
    the one of highest loss, else the last iterate. Returns ``(adv (N, C, H, W), extras)``, adv not yet
    box/ball-projected by the base; without a random start the first pass runs at x, and extras then hands its
    logits to the base class (``CLEAN_LOGITS``), which saves the clean forward pass. ``start_in_box=False`` leaves
    the random start unclipped to [0, 1] (only the first gradient is taken there; every step is projected).
    """
    n = x.shape[0]
    xs, ys = x.repeat(restarts, 1, 1, 1), y.repeat(restarts)
    ts = None if loss_target is None else loss_target.repeat(restarts)
    ss = None if success_target is None else success_target.repeat(restarts)
    owner = torch.arange(n, device=x.device).repeat(restarts)
    adv = xs.clone()
    if random_start:
        starts = torch.cat([random_in_ball(x, eps, norm, generator) for _ in range(restarts)])
        adv = project(xs, starts, eps, norm) if start_in_box else starts
    velocity = torch.zeros_like(xs) if momentum is not None else None
    # One noise draw of a randomized model must not decide that an image is done (see attacks/randomized.py).
    can_stop = early_stop and estimator is None and not forward_is_random(model, x)
    done = torch.zeros(n, dtype=torch.bool, device=x.device)
    first_adv = x.clone()
    active = torch.arange(n * restarts, device=x.device)

    def pick(rows: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[rows]

    extras: dict[str, torch.Tensor] = {}
    for step in range(steps):
        x_act = adv[active]
        _, grad, logits = loss_and_gradient(model, x_act, bind_labels(loss, ys[active], pick(active, ts)), estimator)
        if step == 0 and logits is not None and not random_start:
            extras[CLEAN_LOGITS] = logits[:n]  # every row is still active and still at x
        # can_stop implies the autograd path (estimator None), which always returns its logits; an unclipped
        # start is no valid adversarial image.
        if can_stop and logits is not None and (start_in_box or step > 0):
            fooled = confirmed_fooled(model, x_act, is_fooled(logits, ys[active], pick(active, ss)), ys[active],
                                      pick(active, ss))
            if fooled.any():
                owners = owner[active[fooled]]
                first_adv[owners] = x_act[fooled]
                done[owners] = True
                keep = ~done[owner[active]]  # every copy of a fooled image stops, not only the lucky one
                active, x_act, grad = active[keep], x_act[keep], grad[keep]
                if active.numel() == 0:
                    break
        if velocity is not None and momentum is not None:  # velocity exists exactly when momentum is given
            l1 = grad.flatten(1).abs().sum(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            velocity[active] = momentum * velocity[active] + grad / l1
            grad = velocity[active]
        adv[active] = project(xs[active], x_act + step_size * step_direction(grad, step_rule), eps, norm)

    result = torch.where(done.view(-1, 1, 1, 1), first_adv, adv[:n])
    if restarts > 1 and not bool(done.all()):
        # Worst case over restarts: a fooled copy if any (the first), else the copy with the highest loss.
        rows = (~done[owner]).nonzero().squeeze(1)
        score = torch.full((n * restarts,), -math.inf, device=x.device)
        with torch.no_grad():
            logits = model(adv[rows])
        row_loss = loss(logits, ys[rows], pick(rows, ts))
        score[rows] = torch.where(is_fooled(logits, ys[rows], pick(rows, ss)), math.inf, row_loss)
        choice = score.view(restarts, n).argmax(dim=0)
        best = adv.view(restarts, n, *x.shape[1:])[choice, torch.arange(n, device=x.device)]
        result = torch.where(done.view(-1, 1, 1, 1), first_adv, best)
    return result, extras


@register_attack("pgd", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class PGD(Attack):
    """Projected gradient descent on the loss (Madry et al. 2018, arXiv:1706.06083), L∞ threat model.

    Args:
        eps: L∞ radius in [0, 1] pixel units (default 8/255; Madry's MNIST setting is 0.3).
        step_size: α per step in the same units; default ``2.5 · eps / steps`` (Madry et al.).
        step_fraction: α as a fraction of ε instead (``0.25`` is α = ε/4); it follows ε in :meth:`at` and in
            curves, where a fixed ``step_size`` would not. Give at most one of the two.
        steps: gradient steps (default 10). random_start: start uniformly in the ε-ball (default True).
        start_in_box: clip the random start to [0, 1] (default True). False takes the first gradient at the
            unclipped start, outside the image box where x is near 0 or 1, as Wong et al.'s MNIST code does
            (locuslab/fast_adversarial issue 21); on ``mnist_cnn`` at ε = 0.3 it kept FGSM-RS training from
            overfitting catastrophically (see ``FastFGSMTraining``). Every step is still projected onto the ball
            and the box, so the adversarial images are valid either way.
        restarts: independent random starts, batched with ``.repeat``; an image counts as robust only if it
            survives every restart (the worst case per image is returned).
        loss: "ce", "margin" (alias "cw", C&W's f6) or "dlr" (Croce & Hein); targeted variants when ``target``.
        gradient / eot_samples: gradient estimator (None: autograd); ``eot_samples > 1`` is EOT-PGD.
        early_stop: stop a sample at its first success (evaluation); False runs all steps (training).
        least_likely: untargeted, stepping toward the least-likely clean class (Kurakin's iterative l.l. method).
        seed: seeds the random start for repeatable results (None: torch's global RNG).

    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> ``AttackResult.adv`` (N, C, H, W).

    Example::

        result = PGD(eps=0.3, step_size=0.01, steps=40)(model, x, y)
        print(result.robust_accuracy)
    """

    norm: ClassVar[Norm] = Norm.LINF
    step_rule: ClassVar[StepRule] = StepRule.SIGN

    eps: float = 8 / 255
    step_size: float | None = None
    step_fraction: float | None = None
    steps: int = 10
    random_start: bool = True
    start_in_box: bool = True
    restarts: int = 1
    loss: str = "ce"
    gradient: GradientEstimator | None = None
    eot_samples: int = 1
    early_stop: bool = True
    least_likely: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        check_settings(self.eps, self.norm, self.steps, self.step_size, self.restarts)
        if self.step_fraction is not None:
            if self.step_size is not None:
                raise InputError("give step_size (absolute) or step_fraction (of eps), not both")
            if not (isinstance(self.step_fraction, (int, float)) and self.step_fraction > 0):
                raise InputError(f"step_fraction must be a number > 0, got {self.step_fraction!r}")
        make_loss(self.loss, targeted=False)
        resolve_gradient(self.gradient, self.eot_samples)

    @property
    def alpha(self) -> float:
        """The step size actually used: ``step_size``, ``step_fraction · eps``, or Madry's ``2.5 · eps / steps``."""
        if self.step_size is not None:
            return float(self.step_size)
        if self.step_fraction is not None:
            return float(self.step_fraction) * self.eps
        return 2.5 * self.eps / self.steps

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_target, success_target = least_likely_targets(self, model, x, target)
        return gradient_iterations(
            model, x, y, loss_target=loss_target, success_target=success_target, eps=self.eps, norm=self.norm,
            step_rule=self.step_rule, step_size=self.alpha, steps=self.steps, random_start=self.random_start,
            restarts=self.restarts, loss=make_loss(self.loss, loss_target is not None),
            estimator=resolve_gradient(self.gradient, self.eot_samples), early_stop=self.early_stop,
            generator=make_generator(self.seed, x.device), start_in_box=self.start_in_box,
        )


def least_likely_targets(
    attack: Attack, model: nn.Module, x: torch.Tensor, target: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(loss_target, success_target)``: the given target twice, or the least-likely class with untargeted success."""
    if not getattr(attack, "least_likely", False):
        return target, target
    if target is not None:
        raise InputError("least_likely=True picks its own target; drop target=... or set least_likely=False")
    return least_likely_class(model, x), None


@register_attack("pgd_l2", family="gradient", norm="l2")
@dataclass(frozen=True, kw_only=True)
class PGDL2(PGD):
    """PGD in the L2 threat model: steps along ``g/‖g‖₂``, projection onto the L2 ball (Madry et al. 2018).

    ``eps`` is an L2 radius in [0, 1] pixel units (default 0.5, the CIFAR-10 convention; 2.0 is common on MNIST).
    Random starts are uniform in the L2 ball. Other arguments as :class:`PGD`.

    Example::

        result = PGDL2(eps=2.0, steps=40)(model, x, y)
    """

    norm: ClassVar[Norm] = Norm.L2
    step_rule: ClassVar[StepRule] = StepRule.L2
    eps: float = 0.5


@register_attack("bim", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class BIM(PGD):
    """Basic Iterative Method (Kurakin et al. 2016, arXiv:1607.02533): PGD without a random start.

    With ``least_likely=True`` it is Kurakin's iterative least-likely-class method. Arguments as :class:`PGD`.

    Example::

        result = BIM(eps=0.1, steps=20, step_size=0.01)(model, x, y)
    """

    random_start: bool = False
