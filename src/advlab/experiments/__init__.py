"""Reproductions of the five papers: TOML presets with the papers' numbers, run at a stated scale.

* :func:`run_preset` (``advlab reproduce NAME``): runs a preset, prints paper / ours / Δ, writes markdown + JSON;
* :func:`list_presets` / :func:`load_preset` (``advlab reproduce --list``): the shipped presets;
* :func:`register_experiment`: the registry of experiment functions presets name (``advlab.experiments.steps``).
"""

from advlab.experiments.presets import (
    SCALES,
    Preset,
    ReportedNumber,
    list_presets,
    load_preset,
    load_preset_file,
)
from advlab.experiments.runner import (
    EXPERIMENTS,
    ExperimentContext,
    Measurement,
    ReproductionResult,
    ResultRow,
    register_experiment,
    run_preset,
)

__all__ = [
    "EXPERIMENTS", "SCALES", "ExperimentContext", "Measurement", "Preset", "ReportedNumber", "ReproductionResult",
    "ResultRow", "list_presets", "load_preset", "load_preset_file", "register_experiment", "run_preset",
]
