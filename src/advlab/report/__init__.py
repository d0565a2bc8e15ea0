"""The report: evaluation cards in, a self-contained HTML page and a markdown summary out (no model is rerun).

* :func:`build_report` -> :class:`ReportPaths` (``report.html``, ``report.md``);
* card-side helpers that keep what the figures need, compactly, in ``card.analyses``
  (:mod:`advlab.report.payloads`): :func:`perturbation_payload`, :func:`grid_payload`,
  :func:`average_perturbation_payload`, :func:`adversarial_examples_payload`, :func:`gradient_norms_payload`,
  :func:`curve_payload`;
* building blocks: :mod:`~advlab.report.plots` (matplotlib Agg -> PNG bytes), :mod:`~advlab.report.tables`,
  :mod:`~advlab.report.html`, :mod:`~advlab.report.markdown`.
"""

from advlab.report.build import DEFAULT_TITLE, ReportPaths, build_report
from advlab.report.payloads import (
    adversarial_examples_payload,
    average_perturbation_payload,
    curve_payload,
    gradient_norms_payload,
    grid_payload,
    perturbation_payload,
)

__all__ = [
    "DEFAULT_TITLE", "ReportPaths", "adversarial_examples_payload", "average_perturbation_payload", "build_report",
    "curve_payload", "gradient_norms_payload", "grid_payload", "perturbation_payload",
]
