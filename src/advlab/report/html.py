"""The self-contained HTML report: one file, figures as base64 PNG, CSS inline, no network needed to view it.

Rendered with jinja2 (autoescaped) from ``templates/report.html.j2``. The only script is an optional marker that
records how many figures decoded, for the browser test; the page reads the same without JavaScript.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import platform
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import jinja2
import matplotlib
from markupsafe import Markup

import advlab
from advlab.formatting import MISSING, epsilon, number, percent
from advlab.report.entries import ModelEntry
from advlab.report.tables import clean_accuracy
from advlab.report.views import Section


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("advlab.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.filters["markup"] = inline_markdown
    return env


def inline_markdown(text: str) -> Markup:
    """Escape ``text``, then render the little markdown of advlab/evaluate/checks.md: `code`, **bold**, *italic*."""
    escaped = html_lib.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
    # Single asterisks around a word or phrase (no space inside the markers), as in "leaves *more* points".
    escaped = re.sub(r"(?<![\w*])\*(?=\S)([^*]*?\S)\*(?![\w*])", r"<em>\1</em>", escaped)
    return Markup(escaped)


def highlight(entry: ModelEntry) -> dict[str, str]:
    """The headline number of a model: worst case of the cascade, else the lowest robust accuracy of its curve."""
    card, clean = entry.card, percent(clean_accuracy(entry))
    if card.cascade:
        stages = len(card.cascade.get("stages", []))
        return {"label": entry.label, "color": entry.color,
                "value": percent(card.cascade.get("robust_accuracy"), card.cascade.get("robust_accuracy_std")),
                "sub": f"worst case over {stages} attack{'s' if stages != 1 else ''} · clean {clean}"}
    rows = [row for row in card.results if isinstance(row.get("robust_accuracy"), (int, float))]
    if rows:
        worst = min(rows, key=lambda row: row["robust_accuracy"])
        return {"label": entry.label, "color": entry.color,
                "value": percent(worst["robust_accuracy"], worst.get("robust_accuracy_std")),
                "sub": f"{entry.attack.get('name', 'attack')} at "
                       f"ε={epsilon(worst.get('eps'), entry.attack.get('norm'))}"
                       f" · clean {clean}"}
    return {"label": entry.label, "color": entry.color, "value": clean, "sub": "clean accuracy (no attack in card)"}


def provenance(entry: ModelEntry) -> dict[str, str]:
    card = entry.card
    data = card.data
    data_text = ", ".join(f"{key} {value}" for key, value in (("", data.get("name")), ("n =", data.get("n")),
                                                                ("seed", data.get("seed"))) if value is not None)
    versions = ", ".join(f"{name} {version}" for name, version in card.versions.items()) or MISSING
    details = json.dumps({"model": card.model, "data": card.data, "attacks": card.attacks, "trials": card.trials},
                         indent=2, ensure_ascii=False)
    return {"label": entry.label, "color": entry.color, "data": data_text.strip() or MISSING, "seed": str(card.seed),
            "timestamp": card.timestamp or MISSING, "duration": f"{number(card.duration_s)} s", "versions": versions,
            "details": details}


def render_html(entries: Sequence[ModelEntry], sections: Sequence[Section], *, title: str,
                rebuild_command: str, built: str | None = None) -> str:
    """The whole report page as one string."""
    template = _environment().get_template("report.html.j2")
    context: dict[str, Any] = {
        "title": title, "entries": entries, "sections": sections,
        "highlights": [highlight(entry) for entry in entries],
        "provenance": [provenance(entry) for entry in entries],
        "rebuild_command": rebuild_command,
        "built": built or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": advlab.__version__, "python": platform.python_version(), "matplotlib": matplotlib.__version__,
    }
    return template.render(**context)
