"""Recognise the analyses stored in ``card.analyses`` and bring each to the shape its report section draws.

A card's analyses are JSON payloads under free names, each with a ``"kind"``. The kind picks the section
registered for it in :mod:`advlab.report.sections`, whose normaliser reads the payload. Payloads without a kind
come from cards of older versions; :mod:`advlab.report.legacy_kinds` guesses theirs. An analysis the report cannot
draw (unknown kind, or a payload that does not fit its kind) is kept as kind ``"other"`` and listed as data, never
dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advlab.report.legacy_kinds import legacy_kind
from advlab.report.sections import OTHER, SECTIONS

KINDS = SECTIONS.kinds()
"""Every kind the report draws, in section order; ``"other"`` last."""


@dataclass(frozen=True)
class Analysis:
    """One analysis of one card: its name in the card, recognised ``kind`` and normalised ``data``."""

    name: str
    kind: str
    data: dict[str, Any]
    note: str = ""


def identify(name: str, payload: Any) -> str:
    """The kind of an analysis (one of :data:`KINDS`): the payload's ``"kind"``, ``"other"`` if the report has no
    section for it; a payload without ``"kind"`` (an older card) by :func:`~advlab.report.legacy_kinds.legacy_kind`."""
    if isinstance(payload, dict) and "kind" in payload:
        kind = payload["kind"]
        return kind if isinstance(kind, str) and kind in SECTIONS else OTHER
    return legacy_kind(name, payload)


def normalise(name: str, payload: Any) -> Analysis:
    """Identify and normalise one analysis; a payload that does not fit its kind becomes ``other`` with a note."""
    kind = identify(name, payload)
    spec = SECTIONS.get(kind)
    if spec is None:  # a legacy guess at a kind this report no longer draws
        return Analysis(name, OTHER, {"value": payload})
    try:
        return Analysis(name, kind, spec.normalise(payload))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return Analysis(name, OTHER, {"value": payload}, note=f"looks like {kind} but could not be read ({exc!r})")
