"""MI-FGSM: iterative FGSM with a momentum term, for stronger and more transferable examples.

Paper: Dong, Liao, Pang, Su, Zhu, Hu, Li, "Boosting Adversarial Attacks with Momentum" (CVPR 2018,
arXiv:1710.06081), Algorithm 1: ``g_{t+1} = μ · g_t + ∇ₓJ(x*_t) / ‖∇ₓJ(x*_t)‖₁``,
``x*_{t+1} = Π(x*_t + α · sign(g_{t+1}))`` with α = ε / T. It is :func:`~advlab.attacks.pgd.gradient_iterations`
with ``momentum=μ`` and no random start; early stop, EOT and targeted mode come with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.gradients import GradientEstimator
from advlab.attacks.pgd import StepRule, check_settings, gradient_iterations, make_loss, resolve_gradient
from advlab.attacks.registry import register_attack
from advlab.errors import InputError


@register_attack("mifgsm", family="gradient", norm="linf")
@dataclass(frozen=True, kw_only=True)
class MIFGSM(Attack):
    """Momentum Iterative FGSM (Dong et al. 2018, arXiv:1710.06081), L∞ threat model.

    Args:
        eps: L∞ radius in [0, 1] pixel units (default 8/255; the paper uses 16/255 on ImageNet).
        steps: T, number of iterations (default 10). step_size: α, default ε / T (the paper's choice).
        decay: μ, the momentum decay factor (default 1.0, the paper's best).
        loss: "ce" (default), "margin"/"cw" or "dlr"; targeted variants when ``target=...`` is given.
        gradient / eot_samples: gradient estimator (None: autograd); ``eot_samples > 1`` averages n passes.
        early_stop: stop a sample at its first success (default True); False runs all T steps.

    Shapes: x (N, C, H, W) in [0, 1], y (N,) -> ``AttackResult.adv`` (N, C, H, W).

    Example::

        result = MIFGSM(eps=16 / 255, steps=10)(source_model, x, y)
        transfer_acc = (target_model(result.adv).argmax(1) == y).float().mean()
    """

    norm: ClassVar[Norm] = Norm.LINF

    eps: float = 8 / 255
    steps: int = 10
    step_size: float | None = None
    decay: float = 1.0
    loss: str = "ce"
    gradient: GradientEstimator | None = None
    eot_samples: int = 1
    early_stop: bool = True

    def __post_init__(self) -> None:
        check_settings(self.eps, self.norm, self.steps, self.step_size)
        if not (isinstance(self.decay, (int, float)) and self.decay >= 0):
            raise InputError(f"decay (momentum μ) must be a number >= 0, got {self.decay!r}")
        make_loss(self.loss, targeted=False)
        resolve_gradient(self.gradient, self.eot_samples)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        alpha = self.eps / self.steps if self.step_size is None else float(self.step_size)
        return gradient_iterations(
            model, x, y, loss_target=target, success_target=target, eps=self.eps, norm=self.norm,
            step_rule=StepRule.SIGN, step_size=alpha, steps=self.steps, random_start=False, restarts=1,
            loss=make_loss(self.loss, target is not None), estimator=resolve_gradient(self.gradient, self.eot_samples),
            early_stop=self.early_stop, momentum=float(self.decay),
        )
