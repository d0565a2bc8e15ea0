"""What the report says, independent of how it is written: sections of tables, figures and checks.

:func:`build_content` turns the model entries (one per card) into an ordered list of :class:`Section`; the HTML
writer draws all of it, the markdown writer the tables. Figures are PNG bytes made here from the cards' numbers
(:mod:`advlab.report.plots`), so nothing is recomputed from a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import advlab
from advlab.errors import InputError
from advlab.formatting import is_number
from advlab.report import plots
from advlab.report.entries import ModelEntry
from advlab.report.tables import (
    Table,
    attack_title,
    cascade_table,
    check_values,
    checks_table,
    clean_accuracy,
    curve_table,
    gradient_table,
    perturbation_table,
    single_attack_table,
    summary_table,
    transfer_tables,
)


@dataclass
class FigureView:
    """One embedded figure: PNG bytes with a title and a caption; ``wide`` figures take the full width."""

    id: str
    title: str
    png: bytes
    caption: str = ""
    wide: bool = False


@dataclass
class CheckView:
    name: str
    status: str
    message: str
    values: str
    doc: str
    explanation: str


@dataclass
class Block:
    """A piece of a section: ``kind`` is "table", "figures", "checks" or "data"."""

    kind: str
    table: Table | None = None
    figures: list[FigureView] = field(default_factory=list)
    checks: list[tuple[ModelEntry, list[CheckView]]] = field(default_factory=list)
    data: list[tuple[ModelEntry, str, str, str]] = field(default_factory=list)  # entry, name, note, json


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)

    def tables(self) -> list[Table]:
        """Every table, also the checks' (which HTML draws with badges, markdown as a plain table)."""
        return [block.table for block in self.blocks if block.table is not None]

    def figure_count(self) -> int:
        return sum(len(block.figures) for block in self.blocks)


def _table_block(table: Table | None) -> list[Block]:
    return [Block("table", table=table)] if table is not None else []


def _of_kind(entries: Sequence[ModelEntry], kind: str):
    return [(entry, analysis) for entry in entries for analysis in entry.analyses if analysis.kind == kind]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def curves_section(entries: Sequence[ModelEntry]) -> Section | None:
    """One plot per attack (name + norm) with every model that was evaluated with it."""
    groups: dict[tuple[str, str | None], list[plots.Series]] = {}
    for entry in entries:
        rows = [row for row in entry.card.results if is_number(row.get("eps"))]
        if not rows:
            continue
        rows.sort(key=lambda row: row["eps"])
        eps = [row["eps"] for row in rows]
        accuracy = [row["robust_accuracy"] for row in rows]
        std = [row.get("robust_accuracy_std") or 0.0 for row in rows]
        clean = clean_accuracy(entry)
        if eps[0] > 0 and clean is not None:  # robust accuracy at ε = 0 is the clean accuracy: start the curve there
            eps, accuracy, std = [0.0] + eps, [clean] + accuracy, [0.0] + std
        key = (attack_title(entry.attack), entry.attack.get("norm"))
        label = entry.label + (f" (mean of {entry.trials} trials)" if entry.trials > 1 else "")
        groups.setdefault(key, []).append(plots.Series(label, entry.color, eps, accuracy,
                                                       std if entry.trials > 1 else None))
    if not groups:
        return None
    figures = [FigureView(f"curve-{_slug(title)}", f"Robust accuracy vs ε: {title}",
                          plots.robustness_curve(series, attack_title=title, norm=norm),
                          "ε = 0 is the clean accuracy."
                          + (" Shaded bands: ± one standard deviation over trials of a randomized model."
                             if any(line.y_std is not None for line in series) else ""))
               for (title, norm), series in groups.items()]
    return Section("curves", "Accuracy vs ε", "Robust accuracy as the attack budget grows; all models evaluated "
                   "with the same attack share one plot.", [Block("figures", figures=figures)])


def load_check_explanations(path: Path | None = None) -> dict[str, str]:
    """``anchor -> paragraph`` from ``advlab/evaluate/checks.md`` (package data); {} when the file is absent."""
    path = path or Path(advlab.__file__).resolve().parent / "evaluate" / "checks.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    explanations, anchor, lines = {}, None, []
    for line in text.splitlines() + ["## "]:
        if line.startswith("## "):
            if anchor:
                explanations[anchor] = " ".join(part.strip() for part in lines if part.strip())
            anchor, lines = line[3:].strip(), []
        elif anchor is not None:
            lines.append(line)
    return explanations


def checks_section(entries: Sequence[ModelEntry]) -> Section | None:
    explanations = load_check_explanations()
    per_model = []
    for entry in entries:
        views = []
        for check in entry.card.checks:
            doc = str(check.get("doc", ""))
            anchor = doc.partition("#")[2]
            views.append(CheckView(str(check.get("name", "")), str(check.get("status", "skip")),
                                   str(check.get("message", "")), check_values(check), doc,
                                   str(check.get("explanation") or explanations.get(anchor, ""))))
        if views:
            per_model.append((entry, views))
    if not per_model:
        return None
    warned = sum(view.status == "warn" for _, views in per_model for view in views)
    intro = ("Signs that gradients are obfuscated and the robust accuracy above is too high (Athalye et al. 2018; "
             "Carlini et al. 2019). " + (f"{warned} warning{'s' if warned != 1 else ''}: read the explanation "
                                         "before trusting those numbers." if warned else "No warnings."))
    return Section("checks", "Sanity checks", intro, [Block("checks", checks=per_model, table=checks_table(entries))])


def _figure_row(figures: list[FigureView]) -> list[Block]:
    return [Block("figures", figures=figures)] if figures else []


def analysis_sections(entries: Sequence[ModelEntry]) -> list[Section]:
    sections: list[Section] = []

    def add(section_id: str, title: str, intro: str, blocks: list[Block]) -> None:
        if blocks:
            sections.append(Section(section_id, title, intro, blocks))

    add("single-attacks", "Minimum-norm and black-box attacks",
        "Attacks without an ε budget: C&W reports the mean L2 needed to fool, ZOO its success rate.",
        _table_block(single_attack_table(entries)))

    items = _of_kind(entries, "perturbation_statistics")
    panels = [(e.label, e.color, a.data["histograms"]) for e, a in items if a.data["histograms"]]
    add("perturbation-statistics", "Perturbation statistics",
        "How large the successful perturbations are, per norm (Wang, Kunin & Pyron, \"Exploring adversarial input "
        "spaces\").",
        _figure_row([FigureView("perturbation-norms", "Perturbation norms", plots.norm_histograms(panels),
                                "Histogram of per-example norms of adv − x.", wide=True)] if panels else [])
        + _table_block(perturbation_table(entries)))

    items = _of_kind(entries, "pixel_histograms")
    add("pixel-histograms", "Pixel values: clean vs adversarial", "Where the attack moves pixel values.",
        _figure_row([FigureView("pixel-histograms-figure", "Pixel histograms",
                                plots.pixel_histograms([(e.label, a.data) for e, a in items]),
                                "Share of pixels per value bin (log scale).", wide=len(items) > 1)] if items else []))

    figures = []
    for entry, analysis in _of_kind(entries, "average_adversarial_grid"):
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
    add("average-adversarial-grid", "Average adversarial images",
        "Row = source class, column = target class of a targeted attack, diagonal = clean averages.",
        _figure_row(figures))

    figures = [FigureView(f"average-perturbation-{e.index}", f"Average perturbation ({e.label})",
                          plots.perturbation_images(a.data["images"], a.data["classes"], a.data["counts"],
                                                    title=e.label), "Mean adv − x per source class.", wide=True)
               for e, a in _of_kind(entries, "average_perturbation_images")]
    add("average-perturbations", "Average perturbations", "What the attack adds, averaged per class.",
        _figure_row(figures))

    figures = [FigureView(f"examples-{e.index}", f"Adversarial examples ({e.label})",
                          plots.adversarial_examples(a.data, title=e.label),
                          "Predicted label and confidence per image; green: correct, red: fooled.", wide=True)
               for e, a in _of_kind(entries, "adversarial_examples")]
    add("adversarial-examples", "Adversarial examples", "The same points at growing ε.", _figure_row(figures))

    items = [(e, a) for e, a in _of_kind(entries, "gradient_norms")]
    with_histograms = [(e.label, a.data) for e, a in items if a.data.get("histogram")]
    add("gradient-norms", "Input-gradient norms", "Gradient norms are usually small on correctly classified "
        "points and large on misclassified ones; a defense that zeroes them masks gradients.",
        _figure_row([FigureView("gradient-norms-figure", "Input-gradient norms",
                                plots.gradient_histograms(with_histograms),
                                "Share of each group per bin (log-spaced bins).", wide=len(with_histograms) > 1)]
                    if with_histograms else []) + _table_block(gradient_table(entries)))

    blocks: list[Block] = []
    for entry, analysis in _of_kind(entries, "transfer"):
        data = analysis.data
        blocks += _figure_row([FigureView(f"transfer-{entry.index}", f"Transfer matrix ({entry.label})",
                                          plots.success_heatmap(data["accuracy"], data["names"], data["names"],
                                                                title=entry.label, x_label="target model",
                                                                y_label="source model"),
                               "Accuracy (%) of the target model on examples crafted against the source model.")])
    for table in transfer_tables(entries):
        blocks += _table_block(table)
    add("transfer", "Transferability", "Adversarial examples crafted on one model, evaluated on another.", blocks)

    curve_specs = [
        ("steps_sweep", "accuracy-vs-steps", "Accuracy vs attack steps",
         "A curve still falling at the right end means the attack had not converged.", "attack steps", True),
        ("sweep", "accuracy-vs-setting", "Accuracy vs an attack setting", "", None, False),
        ("noise", "accuracy-vs-noise", "Accuracy vs Gaussian noise",
         "Accuracy on clip(x + σ·N(0, I), 0, 1): the random-perturbation baseline.", "noise std σ", False),
        ("curve", "other-curves", "Other measured curves",
         "Curves stored with the cards, e.g. accuracy vs σ_N² of the stochastic feed-forward network.", None, None),
    ]
    for kind, section_id, title, intro, x_label, log_x in curve_specs:
        items = _of_kind(entries, kind)
        groups: dict[str, list[tuple[ModelEntry, Any]]] = {}
        for entry, analysis in items:
            key = analysis.data.get("x_label") or analysis.data.get("parameter") or x_label or "x"
            groups.setdefault(f"{key}|{analysis.data.get('y_label', 'accuracy')}", []).append((entry, analysis))
        figures = []
        for key, members in groups.items():
            axis_x, axis_y = key.split("|", 1)
            share = "acc" in axis_y.lower()
            series = [plots.Series(f"{e.label}" + (f" · {a.name}" if len(members) > len({m[0].index for m in members})
                                                   else ""), e.color, a.data["x"], a.data["y"], a.data["y_std"])
                      for e, a in members]
            heading = next((a.data.get("title") for _, a in members if a.data.get("title")), "") or title
            use_log = log_x if log_x is not None else any(a.data.get("log_x") for _, a in members)
            figures.append(FigureView(f"{section_id}-{_slug(axis_x)}", heading,
                                      plots.line_plot(series, title=heading, x_label=axis_x,
                                                      y_label="accuracy (%)" if share else axis_y, percent=share,
                                                      log_x=use_log)))
        add(section_id, title, intro, _figure_row(figures) + _table_block(curve_table(entries, kind)))

    others = [(e, a.name, a.note, json.dumps(a.data["value"], indent=1)[:4000]) for e, a in _of_kind(entries, "other")]
    if others:
        sections.append(Section("other-analyses", "Other analyses",
                                "Stored in the cards but not drawn by this version of the report.",
                                [Block("data", data=others)]))
    return sections


def extra_figures_section(figures: Mapping[str, Any] | None) -> Section | None:
    """The caller's own figures: PNG bytes or matplotlib Figures, by title."""
    if not figures:
        return None
    views = []
    for index, (title, figure) in enumerate(figures.items()):
        if isinstance(figure, (bytes, bytearray)):
            png = bytes(figure)
            if not plots.is_png(png):
                raise InputError(f"figure {title!r} is bytes but not a PNG; pass PNG bytes or a matplotlib Figure")
        elif hasattr(figure, "savefig"):
            png = plots.png_bytes(figure)
        else:
            raise InputError(f"figure {title!r} is a {type(figure).__name__}; pass PNG bytes or a matplotlib Figure")
        views.append(FigureView(f"extra-{index}", str(title), png))
    return Section("additional-figures", "Additional figures", "", [Block("figures", figures=views)])


def build_content(entries: Sequence[ModelEntry], figures: Mapping[str, Any] | None = None) -> list[Section]:
    """Every section of the report, in reading order (empty sections are left out)."""
    sections = [Section("summary", "Summary", "", _table_block(summary_table(entries))
                        + _table_block(cascade_table(entries)))]
    for section in (curves_section(entries), checks_section(entries)):
        if section is not None:
            sections.append(section)
    sections += analysis_sections(entries)
    extra = extra_figures_section(figures)
    if extra is not None:
        sections.append(extra)
    return sections
