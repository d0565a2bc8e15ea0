"""Section ``other``: analyses the report cannot draw, listed as JSON so nothing is dropped silently.

An analysis is ``other`` when its kind has no section (e.g. a card written by a newer version) or when its
payload does not fit its kind's normaliser (then ``Analysis.note`` says why). Always the last section.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from advlab.report.sections.registry import OTHER, Items, register_section
from advlab.report.views import Block, Section

if TYPE_CHECKING:
    from advlab.report.entries import ModelEntry

MAX_CHARS = 4000
"""Each payload's JSON is cut after this many characters."""


def normalise(payload: Any) -> dict[str, Any]:
    return {"value": payload}


@register_section(OTHER, order=1000, normalise=normalise)
def render(entries: Sequence[ModelEntry], items: Items) -> Section | None:
    data = [(e, a.name, a.note, json.dumps(a.data["value"], indent=1)[:MAX_CHARS]) for e, a in items]
    if not data:
        return None
    return Section("other-analyses", "Other analyses",
                   "Stored in the cards but not drawn by this version of the report.", [Block("data", data=data)])
