"""Section ``adversarial_examples``: the same points at growing ε, with predicted label and confidence.

Payload (``evaluate.payloads.adversarial_examples_payload``): ``clean`` {images, pred, confidence}, ``labels``,
``rows`` [{eps, images, pred, confidence}], ``classes``; images (N, C, H, W) encoded or as nested lists.
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


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    clean = dict(payload["clean"], images=decode_array(payload["clean"]["images"]))
    size = len(clean["images"])
    rows = [dict(row, images=decode_array(row["images"])) for row in payload["rows"]]
    for row in [clean, *rows]:
        if row["images"].ndim != 4 or len(row["images"]) != size or len(row["pred"]) != size:
            raise ValueError("every row must hold (N, C, H, W) images and N predictions, N as in the clean row")
    return {"clean": clean, "rows": rows, "labels": payload["labels"],
            "classes": payload.get("classes") or [str(i) for i in range(1 + max(payload["labels"]))]}


@register_section("adversarial_examples", order=60, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    figures = [FigureView(f"examples-{e.index}", f"Adversarial examples ({e.label})",
                          plots.adversarial_examples(a.data, title=e.label),
                          "Predicted label and confidence per image; green: correct, red: fooled.", wide=True)
               for e, a in items]
    return section_or_none("adversarial-examples", "Adversarial examples", "The same points at growing ε.",
                           figure_row(figures))
