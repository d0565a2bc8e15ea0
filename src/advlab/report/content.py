"""What the report says, independent of how it is written: sections of tables, figures and checks.

:func:`build_content` turns the model entries (one per card) into an ordered list of :class:`Section`
(:mod:`advlab.report.views`): the summary, the robustness curves and the sanity checks made here, then one section
per analysis kind from the registry of :mod:`advlab.report.sections`. The HTML writer draws all of it, the
markdown writer the tables. Figures are PNG bytes drawn from the cards' numbers (:mod:`advlab.report.plots`), so
nothing is recomputed from a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import advlab
from advlab.errors import InputError
from advlab.formatting import is_number
from advlab.report import plots
from advlab.report.entries import ModelEntry
from advlab.report.sections import SECTIONS
from advlab.report.tables import attack_title, cascade_table, check_values, checks_table, clean_accuracy, summary_table
from advlab.report.views import Block, CheckView, FigureView, Section, slug, table_block

__all__ = ["Block", "CheckView", "FigureView", "Section", "analysis_sections", "build_content", "checks_section",
           "curves_section", "extra_figures_section", "load_check_explanations"]


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
    figures = [FigureView(f"curve-{slug(title)}", f"Robust accuracy vs ε: {title}",
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
    explanations: dict[str, str] = {}
    anchor: str | None = None
    lines: list[str] = []
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


def analysis_sections(entries: Sequence[ModelEntry]) -> list[Section]:
    """One section per registered kind that some card holds (:mod:`advlab.report.sections`), in section order."""
    sections = []
    for spec in SECTIONS:
        items = [(entry, analysis) for entry in entries for analysis in entry.analyses if analysis.kind == spec.kind]
        section = spec.render(entries, items) if items else None
        if section is not None:
            sections.append(section)
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
    sections = [Section("summary", "Summary", "", table_block(summary_table(entries))
                        + table_block(cascade_table(entries)))]
    for section in (curves_section(entries), checks_section(entries)):
        if section is not None:
            sections.append(section)
    sections += analysis_sections(entries)
    extra = extra_figures_section(figures)
    if extra is not None:
        sections.append(extra)
    return sections
