"""Section ``average_perturbation_images``: what the attack adds, averaged per source class (a figure per model).

Payload (``evaluate.payloads.average_perturbation_payload``): ``images`` (K, C, H, W) of mean ``adv - x``,
``counts`` (K,), ``classes``. Older cards may hold the ``(images, counts)`` pair stored as is (a 2-list).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advlab.evaluate.payloads import decode_array
from advlab.report import plots
from advlab.report.sections.registry import Items, register_section
from advlab.report.views import FigureView, Section, figure_row, section_or_none

if TYPE_CHECKING:
    from advlab.report.entries import ModelEntry


def normalise(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict):
        images, counts = payload["images"], payload.get("counts")
    else:  # the (images, counts) tuple of average_perturbation_images stored as is
        images, counts = payload
    classes = list(payload.get("classes") or []) if isinstance(payload, dict) else []
    images = decode_array(images)
    if images.ndim != 4 or (counts is not None and len(counts) != images.shape[0]):
        raise ValueError("images must be (K, C, H, W) with one count per class")
    return {"images": images, "counts": counts, "classes": classes or [str(i) for i in range(len(images))]}


@register_section("average_perturbation_images", order=50, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    figures = [FigureView(f"average-perturbation-{e.index}", f"Average perturbation ({e.label})",
                          plots.perturbation_images(a.data["images"], a.data["classes"], a.data["counts"],
                                                    title=e.label), "Mean adv − x per source class.", wide=True)
               for e, a in items]
    return section_or_none("average-perturbations", "Average perturbations",
                           "What the attack adds, averaged per class.", figure_row(figures))
