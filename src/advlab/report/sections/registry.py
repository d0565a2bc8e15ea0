"""The registry of report sections: one :class:`SectionSpec` per payload ``kind``, in reading order.

A section module registers its renderer with :func:`register_section`, naming the kind it draws, its place in the
report (``order``) and the normaliser that brings a stored payload of that kind to the shape the renderer reads::

    @register_section("pixel_histograms", order=30, normalise=normalise)
    def render(entries: Sequence[ModelEntry], items: Items) -> Section | None: ...

Why not :class:`advlab.registry.Registry`: that one maps a name to one factory and lists names alphabetically; a
section needs two typed callables and an explicit order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: entries.py imports this package (through analyses.normalise)
    from advlab.report.analyses import Analysis
    from advlab.report.entries import ModelEntry
    from advlab.report.views import Section

OTHER = "other"
"""The kind of every analysis no section can draw (unknown kind, or a payload its normaliser refused)."""

Items = Sequence[tuple["ModelEntry", "Analysis"]]
"""The analyses of one kind over all models, as (model entry, analysis), models in display order."""
Normaliser = Callable[[Any], dict[str, Any]]
"""Stored payload -> normalised ``Analysis.data``; KeyError, TypeError, ValueError or IndexError if it does not fit."""
Renderer = Callable[[Sequence["ModelEntry"], Items], "Section | None"]
"""(all model entries, this kind's analyses) -> the section, or None when there is nothing to show."""


@dataclass(frozen=True)
class SectionSpec:
    """How the report draws one payload kind: ``order`` in the page, ``normalise`` and ``render``."""

    kind: str
    order: int
    normalise: Normaliser
    render: Renderer


class SectionRegistry:
    """Section specs by kind; iterated in ``order`` (the ``other`` section always last)."""

    def __init__(self) -> None:
        self._specs: dict[str, SectionSpec] = {}

    def register(self, kind: str, *, order: int, normalise: Normaliser) -> Callable[[Renderer], Renderer]:
        """Decorator on a renderer: the section of payloads of ``kind``, ``order``-th in the report."""

        def decorate(render: Renderer) -> Renderer:
            if kind in self._specs:
                raise ValueError(f"report section for kind {kind!r} is registered twice")
            clash = next((spec.kind for spec in self._specs.values() if spec.order == order), None)
            if clash is not None:
                raise ValueError(f"report sections {clash!r} and {kind!r} have the same order {order}")
            self._specs[kind] = SectionSpec(kind, order, normalise, render)
            return render

        return decorate

    def get(self, kind: str) -> SectionSpec | None:
        return self._specs.get(kind)

    def kinds(self) -> tuple[str, ...]:
        """Every registered kind in reading order."""
        return tuple(spec.kind for spec in self)

    def __contains__(self, kind: object) -> bool:
        return kind in self._specs

    def __iter__(self) -> Iterator[SectionSpec]:
        return iter(sorted(self._specs.values(), key=lambda spec: (spec.kind == OTHER, spec.order)))

    def __len__(self) -> int:
        return len(self._specs)


SECTIONS = SectionRegistry()
"""Every section of the report's analyses part; filled by importing :mod:`advlab.report.sections`."""

register_section = SECTIONS.register
