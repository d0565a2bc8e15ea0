"""Input-gradient norms on correctly and incorrectly classified points (a defense that zeroes them masks gradients)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advlab.evaluate.analyses.base import Analysis, AnalysisContext, register_analysis
from advlab.evaluate.gradient_norms import input_gradient_norms
from advlab.evaluate.payloads import gradient_norms_payload


@register_analysis("gradients", summary="input-gradient norms, correct vs misclassified points")
@dataclass(frozen=True)
class GradientNorms(Analysis):
    def compute(self, ctx: AnalysisContext) -> dict[str, dict[str, Any]]:
        settings = ctx.settings
        return {"gradient_norms": gradient_norms_payload(input_gradient_norms(
            ctx.model, (ctx.x, ctx.y), batch_size=settings.batch_size, device=ctx.device, progress=settings.progress))}
