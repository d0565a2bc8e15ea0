"""Perturbation statistics of the headline attack (Wang, Kunin & Pyron, "Exploring adversarial input spaces").

Norms of the successful perturbations (L0, L1, L2, L∞, with histograms), clean vs adversarial pixel-value
histograms, and the mean perturbation ``adv - x`` per source class, from one run of the headline attack at the
largest ε on the analysis subset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advlab.evaluate.analyses.base import Analysis, AnalysisContext, register_analysis
from advlab.evaluate.payloads import average_perturbation_payload, perturbation_payload
from advlab.evaluate.randomness import seeded
from advlab.evaluate.runner import run_attack
from advlab.evaluate.statistics import average_perturbation_images, pixel_histograms


@register_analysis("statistics", summary="perturbation norms, pixel histograms, mean perturbation per class")
@dataclass(frozen=True)
class PerturbationStatistics(Analysis):
    def config(self, ctx: AnalysisContext) -> dict[str, Any]:
        from advlab.evaluate.describe import describe_attack

        return super().config(ctx) | {"attack": describe_attack(ctx.headline(ctx.eps_max))}

    def compute(self, ctx: AnalysisContext) -> dict[str, dict[str, Any]]:
        settings = ctx.settings
        with seeded(settings.seed, "statistics", device=ctx.device):
            run = run_attack(ctx.model, (ctx.x, ctx.y), ctx.headline(ctx.eps_max), batch_size=settings.batch_size,
                             device=ctx.device, keep_adversarial=True, progress=settings.progress)
        assert run.adv is not None
        adv, fooled = run.adv.to(ctx.device), (run.correct & ~run.robust)
        out: dict[str, dict[str, Any]] = {
            "pixel_histograms": pixel_histograms(ctx.x, adv).to_dict() | {"kind": "pixel_histograms"},
            "average_perturbation_images": average_perturbation_payload(
                *average_perturbation_images(ctx.x, adv, ctx.y, len(ctx.classes)), classes=ctx.classes),
        }
        if fooled.any():
            out["perturbation_statistics"] = perturbation_payload(ctx.x, adv, fooled)
        return out
