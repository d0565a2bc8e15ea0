"""Target-class rules for targeted attacks from the CLI: ``random``, ``least-likely``, ``next`` or a class index."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from advlab.errors import InputError

TargetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def target_rule(rule: str, model: nn.Module, num_classes: int, seed: int = 0) -> TargetFn:
    """A function ``(x, y) -> target (N,)`` implementing ``rule``; targets never equal the true label.

    * ``random``: uniform over the other classes (seeded, so reruns pick the same targets);
    * ``least-likely``: the class with the lowest clean logit (Kurakin et al. 2016);
    * ``next``: ``(y + 1) mod num_classes``;
    * an integer ``k``: class k for every image (images of class k keep ``next`` instead).
    """
    generator = torch.Generator().manual_seed(seed)

    def random_other(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
        return (y + shift) % num_classes

    def least_likely(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x).argmin(dim=1)

    def next_class(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (y + 1) % num_classes

    rules: dict[str, TargetFn] = {"random": random_other, "least-likely": least_likely, "next": next_class}
    if rule in rules:
        return rules[rule]
    if rule.isdigit() and int(rule) < num_classes:
        fixed = int(rule)
        return lambda x, y: torch.where(y == fixed, (y + 1) % num_classes, torch.full_like(y, fixed))
    raise InputError(f"--targeted takes random, least-likely, next or a class index 0..{num_classes - 1}; got {rule!r}")
