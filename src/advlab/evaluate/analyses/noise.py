"""Accuracy under Gaussian noise ``clip(x + σ·N(0, I), 0, 1)``: the random-perturbation baseline (Hao et al.)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advlab.evaluate.analyses.base import Analysis, AnalysisContext, register_analysis
from advlab.evaluate.sweeps import accuracy_vs_noise


@register_analysis("noise", summary="accuracy vs Gaussian noise std")
@dataclass(frozen=True)
class AccuracyVsNoise(Analysis):
    """``stds`` in [0, 1] pixel units; ``draws`` independent noise draws per std (mean ± std)."""

    stds: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
    draws: int = 3

    def compute(self, ctx: AnalysisContext) -> dict[str, dict[str, Any]]:
        settings = ctx.settings
        curve = accuracy_vs_noise(ctx.model, (ctx.x, ctx.y), list(self.stds), draws=self.draws,
                                  batch_size=settings.batch_size, device=ctx.device, seed=settings.seed,
                                  progress=settings.progress)
        return {"accuracy_vs_noise": curve.to_dict() | {"kind": "noise"}}
