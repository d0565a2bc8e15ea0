"""One-step gradient attacks: FGSM (L∞), its least-likely-class variant, FGM (L2) and a non-sign gradient step.

Each is one step of :func:`advlab.attacks.pgd.gradient_iterations` with no random start (Foolbox 3's design), so
the loop, the losses, the gradient seam (EOT, finite differences) and the targeted mode are shared with PGD.

Papers:
    * FGSM: Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples" (2015, arXiv:1412.6572):
      ``x' = x + ε · sign(∇ₓ CE(x, y))``.
    * Targeted FGSM as Wang, Kunin, Pyron write it ("Exploring Adversarial Input Spaces for Convolutional Neural
      Network Defense", §1.1): ``x' = x + ε · sign(∇ₓ F_t(x))`` with ``F_t`` the **score** (logit) of the target
      class t: ``loss="score"`` with ``target=...``. The default ``loss="ce"`` with a target ascends the target's
      log-probability ``log softmax_t`` instead (the usual targeted FGSM); the two signs agree on most pixels but
      not all, because ``∇ log softmax_t = ∇F_t − Σ_k softmax_k ∇F_k``.
    * Non-sign gradient step (the same paper, §2.2: "Instead of perturbing images by the sign of the gradient, we
      update by the gradient"): :class:`GradientStep`.
    * Least-likely class (Kurakin, Goodfellow, Bengio 2016, arXiv:1607.02533): the target is the argmin of the
      clean logits; success is still judged as misclassification (``fgsm_ll`` / ``least_likely=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.gradients import GradientEstimator
from advlab.attacks.pgd import (
    StepRule,
    check_settings,
    gradient_iterations,
    least_likely_targets,
    make_loss,
    resolve_gradient,
)
from advlab.attacks.registry import register_attack


@register_attack("fgsm", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class FGSM(Attack):
    """Fast Gradient Sign Method: one step of size ε along the sign of the loss gradient (L∞).

    Args:
        eps: L∞ radius in [0, 1] pixel units (default 8/255; 0.1-0.3 on MNIST).
        loss: "ce" (default), "margin"/"cw", "dlr" or "score" (the class logit: untargeted descends ``F_y``,
            targeted ascends ``F_t``, Wang et al.'s formula); with ``target=...`` the targeted variant.
        least_likely: step toward the least-likely clean class (Kurakin et al.); success = misclassification.
        gradient / eot_samples: gradient estimator (None: autograd); ``eot_samples > 1`` averages n passes.

    Shapes: x (N, C, H, W) in [0, 1], y (N,) or target (N,) -> ``AttackResult.adv`` (N, C, H, W).

    Example::

        result = FGSM(eps=0.1)(model, x, y)
        targeted = FGSM(eps=0.1)(model, x, target=torch.full_like(y, 3))
        wang = FGSM(eps=0.3, loss="score")(model, x, target=torch.full_like(y, 3))  # sign of ∇F_t
    """

    norm: ClassVar[Norm] = Norm.LINF
    step_rule: ClassVar[StepRule] = StepRule.SIGN

    eps: float = 8 / 255
    loss: str = "ce"
    least_likely: bool = False
    gradient: GradientEstimator | None = None
    eot_samples: int = 1

    def __post_init__(self) -> None:
        check_settings(self.eps, self.norm)
        make_loss(self.loss, targeted=False)
        resolve_gradient(self.gradient, self.eot_samples)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_target, success_target = least_likely_targets(self, model, x, target)
        return gradient_iterations(
            model, x, y, loss_target=loss_target, success_target=success_target, eps=self.eps, norm=self.norm,
            step_rule=self.step_rule, step_size=self.eps, steps=1, random_start=False, restarts=1,
            loss=make_loss(self.loss, loss_target is not None),
            estimator=resolve_gradient(self.gradient, self.eot_samples), early_stop=False,
        )


@register_attack("fgsm_ll", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class FGSMLeastLikely(FGSM):
    """FGSM toward the least-likely clean class (Kurakin et al. 2016, arXiv:1607.02533, "step l.l.").

    ``x' = x − ε · sign(∇ₓ CE(x, argmin z(x)))``; untargeted threat model (success = misclassification).

    Example::

        result = FGSMLeastLikely(eps=0.1)(model, x, y)
    """

    least_likely: bool = True


@register_attack("fgm", family="gradient", norm="l2")
@dataclass(frozen=True, kw_only=True)
class FGM(FGSM):
    """Fast Gradient Method in L2: ``x' = x + ε · g / ‖g‖₂`` (Goodfellow et al. 2015's L2 variant).

    ``eps`` is an L2 radius in [0, 1] pixel units (default 0.5). Other arguments as :class:`FGSM`.

    Example::

        result = FGM(eps=2.0)(model, x, y)
    """

    norm: ClassVar[Norm] = Norm.L2
    step_rule: ClassVar[StepRule] = StepRule.L2
    eps: float = 0.5


@register_attack("gradient_step", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class GradientStep(FGSM):
    """Non-sign gradient step: keeps the gradient's shape (Wang, Kunin, Pyron, §2.2: "Instead of perturbing images
    by the sign of the gradient, we update by the gradient").

    The paper steps along the raw gradient and states neither its scale nor a step count. Raw gradients have no
    fixed size, so this implementation (not in the paper: our choice) rescales every step per image to an L∞ size:
    ``x_{k+1} = Π(x_k + α · g_k / max|g_k|)``, Π the projection onto the ε-ball and the [0, 1] box. With the
    default ``steps=1`` this is one step of L∞ size exactly ε (before clipping), comparable with FGSM at the same ε
    while most pixels move much less than ε. ``steps > 1`` iterates with step ``α = step_size`` (default ε/steps)
    and stops an image at its first success (the target reached, or misclassification when untargeted).
    Use ``loss="score"`` for the paper's gradient of the class score ``F_t``; the default "ce" follows
    ``log softmax_t``. Other arguments as :class:`FGSM`.

    Example::

        result = GradientStep(eps=1.0, loss="score")(model, x, target=t)
        iterated = GradientStep(eps=1.0, steps=40, step_size=0.05, loss="score")(model, x, target=t)
    """

    step_rule: ClassVar[StepRule] = StepRule.SCALED

    steps: int = 1
    step_size: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_settings(self.eps, self.norm, self.steps, self.step_size)

    @property
    def alpha(self) -> float:
        """The L∞ size of one step: ``step_size``, or ε/steps (one step of size ε by default)."""
        return self.eps / self.steps if self.step_size is None else float(self.step_size)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss_target, success_target = least_likely_targets(self, model, x, target)
        estimator = resolve_gradient(self.gradient, self.eot_samples)
        return gradient_iterations(
            model, x, y, loss_target=loss_target, success_target=success_target, eps=self.eps, norm=self.norm,
            step_rule=self.step_rule, step_size=self.alpha, steps=self.steps, random_start=False, restarts=1,
            loss=make_loss(self.loss, loss_target is not None), estimator=estimator,
            # One step keeps FGSM's behaviour (no early stop); iterations stop each image at its first success.
            early_stop=self.steps > 1,
        )
