"""Section ``perturbation_statistics``: how large the successful perturbations are, per norm (figure + table).

Payload (``evaluate.payloads.perturbation_payload``): ``summary`` {norm: {mean, std, min, max}}, ``histograms``
{norm: {edges, counts}}, ``n``. Older cards may hold ``perturbation_statistics()`` stored as is: {norm: summary}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advlab.formatting import norm_name, number
from advlab.report import plots
from advlab.report.sections.registry import Items, register_section
from advlab.report.tables import Row, Table
from advlab.report.views import FigureView, Section, figure_row, section_or_none, table_block

if TYPE_CHECKING:
    from advlab.report.entries import ModelEntry

NORM_KEYS = ("l0", "l1", "l2", "linf")
STATS = ("mean", "std", "min", "max")


def is_norm_summary(value: Any) -> bool:
    """Whether ``value`` is one norm's {mean, std, min, max}."""
    return isinstance(value, dict) and all(key in value for key in STATS)


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    # Either the payload of payloads.perturbation_payload, or perturbation_statistics() stored as is
    # ({norm: NormSummary} through to_jsonable, which adds a "class" key).
    summary = payload.get("summary") or {key: payload[key] for key in NORM_KEYS if is_norm_summary(payload.get(key))}
    if not summary:
        raise ValueError("no norm summaries")
    clean = {norm: {stat: float(summary[norm][stat]) for stat in STATS} for norm in NORM_KEYS if norm in summary}
    histograms = {}
    for norm, hist in (payload.get("histograms") or {}).items():
        if len(hist["edges"]) != len(hist["counts"]) + 1:
            raise ValueError(f"histogram of {norm}: edges must be one longer than counts")
        histograms[norm] = {"edges": [float(v) for v in hist["edges"]], "counts": [float(v) for v in hist["counts"]]}
    return {"summary": clean, "histograms": histograms, "n": payload.get("n")}


def perturbation_table(items: Items) -> Table | None:
    table = Table("perturbation-table", "Perturbation norms", ["Model", "Norm", "Mean", "Std", "Min", "Max"],
                  text_columns=2, caption="Per-example norms of adv − x in [0, 1] pixel units (L0: changed entries).")
    for entry, analysis in items:
        for index, (norm, stats) in enumerate(analysis.data["summary"].items()):
            table.rows.append(Row([entry.label if index == 0 else "", norm_name(norm)]
                                  + [number(stats[key]) for key in STATS],
                                  entry.color if index == 0 else None))
    return table if table.rows else None


@register_section("perturbation_statistics", order=20, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    panels = [(e.label, e.color, a.data["histograms"]) for e, a in items if a.data["histograms"]]
    figures = [FigureView("perturbation-norms", "Perturbation norms", plots.norm_histograms(panels),
                          "Histogram of per-example norms of adv − x.", wide=True)] if panels else []
    return section_or_none(
        "perturbation-statistics", "Perturbation statistics",
        "How large the successful perturbations are, per norm (Wang, Kunin & Pyron, \"Exploring adversarial input "
        "spaces\").",
        figure_row(figures) + table_block(perturbation_table(items)))
