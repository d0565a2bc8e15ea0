"""The targeted average-adversarial grid (Wang, Kunin & Pyron, "Exploring adversarial input spaces", Fig. 3).

For every (source, target) pair of classes: the mean targeted adversarial image of ``grid_per_class`` points per
source class and the share that reached the target, with PGD (``steps`` steps of ε/4) at the largest ε.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from advlab.attacks.base import Attack, Norm
from advlab.data.dataset import ImageDataset
from advlab.evaluate.analyses.base import Analysis, AnalysisContext, register_analysis
from advlab.evaluate.describe import describe_attack
from advlab.evaluate.payloads import grid_payload
from advlab.evaluate.statistics import average_adversarial_grid


def pgd_at(eps: float, norm: Norm, *, steps: int) -> Attack:
    """The registry's PGD for ``norm`` at radius ``eps`` with a step of ε/4."""
    import advlab.attacks  # noqa: F401 - registers every attack
    from advlab.attacks.registry import create_attack

    return create_attack("pgd" if norm is Norm.LINF else "pgd_l2", eps=eps, steps=steps, step_fraction=0.25)


def per_class_subset(dataset: ImageDataset, per_class: int, seed: int) -> ImageDataset:
    """``per_class`` points of each class, drawn with a fixed seed (fewer where a class has fewer)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    labels = dataset.labels[order]
    chosen = torch.cat([order[labels == label][:per_class] for label in range(dataset.num_classes)])
    return dataset.select(chosen.sort().values, f"{dataset.name}[{per_class}/class]")


@register_analysis("grid", summary="targeted average adversarial images per (source, target) class pair")
@dataclass(frozen=True)
class AverageAdversarialGrid(Analysis):
    steps: int = 20

    def attack(self, ctx: AnalysisContext) -> Attack:
        return ctx.honest(pgd_at(ctx.eps_max, ctx.norm, steps=self.steps))

    def config(self, ctx: AnalysisContext) -> dict[str, Any]:
        return {"attack": describe_attack(self.attack(ctx)), "per_class": ctx.grid_per_class}

    def compute(self, ctx: AnalysisContext) -> dict[str, dict[str, Any]]:
        settings = ctx.settings
        result = average_adversarial_grid(
            ctx.model, per_class_subset(ctx.dataset, ctx.grid_per_class, settings.seed), self.attack(ctx),
            num_classes=len(ctx.classes), batch_size=settings.batch_size, device=ctx.device, seed=settings.seed,
            progress=settings.progress)
        return {"average_adversarial_grid": grid_payload(result, classes=ctx.classes)}
