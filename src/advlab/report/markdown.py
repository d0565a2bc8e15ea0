"""The markdown summary: the report's tables as GitHub-flavoured markdown, numbers formatted as in the HTML."""

from __future__ import annotations

from collections.abc import Sequence

from advlab.report.entries import ModelEntry
from advlab.report.tables import Table
from advlab.report.views import Section


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    align = ["---" if index < table.text_columns else "---:" for index in range(len(table.headers))]
    lines = ["| " + " | ".join(_cell(h) for h in table.headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row.cells) + " |" for row in table.rows]
    out = "\n".join(lines)
    return f"{out}\n\n*{table.caption}*" if table.caption else out


def render_markdown(entries: Sequence[ModelEntry], sections: Sequence[Section], *, title: str,
                    rebuild_command: str) -> str:
    """Title, every table of every section (figures are in report.html), and the provenance of each card."""
    parts = [f"# {title}", "", "Models: " + ", ".join(entry.label for entry in entries) + ".", ""]
    for section in sections:
        tables = section.tables()
        figures = section.figure_count()
        if not tables and not figures:
            continue
        parts += [f"## {section.title}", ""]
        if section.intro:
            parts += [section.intro, ""]
        for table in tables:
            if table.title and table.title != section.title:
                parts += [f"### {table.title}", ""]
            parts += [markdown_table(table), ""]
        if figures:
            parts += [f"{figures} figure{'s' if figures != 1 else ''}: see report.html#{section.id}.", ""]
    parts += ["## Provenance", "", f"Rebuild: `{rebuild_command}`", ""]
    for entry in entries:
        card = entry.card
        versions = ", ".join(f"{name} {version}" for name, version in card.versions.items())
        parts.append(f"- **{entry.label}**: data {card.data.get('name')} (n = {card.data.get('n')}), seed "
                     f"{card.seed}, evaluated {card.timestamp or 'unknown'}, {versions}")
    return "\n".join(parts) + "\n"
