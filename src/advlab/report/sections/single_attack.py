"""Section ``single_attack``: attacks without an ε budget (C&W's mean L2 to fool, ZOO's success rate), one table.

Payload: an ``EpsilonResult.to_dict()`` (``robust_accuracy``, ``success_rate``, ``mean_norms``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advlab.formatting import number, percent
from advlab.report.sections.registry import Items, register_section
from advlab.report.tables import Row, Table
from advlab.report.views import Section, section_or_none, table_block

if TYPE_CHECKING:
    from advlab.report.entries import ModelEntry

KEYS = ("eps", "robust_accuracy", "robust_accuracy_std", "clean_accuracy", "success_rate", "success_rate_std",
        "mean_norms", "median_norms", "queries_per_sample")


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: payload.get(key) for key in KEYS}


def single_attack_table(items: Items) -> Table | None:
    """One row per analysis: success rate, robust accuracy, norms of the successful perturbations, queries."""
    table = Table("single-attack-table", "Minimum-norm and black-box attacks",
                  ["Model", "Attack", "Success rate", "Robust accuracy", "Mean L2", "Median L2", "Mean L∞",
                   "Queries / point"], text_columns=2,
                  caption="Success rate over the clean-correct points; norms of the successful perturbations in "
                          "[0, 1] pixel units.")
    for entry, analysis in items:
        data = analysis.data
        mean, median = data.get("mean_norms") or {}, data.get("median_norms") or {}
        success = percent(data.get("success_rate"), data.get("success_rate_std"))
        table.rows.append(Row([entry.label, analysis.name, success,
                               percent(data.get("robust_accuracy"), data.get("robust_accuracy_std")),
                               number(mean.get("l2")), number(median.get("l2")), number(mean.get("linf")),
                               number(data.get("queries_per_sample"))], entry.color))
    return table if table.rows else None


@register_section("single_attack", order=10, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    return section_or_none(
        "single-attacks", "Minimum-norm and black-box attacks",
        "Attacks without an ε budget: C&W reports the mean L2 needed to fool, ZOO its success rate.",
        table_block(single_attack_table(items)))
