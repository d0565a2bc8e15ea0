"""Section ``pixel_histograms``: where the attack moves pixel values (one figure, a panel per model).

Payload (``PixelHistogram.to_dict()``): ``edges``, ``clean`` and ``adversarial`` shares per bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advlab.report import plots
from advlab.report.sections.registry import Items, register_section
from advlab.report.views import FigureView, Section, figure_row, section_or_none

if TYPE_CHECKING:
    from advlab.report.entries import ModelEntry


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    edges, clean, adversarial = payload["edges"], payload["clean"], payload["adversarial"]
    if not (len(edges) == len(clean) + 1 == len(adversarial) + 1):
        raise ValueError("edges must be one longer than clean and adversarial")
    return {"edges": edges, "clean": clean, "adversarial": adversarial}


@register_section("pixel_histograms", order=30, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    figures = [FigureView("pixel-histograms-figure", "Pixel histograms",
                          plots.pixel_histograms([(e.label, a.data) for e, a in items]),
                          "Share of pixels per value bin (log scale).", wide=len(items) > 1)] if items else []
    return section_or_none("pixel-histograms", "Pixel values: clean vs adversarial",
                           "Where the attack moves pixel values.", figure_row(figures))
