"""Adversarial examples of the headline attack at every ε: images, predictions and confidences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advlab.evaluate.analyses.base import Analysis, AnalysisContext, register_analysis
from advlab.evaluate.describe import describe_attack
from advlab.evaluate.payloads import adversarial_examples_payload
from advlab.evaluate.randomness import seeded


@register_analysis("examples", summary="the same points attacked at every ε, with predictions")
@dataclass(frozen=True)
class AdversarialExamples(Analysis):
    count: int = 8

    def config(self, ctx: AnalysisContext) -> dict[str, Any]:
        return super().config(ctx) | {"attack": describe_attack(ctx.headline(ctx.eps_max)), "epsilons": ctx.epsilons}

    def compute(self, ctx: AnalysisContext) -> dict[str, dict[str, Any]]:
        payload: dict[str, Any] | None = None
        for index, eps in enumerate(ctx.epsilons):  # each ε with its own ε-relative settings
            with seeded(ctx.settings.seed, "examples", index, device=ctx.device):
                part = adversarial_examples_payload(ctx.model, ctx.x, ctx.y, ctx.headline(eps), [eps],
                                                    count=self.count, classes=ctx.classes)
            if payload is None:
                payload = part
            else:
                payload["rows"] += part["rows"]
        assert payload is not None
        return {"adversarial_examples": payload}
