"""Transfer attack: craft adversarial examples on a source (surrogate) model, evaluate them on the target.

Papers: C. Szegedy et al., "Intriguing properties of neural networks", 2014, arXiv:1312.6199 (cross-model
generalization); N. Papernot, P. McDaniel, I. Goodfellow, "Transferability in Machine Learning", 2016,
arXiv:1605.07277.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.registry import register_attack
from advlab.errors import InputError


@register_attack("transfer", family="transfer", norm="any")
@dataclass(frozen=True, kw_only=True)
class TransferAttack(Attack):
    """Run ``attack`` on ``source`` and hand its adversarial images to the target model given at call time.

    Threat model: no access to the target at all while crafting (0 queries; ``result.queries`` is 0, the base
    class's final evaluation is not counted). The budget and norm are the inner attack's, which already
    projected its result; this wrapper only clips to [0, 1].

    Args:
        source: the surrogate model the inner attack sees (white-box).
        attack: any :class:`Attack` (PGD, C&W, ...); targeted if it supports it and a target is passed.

    Shapes: x (N, C, H, W) in [0, 1]. ``extras["source_success"]`` (N,): success on the source model.

    Example::

        result = TransferAttack(source=surrogate, attack=PGD(eps=0.3, steps=40))(target_model, x, y)
        print(result.robust_accuracy)
    """

    norm: ClassVar[Norm] = Norm.L0  # no ε projection here: the inner attack already enforced its own ball

    source: nn.Module = field(compare=False)
    attack: Attack

    def __post_init__(self) -> None:
        if not isinstance(self.source, nn.Module) or not isinstance(self.attack, Attack):
            raise InputError("TransferAttack needs source=<torch model> and attack=<an advlab Attack instance>")

    @property
    def budget(self) -> float | None:
        return None

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # The labels y come from the caller (or the target's clean predictions): the source never relabels them.
        crafted = self.attack(self.source, x, y, target=target)
        return crafted.adv, {"source_success": crafted.success}
