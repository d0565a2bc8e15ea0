"""The report's analysis sections: one module per payload ``kind`` (or per group of kinds drawn alike).

Every payload in ``card.analyses`` carries a ``"kind"``; the report draws it with the section registered for that
kind (:data:`SECTIONS`, in ``order``), and lists a kind without a section under "Other analyses".

**Adding an analysis to the report is one new file** here, say ``sections/my_kind.py``, holding:

* ``normalise(payload) -> dict``: the stored payload brought to the shape the renderer reads (raise KeyError,
  TypeError, ValueError or IndexError when it does not fit: the analysis is then listed as data, with the reason);
* a renderer decorated with ``@register_section("my_kind", order=..., normalise=normalise)``, taking all model
  entries and this kind's ``(entry, analysis)`` pairs and returning a :class:`~advlab.report.views.Section`, or
  None when there is nothing to show. Build it from :mod:`advlab.report.views` (sections, figures, tables),
  :mod:`advlab.report.tables` (``Table``, ``Row``) and :mod:`advlab.report.plots` (figures as PNG bytes);

and nothing else: this package imports every module in it. ``order`` places the section among the others (10,
20, ...; "other" is always last). Section modules import ``ModelEntry`` and ``Analysis`` for annotations only
(``if TYPE_CHECKING``): :mod:`advlab.report.entries` normalises payloads through this package, so a runtime import
of it from here would be circular. A section reads the card's numbers and draws; it never runs a model.
"""

import importlib
import pkgutil

from advlab.report.sections.registry import (
    OTHER,
    SECTIONS,
    Items,
    SectionRegistry,
    SectionSpec,
    register_section,
)

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    importlib.import_module(f"{__name__}.{_module.name}")  # each section module registers itself on import

__all__ = ["OTHER", "SECTIONS", "Items", "SectionRegistry", "SectionSpec", "register_section"]
