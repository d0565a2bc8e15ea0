"""Guess the kind of a payload WITHOUT a ``"kind"``: only for cards written by older versions of advlab.

Every payload the evaluation stores now carries its ``"kind"`` (see :mod:`advlab.report.sections`), and
:func:`advlab.report.analyses.identify` uses it first. Older cards stored some analyses raw, under free names: the
``to_dict()`` of the evaluation's result classes, or a tuple. For those, the kind is guessed from the analysis'
name (:data:`KIND_BY_NAME`), else from the payload's keys. Do not extend this for new analyses: give their
payloads a ``"kind"`` instead.
"""

from __future__ import annotations

from typing import Any

from advlab.report.sections import OTHER
from advlab.report.sections.perturbation_statistics import NORM_KEYS, is_norm_summary

KIND_BY_NAME = {
    "perturbation_statistics": "perturbation_statistics",
    "pixel_histograms": "pixel_histograms",
    "pixel_histogram": "pixel_histograms",
    "average_adversarial_grid": "average_adversarial_grid",
    "average_perturbation_images": "average_perturbation_images",
    "adversarial_examples": "adversarial_examples",
    "gradient_norms": "gradient_norms",
    "input_gradient_norms": "gradient_norms",
    "transfer": "transfer",
    "transfer_matrix": "transfer",
    "accuracy_vs_steps": "steps_sweep",
    "accuracy_vs_noise": "noise",
}
"""The names older versions stored analyses under, and their kinds."""


def legacy_kind(name: str, payload: Any) -> str:
    """The kind of a payload without ``"kind"``, from its name or its keys; ``"other"`` when neither tells."""
    if not isinstance(payload, dict):
        # average_perturbation_images() returns (images, counts); stored as is it becomes a 2-list.
        pair = isinstance(payload, list) and len(payload) == 2
        matches = pair and KIND_BY_NAME.get(name) == "average_perturbation_images"
        return "average_perturbation_images" if matches else OTHER
    if name in KIND_BY_NAME:
        return KIND_BY_NAME[name]
    keys = set(payload)
    if {"edges", "clean", "adversarial"} <= keys:
        return "pixel_histograms"
    if {"names", "accuracy", "clean_accuracy"} <= keys:
        return "transfer"
    if {"parameter", "values", "robust_accuracy"} <= keys:
        return "steps_sweep" if payload["parameter"] == "steps" else "sweep"
    if {"stds", "accuracy"} <= keys:
        return "noise"
    if {"success_rate", "mean_norms", "robust_accuracy"} <= keys:
        return "single_attack"  # an EpsilonResult: C&W's mean L2 to fool, ZOO's success rate, ...
    if {"correct", "incorrect", "norm"} <= keys:
        return "gradient_norms"
    if {"x", "y"} <= keys:
        return "curve"
    if "summary" in keys or any(is_norm_summary(payload.get(key)) for key in NORM_KEYS):
        return "perturbation_statistics"
    if {"counts", "success_rate"} <= keys:
        return "average_adversarial_grid"
    return OTHER
