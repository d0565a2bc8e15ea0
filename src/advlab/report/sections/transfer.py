"""Section ``transfer``: accuracy of each model on adversarial examples crafted against each other model.

Payload (``TransferMatrix.to_dict()``): ``names``, ``accuracy`` (square, source × target), ``clean_accuracy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advlab.formatting import percent
from advlab.report import plots
from advlab.report.sections.registry import Items, register_section
from advlab.report.sections.validate import square
from advlab.report.tables import Row, Table
from advlab.report.views import Block, FigureView, Section, figure_row, section_or_none, table_block

if TYPE_CHECKING:
    from advlab.report.entries import ModelEntry


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    names = [str(name) for name in payload["names"]]
    accuracy = square(payload["accuracy"], len(names))
    if len(payload["clean_accuracy"]) != len(names):
        raise ValueError("clean_accuracy must have one value per model")
    return {"names": names, "accuracy": accuracy, "clean_accuracy": list(payload["clean_accuracy"])}


def transfer_tables(items: Items) -> list[Table]:
    tables = []
    for entry, analysis in items:
        data = analysis.data
        table = Table(f"transfer-table-{entry.index}", f"Transfer matrix ({entry.label})",
                      ["Source ↓ / target →", *data["names"]],
                      caption="Accuracy of the target model (column) on adversarial examples crafted against the "
                              "source model (row); the diagonal is white-box.")
        table.rows.append(Row(["clean"] + [percent(v) for v in data["clean_accuracy"]]))
        for name, row in zip(data["names"], data["accuracy"]):
            table.rows.append(Row([name] + [percent(v) for v in row]))
        tables.append(table)
    return tables


@register_section("transfer", order=80, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    blocks: list[Block] = []
    for entry, analysis in items:
        data = analysis.data
        blocks += figure_row([FigureView(f"transfer-{entry.index}", f"Transfer matrix ({entry.label})",
                                         plots.success_heatmap(data["accuracy"], data["names"], data["names"],
                                                               title=entry.label, x_label="target model",
                                                               y_label="source model"),
                              "Accuracy (%) of the target model on examples crafted against the source model.")])
    for table in transfer_tables(items):
        blocks += table_block(table)
    return section_or_none("transfer", "Transferability",
                           "Adversarial examples crafted on one model, evaluated on another.", blocks)
