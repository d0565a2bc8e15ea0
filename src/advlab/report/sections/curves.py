"""Sections of measured curves, y against one x per model: ``steps_sweep``, ``sweep``, ``noise`` and ``curve``.

The four kinds are drawn alike (a line plot per x/y axis pair, every model on it, and a table of the values);
each has its own section. Payloads:

* ``steps_sweep`` / ``sweep`` (``SweepResult.to_dict()``): ``parameter``, ``values``, ``robust_accuracy``, optional
  ``robust_accuracy_std``; ``steps_sweep`` is the sweep over ``parameter == "steps"``;
* ``noise`` (``NoiseCurve.to_dict()``): ``stds``, ``accuracy``, optional ``accuracy_std``, ``draws``;
* ``curve`` (``evaluate.payloads.curve_payload``): ``x``, ``y``, optional ``y_std``, ``x_label``, ``y_label``,
  ``title``, ``log_x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advlab.formatting import number, percent
from advlab.report import plots
from advlab.report.sections.registry import Items, Normaliser, register_section
from advlab.report.sections.validate import same_length
from advlab.report.tables import Row, Table
from advlab.report.views import FigureView, Section, figure_row, section_or_none, slug, table_block

if TYPE_CHECKING:
    from advlab.report.analyses import Analysis
    from advlab.report.entries import ModelEntry


def normalise_sweep(payload: dict[str, Any]) -> dict[str, Any]:
    values, accuracy = list(payload["values"]), list(payload["robust_accuracy"])
    same_length("values", values, "robust_accuracy", accuracy)
    return {"parameter": str(payload["parameter"]), "x": values, "y": accuracy,
            "y_std": list(payload.get("robust_accuracy_std") or [0.0] * len(values))}


def normalise_noise(payload: dict[str, Any]) -> dict[str, Any]:
    stds, accuracy = list(payload["stds"]), list(payload["accuracy"])
    same_length("stds", stds, "accuracy", accuracy)
    return {"x": stds, "y": accuracy, "y_std": list(payload.get("accuracy_std") or [0.0] * len(stds)),
            "draws": payload.get("draws")}


def normalise_curve(payload: dict[str, Any]) -> dict[str, Any]:
    x, y = list(payload["x"]), list(payload["y"])
    same_length("x", x, "y", y)
    return {"x": x, "y": y, "y_std": list(payload.get("y_std") or [0.0] * len(x)),
            "x_label": str(payload.get("x_label", "x")), "y_label": str(payload.get("y_label", "accuracy")),
            "title": str(payload.get("title", "")), "log_x": bool(payload.get("log_x", False))}


@dataclass(frozen=True)
class CurveSection:
    """How one curve kind is titled: section id/title/intro, its table, the x axis name, log scale."""

    id: str
    title: str
    intro: str
    table_id: str
    table_title: str
    x_label: str | None = None  # axis label when the payload names none (None: the payload's parameter or "x")
    x_name: str | None = None  # x in the table's "x=value" cells (None: the payload's parameter or x_label)
    log_x: bool | None = False  # None: log scale when a payload asks for it


def curve_table(items: Items, spec: CurveSection) -> Table | None:
    """One row per model and curve: the x values as ``x: accuracy`` cells (the x values may differ per model)."""
    table = Table(spec.table_id, spec.table_title, ["Model", "Curve", "Values"], text_columns=3)
    for entry, analysis in items:
        data = analysis.data
        name = spec.x_name or data.get("parameter") or data.get("x_label") or "x"
        share = "acc" in str(data.get("y_label", "accuracy")).lower()  # accuracies as %, other measures as is
        cells = "; ".join(f"{name}={number(x)}: {percent(y, s) if share else number(y)}"
                          for x, y, s in zip(data["x"], data["y"], data["y_std"]))
        table.rows.append(Row([entry.label, analysis.name, cells], entry.color))
    return table if table.rows else None


def curve_section(items: Items, spec: CurveSection) -> Section | None:
    """A line plot per (x axis, y axis) pair with every model's curves on it, then the table."""
    groups: dict[str, list[tuple[ModelEntry, Analysis]]] = {}
    for entry, analysis in items:
        key = analysis.data.get("x_label") or analysis.data.get("parameter") or spec.x_label or "x"
        groups.setdefault(f"{key}|{analysis.data.get('y_label', 'accuracy')}", []).append((entry, analysis))
    figures = []
    for key, members in groups.items():
        axis_x, axis_y = key.split("|", 1)
        share = "acc" in axis_y.lower()
        several_per_model = len(members) > len({entry.index for entry, _ in members})
        series = [plots.Series(e.label + (f" · {a.name}" if several_per_model else ""), e.color, a.data["x"],
                               a.data["y"], a.data["y_std"]) for e, a in members]
        heading = next((a.data.get("title") for _, a in members if a.data.get("title")), "") or spec.title
        use_log = spec.log_x if spec.log_x is not None else any(a.data.get("log_x") for _, a in members)
        figures.append(FigureView(f"{spec.id}-{slug(axis_x)}", heading,
                                  plots.line_plot(series, title=heading, x_label=axis_x,
                                                  y_label="accuracy (%)" if share else axis_y, percent=share,
                                                  log_x=use_log)))
    return section_or_none(spec.id, spec.title, spec.intro, figure_row(figures) + table_block(curve_table(items, spec)))


def register_curve(kind: str, *, order: int, normalise: Normaliser, spec: CurveSection) -> None:
    """Register the section of one curve kind."""

    @register_section(kind, order=order, normalise=normalise)
    def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
        return curve_section(items, spec)


register_curve("steps_sweep", order=90, normalise=normalise_sweep, spec=CurveSection(
    "accuracy-vs-steps", "Accuracy vs attack steps",
    "A curve still falling at the right end means the attack had not converged.",
    "steps-table", "Robust accuracy vs attack steps", x_label="attack steps", x_name="steps", log_x=True))
register_curve("sweep", order=100, normalise=normalise_sweep, spec=CurveSection(
    "accuracy-vs-setting", "Accuracy vs an attack setting", "", "sweep-table", "Robust accuracy vs an attack setting"))
register_curve("noise", order=110, normalise=normalise_noise, spec=CurveSection(
    "accuracy-vs-noise", "Accuracy vs Gaussian noise",
    "Accuracy on clip(x + σ·N(0, I), 0, 1): the random-perturbation baseline.",
    "noise-table", "Accuracy vs Gaussian noise std", x_label="noise std σ", x_name="σ"))
register_curve("curve", order=120, normalise=normalise_curve, spec=CurveSection(
    "other-curves", "Other measured curves",
    "Curves stored with the cards, e.g. accuracy vs σ_N² of the stochastic feed-forward network.",
    "curve-table", "Other measured curves", log_x=None))
