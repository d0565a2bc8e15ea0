"""Section ``average_adversarial_grid``: mean adversarial image per (source, target) pair and the success heatmap.

Payload (``evaluate.payloads.grid_payload``): ``success_rate`` (K, K), optional ``counts`` (K, K), ``images``
(K, K, C, H, W) as an encoded array or nested lists, ``classes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advlab.evaluate.payloads import decode_array
from advlab.report import plots
from advlab.report.sections.registry import Items, register_section
from advlab.report.sections.validate import square
from advlab.report.views import FigureView, Section, figure_row, section_or_none

if TYPE_CHECKING:
    from advlab.report.entries import ModelEntry


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    success = square(payload["success_rate"])
    size = len(success)
    images = payload.get("images")
    if images is not None:
        images = decode_array(images)
        if images.ndim != 5 or images.shape[:2] != (size, size):
            raise ValueError("images must be (K, K, C, H, W) with K matching success_rate")
    return {"success_rate": success, "counts": square(payload.get("counts", success), size), "images": images,
            "classes": list(payload.get("classes") or [str(i) for i in range(size)])}


@register_section("average_adversarial_grid", order=40, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    figures = []
    for entry, analysis in items:
        data = analysis.data
        if data["images"] is not None:
            figures.append(FigureView(
                f"grid-{entry.index}", f"Average adversarial images ({entry.label})",
                plots.image_grid(data["images"], data["classes"]),
                "Mean adversarial image per (source, target) pair; the framed diagonal holds the clean class means."))
        figures.append(FigureView(
            f"grid-success-{entry.index}", f"Targeted success rate ({entry.label})",
            plots.success_heatmap(data["success_rate"], data["classes"], data["classes"], title=entry.label,
                                  x_label="target class", y_label="source class"),
            "Share of each cell's points classified as the target class (diagonal: clean accuracy)."))
    return section_or_none("average-adversarial-grid", "Average adversarial images",
                           "Row = source class, column = target class of a targeted attack, diagonal = clean averages.",
                           figure_row(figures))
