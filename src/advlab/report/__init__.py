"""The report: evaluation cards in, a self-contained HTML page and a markdown summary out (no model is rerun).

* :func:`build_report` -> :class:`ReportPaths` (``report.html``, ``report.md``); the figures are drawn from the
  payloads in ``card.analyses`` (made by :mod:`advlab.evaluate.payloads`), so nothing here runs a model;
* one section per payload ``kind``, registered in :mod:`~advlab.report.sections` (adding an analysis to the
  report is one new file there); payloads without a kind (older cards) are recognised by
  :mod:`~advlab.report.legacy_kinds`;
* building blocks: :mod:`~advlab.report.views` (sections, figures), :mod:`~advlab.report.plots` (matplotlib Agg ->
  PNG bytes), :mod:`~advlab.report.tables`, :mod:`~advlab.report.html`, :mod:`~advlab.report.markdown`, and
  :mod:`~advlab.report.console` (the terminal summary of a card).
"""

from advlab.report.build import DEFAULT_TITLE, ReportPaths, build_report

__all__ = ["DEFAULT_TITLE", "ReportPaths", "build_report"]
