"""Substitute-model attack: train a local copy from the target's labels alone, then transfer from it.

Paper: N. Papernot, P. McDaniel, I. Goodfellow, S. Jha, Z. B. Celik, A. Swami, "Practical Black-Box Attacks
against Machine Learning", 2017, arXiv:1602.02697 (Algorithm 1, Jacobian-based dataset augmentation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.cw import adam_update
from advlab.attacks.fgsm import FGSM
from advlab.attacks.registry import register_attack
from advlab.errors import InputError

SubstituteFactory = Callable[[tuple[int, ...], int], nn.Module]


def substitute_mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 200) -> nn.Module:
    """Two hidden ReLU layers of ``hidden`` units: the paper's small substitute family, fast to train on CPU."""
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def oracle_labels(model: nn.Module, x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """The target's labels only (argmax), one query per image: all the substitute attack learns from."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk]).argmax(1) for i in range(0, x.shape[0], chunk)])


def jacobian_augmentation(
    substitute: nn.Module, images: torch.Tensor, labels: torch.Tensor, lam: float
) -> torch.Tensor:
    """New points ``x + λ·sign(∂z_{Õ(x)}/∂x)`` (paper eq. 4): step along the substitute's Jacobian row of the
    oracle's label, toward where the substitute is most sensitive, clipped to [0, 1]."""
    images = images.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(substitute(images).gather(1, labels[:, None]).sum(), images)
    return (images.detach() + lam * grad.sign()).clamp(0, 1)


def fit_substitute(
    substitute: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, lr: float,
    batch_size: int, generator: torch.Generator,
) -> None:
    """Cross-entropy training with Adam (the paper's exact optimizer settings matter little at this scale)."""
    params = [p for p in substitute.parameters() if p.requires_grad]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    substitute.train()
    step = 0
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(images.shape[0], generator=generator).to(images.device)
            for start in range(0, images.shape[0], batch_size):
                batch = order[start:start + batch_size]
                loss = F.cross_entropy(substitute(images[batch]), labels[batch])
                grads = torch.autograd.grad(loss, params)
                step += 1
                with torch.no_grad():
                    for i, (param, grad) in enumerate(zip(params, grads)):
                        new, m1, m2 = adam_update(param, grad, *moments[i], step, lr)
                        param.copy_(new)
                        moments[i] = (m1, m2)
    substitute.eval()


@register_attack("substitute", family="black-box", norm="any")
@dataclass(frozen=True, kw_only=True)
class SubstituteAttack(Attack):
    """Papernot et al.'s black-box attack: label-only queries train a substitute, then ``attack`` transfers from it.

    Threat model: black-box with labels only (no scores); the perturbation budget is the inner attack's.

    Args:
        attack: the white-box attack run on the substitute (default FGSM ε = 0.3, the paper's MNIST setting).
        architecture: ``factory(input_shape, num_classes) -> nn.Module`` for the substitute (default
            :func:`substitute_mlp`); it takes [0, 1] images and returns logits.
        substitute_epochs: ρ, rounds of training + augmentation (paper: 6); the set doubles every round.
        lam: λ, the augmentation step in [0, 1] pixel units (paper: 0.1).
        train_epochs: training epochs per round (paper: 10); lr: Adam step size; batch_size: training batch.
        seed_images: the initial substitute training set (paper: 150 held-out test images); None uses the
            attacked images themselves.
        seed: seeds the substitute's initialization and the batch order.

    Queries: ``result.queries`` counts the label queries, |S_0|·2^(ρ-1), plus one query that reads the number of
    classes (the final evaluation is not counted). The λ sign alternation and reservoir sampling of the
    follow-up work are not implemented.

    Shapes: x (N, C, H, W) in [0, 1]. ``extras["substitute_success"]`` (N,): success on the trained substitute.

    Example::

        result = SubstituteAttack(attack=FGSM(eps=0.3), substitute_epochs=4)(black_box_model, x, y)
        print(result.robust_accuracy, result.queries)
    """

    norm: ClassVar[Norm] = Norm.L0  # no ε projection here: the inner attack already enforced its own ball

    attack: Attack = field(default_factory=lambda: FGSM(eps=0.3))
    architecture: SubstituteFactory = substitute_mlp
    substitute_epochs: int = 6
    lam: float = 0.1
    train_epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    seed_images: torch.Tensor | None = field(default=None, compare=False)
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.attack, Attack):
            raise InputError("SubstituteAttack needs attack=<an advlab Attack instance>, e.g. FGSM(eps=0.3)")
        if min(self.substitute_epochs, self.train_epochs, self.batch_size) < 1 or self.lam <= 0 or self.lr <= 0:
            raise InputError("SubstituteAttack needs substitute_epochs, train_epochs, batch_size >= 1, lam, lr > 0")

    @property
    def budget(self) -> float | None:
        return None

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = x if self.seed_images is None else self.seed_images.to(x)
        if images.dim() != 4 or images.shape[1:] != x.shape[1:]:
            raise InputError(f"seed_images must have shape (M, {', '.join(map(str, x.shape[1:]))}), "
                             f"got {tuple(images.shape)}")
        labels = oracle_labels(model, images)
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            substitute = self.architecture(tuple(x.shape[1:]), num_classes).to(x.device)
        generator = torch.Generator().manual_seed(self.seed)
        for round_ in range(self.substitute_epochs):
            fit_substitute(substitute, images, labels, epochs=self.train_epochs, lr=self.lr,
                           batch_size=self.batch_size, generator=generator)
            if round_ < self.substitute_epochs - 1:
                new_images = jacobian_augmentation(substitute, images, labels, self.lam)
                images = torch.cat([images, new_images])
                labels = torch.cat([labels, oracle_labels(model, new_images)])
        crafted = self.attack(substitute, x, y, target=target)
        return crafted.adv, {"substitute_success": crafted.success}
