"""Analyses of an evaluation, one module each, registered by name (see :mod:`advlab.evaluate.analyses.base`).

Importing this package registers every analysis; the order below is the order an evaluation runs them.
"""

from advlab.evaluate.analyses import examples, gradients, grid, noise, statistics, steps  # noqa: F401 - register
from advlab.evaluate.analyses.base import (
    ANALYSES,
    Analysis,
    AnalysisContext,
    analysis_names,
    parse_analyses,
    register_analysis,
)

__all__ = ["ANALYSES", "Analysis", "AnalysisContext", "analysis_names", "parse_analyses", "register_analysis"]
