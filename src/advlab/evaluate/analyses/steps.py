"""Robust accuracy vs the number of PGD steps at the largest ε: a curve still falling means PGD had not converged."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from advlab.attacks.base import Attack
from advlab.evaluate.analyses.base import Analysis, AnalysisContext, register_analysis
from advlab.evaluate.analyses.grid import pgd_at
from advlab.evaluate.describe import describe_attack
from advlab.evaluate.sweeps import accuracy_vs_steps


@register_analysis("steps", summary="robust accuracy vs PGD steps (step ε/4) at the largest ε")
@dataclass(frozen=True)
class AccuracyVsSteps(Analysis):
    steps: tuple[int, ...] = (1, 2, 5, 10, 20, 50)

    def attack(self, ctx: AnalysisContext) -> Attack:
        return ctx.honest(pgd_at(ctx.eps_max, ctx.norm, steps=1))

    def config(self, ctx: AnalysisContext) -> dict[str, Any]:
        return super().config(ctx) | {"attack": describe_attack(self.attack(ctx))}

    def compute(self, ctx: AnalysisContext) -> dict[str, dict[str, Any]]:
        sweep = accuracy_vs_steps(
            ctx.model, (ctx.x, ctx.y), self.attack(ctx), list(self.steps),
            state_path=ctx.state_dir / "steps-sweep.json",
            **{field.name: getattr(ctx.settings, field.name) for field in fields(ctx.settings)})
        return {"accuracy_vs_steps": sweep.to_dict() | {"kind": "steps_sweep"}}
