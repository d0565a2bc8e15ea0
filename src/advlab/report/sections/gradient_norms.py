"""Section ``gradient_norms``: input-gradient norms of correctly and incorrectly classified points (figure + table).

Payload (``evaluate.payloads.gradient_norms_payload``): ``norm``, ``correct``/``incorrect`` summaries {n, mean,
median, std}, optional ``histogram`` {edges, correct, incorrect}.
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


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    histogram = payload.get("histogram")
    if histogram is not None and not (len(histogram["edges"]) == len(histogram["correct"]) + 1
                                      == len(histogram["incorrect"]) + 1):
        raise ValueError("histogram edges must be one longer than the counts")
    return {"norm": payload["norm"], "correct": payload["correct"], "incorrect": payload["incorrect"],
            "histogram": histogram}


def gradient_table(items: Items) -> Table | None:
    table = Table("gradient-table", "Input-gradient norms", ["Model", "Points", "n", "Mean", "Median", "Std"],
                  text_columns=2, caption="‖∇ₓ CE(f(x), y)‖ with respect to [0, 1] pixels.")
    for entry, analysis in items:
        norm = norm_name(analysis.data["norm"])
        for index, group in enumerate(("correct", "incorrect")):
            stats = analysis.data[group] or {}
            table.rows.append(Row([entry.label if index == 0 else "", f"{group} ({norm})", number(stats.get("n")),
                                   number(stats.get("mean")), number(stats.get("median")), number(stats.get("std"))],
                                  entry.color if index == 0 else None))
    return table if table.rows else None


@register_section("gradient_norms", order=70, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    with_histograms = [(e.label, a.data) for e, a in items if a.data.get("histogram")]
    figures = [FigureView("gradient-norms-figure", "Input-gradient norms", plots.gradient_histograms(with_histograms),
                          "Share of each group per bin (log-spaced bins).", wide=len(with_histograms) > 1)
               ] if with_histograms else []
    return section_or_none(
        "gradient-norms", "Input-gradient norms", "Gradient norms are usually small on correctly classified "
        "points and large on misclassified ones; a defense that zeroes them masks gradients.",
        figure_row(figures) + table_block(gradient_table(items)))
