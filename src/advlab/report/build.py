"""``build_report``: evaluation cards in, ``report.html`` (self-contained) and ``report.md`` out. No model is run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlab.io import write_text
from advlab.report.content import build_content
from advlab.report.entries import CardLike, make_entries
from advlab.report.html import render_html
from advlab.report.markdown import render_markdown

DEFAULT_TITLE = "advlab robustness report"


@dataclass(frozen=True)
class ReportPaths:
    """Where the report was written: ``html`` (self-contained page) and ``markdown`` (the tables)."""

    html: Path
    markdown: Path


def build_report(
    cards: Sequence[CardLike],
    out_dir: str | Path,
    *,
    figures: Mapping[str, Any] | None = None,
    title: str = DEFAULT_TITLE,
    sources: Sequence[str | Path] | None = None,
) -> ReportPaths:
    """Render the report of one or more evaluated models (side by side) into ``out_dir``.

    Args:
        cards: EvaluationCard objects, card dicts or paths to card JSON files; one model each, in display order.
        out_dir: created if needed; ``report.html`` and ``report.md`` are written atomically inside it.
        figures: extra figures to embed, title -> PNG bytes or a matplotlib Figure.
        title: the page's title.
        sources: the card files' paths, for the "rebuild" command printed in the report (default: the paths in
            ``cards`` when they are paths, else ``CARDS.json``).

    Returns:
        :class:`ReportPaths`. Raises InputError for no cards or a bad figure, AdvlabError for an invalid card.

    Example::

        paths = build_report([load_card("a.json"), load_card("b.json")], "reports/ab")
    """
    entries = make_entries(cards)
    sections = build_content(entries, figures)
    out = Path(out_dir)
    if sources is None:
        sources = [str(card) for card in cards if isinstance(card, (str, Path))] or ["CARDS.json"]
    rebuild = f"advlab report {' '.join(str(source) for source in sources)} --out {out}"
    paths = ReportPaths(out / "report.html", out / "report.md")
    write_text(paths.html, render_html(entries, sections, title=title, rebuild_command=rebuild))
    write_text(paths.markdown, render_markdown(entries, sections, title=title, rebuild_command=rebuild))
    return paths
