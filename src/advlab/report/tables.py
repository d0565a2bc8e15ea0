"""The report's tables as plain data (strings per cell), rendered by both the HTML and the markdown writers.

Here: :class:`Table` and :class:`Row`, and the tables of the cards' headline numbers (summary, cascade, checks).
The tables of one analysis kind live with its section (:mod:`advlab.report.sections`).

Every number is formatted here (:mod:`advlab.formatting`), so the two outputs show the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from advlab.formatting import (
    MISSING,
    epsilon,
    is_number,
    norm_name,
    number,
    percent,
)

if TYPE_CHECKING:  # annotations only: entries.py imports the section modules, which import this module
    from advlab.report.entries import ModelEntry


@dataclass
class Row:
    """Cells of one row; ``color`` marks the row's model (a swatch in HTML), ``status`` a check's outcome."""

    cells: list[str]
    color: str | None = None
    status: str | None = None


@dataclass
class Table:
    """``headers`` and ``rows``; the first ``text_columns`` columns are text (left-aligned), the rest numbers."""

    id: str
    title: str
    headers: list[str]
    rows: list[Row] = field(default_factory=list)
    text_columns: int = 1
    caption: str = ""


def attack_title(attack: dict[str, Any]) -> str:
    """``"pgd (L∞)"`` from a ``describe_attack`` dict."""
    name = attack.get("name") or attack.get("registry_name") or "attack"
    norm = norm_name(attack.get("norm"))
    return f"{name} ({norm})" if norm else str(name)


def clean_accuracy(entry: ModelEntry) -> float | None:
    card = entry.card
    if card.results and is_number(card.results[0].get("clean_accuracy")):
        return card.results[0]["clean_accuracy"]
    if card.cascade and is_number(card.cascade.get("clean_accuracy")):
        return card.cascade["clean_accuracy"]
    return None


def trials_text(entry: ModelEntry) -> str:
    trials = entry.card.trials
    if not trials:
        return MISSING
    count = int(trials.get("count") or 1)
    eot = int(trials.get("eot_samples") or 1)
    text = f"{count}" + (" (randomized)" if trials.get("randomized") else "")
    return text + (f", EOT {eot}" if eot > 1 else "")


def summary_table(entries: Sequence[ModelEntry]) -> Table:
    """Model, data, clean accuracy, robust accuracy per attack and ε (mean ± std over trials), cascade worst case."""
    columns: list[tuple[str, Any, str | None]] = []  # (attack title, eps, norm) in order of first appearance
    for entry in entries:
        title = attack_title(entry.attack)
        for row in entry.card.results:
            key = (title, row.get("eps"), entry.attack.get("norm"))
            if key not in columns:
                columns.append(key)
    first_seen = [c[0] for c in columns]  # group by attack in order of appearance, then ε ascending
    columns.sort(key=lambda key: (first_seen.index(key[0]), key[1] if is_number(key[1]) else float("inf")))
    # The worst case comes right after the clean accuracy: it is the headline, and with many attacks and ε the
    # table scrolls sideways, which must never hide it.
    headers = ["Model", "Data", "n", "Trials", "Clean", "Worst case (cascade)"]
    headers += [f"{title} ε={epsilon(eps, norm)}" for title, eps, norm in columns]
    table = Table("summary-table", "Summary", headers, text_columns=4,
                  caption="Accuracy on the evaluated points; robust accuracy is the share of all points still "
                          "classified correctly under attack (mean ± std over trials for randomized models).")
    for entry in entries:
        card = entry.card
        cells = [entry.label, str(card.data.get("name", MISSING)), number(card.data.get("n")), trials_text(entry),
                 percent(clean_accuracy(entry))]
        cascade = card.cascade
        if cascade:
            worst = percent(cascade.get("robust_accuracy"), cascade.get("robust_accuracy_std"))
            stages = len(cascade.get("stages", []))
            cells.append(f"{worst} ({stages} attack{'s' if stages != 1 else ''})")
        else:
            cells.append(MISSING)
        title = attack_title(entry.attack)
        by_key = {(title, row.get("eps"), entry.attack.get("norm")): row for row in card.results}
        for key in columns:
            result = by_key.get(key)
            cells.append(percent(result.get("robust_accuracy"), result.get("robust_accuracy_std")) if result
                         else MISSING)
        table.rows.append(Row(cells, entry.color))
    return table


def cascade_table(entries: Sequence[ModelEntry]) -> Table | None:
    """Per model and stage: the attack, cumulative robust accuracy (worst case so far), newly fooled, queries."""
    table = Table("cascade-table", "Attack cascade", ["Model", "Stage", "Attack", "Robust accuracy after stage",
                                                       "Newly fooled", "Queries"], text_columns=3,
                  caption="Each attack runs only on the points still robust; the last row of a model is its "
                          "worst-case robust accuracy over the whole set.")
    for entry in entries:
        cascade = entry.card.cascade
        if not cascade:
            continue
        for index, stage in enumerate(cascade.get("stages", [])):
            attack = stage.get("attack") or {}
            settings = attack.get("settings") or {}
            budget = f", ε={epsilon(settings['eps'], attack.get('norm'))}" if "eps" in settings else ""
            targets = attack.get("target_classes") or 0
            target_text = f", targeted ×{targets}" if targets else ""
            table.rows.append(Row([
                entry.label if index == 0 else "", f"{index + 1}. {stage.get('label', '')}",
                (f"{attack.get('registry_name') or attack.get('name', '')} ({norm_name(attack.get('norm'))}"
                 f"{budget}{target_text})"),
                percent(stage.get("robust_accuracy"), stage.get("robust_accuracy_std")),
                number(stage.get("newly_fooled")), number(stage.get("queries")),
            ], entry.color if index == 0 else None))
    return table if table.rows else None


def checks_table(entries: Sequence[ModelEntry]) -> Table | None:
    table = Table("checks-table", "Sanity checks", ["Model", "Check", "Status", "Result"], text_columns=4)
    for entry in entries:
        for index, check in enumerate(entry.card.checks):
            table.rows.append(Row([entry.label if index == 0 else "", str(check.get("name", "")),
                                   str(check.get("status", "")).upper(), str(check.get("message", ""))],
                                  entry.color if index == 0 else None, status=str(check.get("status", ""))))
    return table if table.rows else None


def check_values(check: dict[str, Any]) -> str:
    """``name = value`` pairs of a check's measured values, shares as numbers (they are compared raw)."""
    return ", ".join(f"{key} = {number(value)}" for key, value in (check.get("values") or {}).items())
