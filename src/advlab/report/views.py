"""The pieces a report is made of, independent of how it is written: sections of tables, figures, checks and data.

:mod:`advlab.report.content` and the section modules (:mod:`advlab.report.sections`) build them; the HTML writer
draws all of it, the markdown writer the tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: entries.py imports the section modules, which import this module
    from advlab.report.entries import ModelEntry
    from advlab.report.tables import Table


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


def table_block(table: Table | None) -> list[Block]:
    """``[Block("table")]``, or ``[]`` for no table."""
    return [Block("table", table=table)] if table is not None else []


def figure_row(figures: list[FigureView]) -> list[Block]:
    """``[Block("figures")]``, or ``[]`` for no figures."""
    return [Block("figures", figures=figures)] if figures else []


def section_or_none(section_id: str, title: str, intro: str, blocks: list[Block]) -> Section | None:
    """The section, or None when it has nothing to show (an empty section is left out of the report)."""
    return Section(section_id, title, intro, blocks) if blocks else None


def slug(text: str) -> str:
    """``text`` as an HTML id fragment: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
