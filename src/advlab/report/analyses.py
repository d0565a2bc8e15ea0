"""Recognise the analyses stored in ``card.analyses`` and bring each to one shape the report draws.

A card's analyses are plain JSON under free names. The report identifies each by its ``"kind"`` (set by
:mod:`advlab.report.payloads`), else by its name, else by its keys (the ``to_dict()`` of the evaluation's result
classes), and normalises it. An analysis the report cannot draw is kept as kind ``"other"`` and listed as data,
never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advlab.evaluate.payloads import decode_array

# Section order in the report; "other" always last.
KINDS = (
    "single_attack", "perturbation_statistics", "pixel_histograms", "average_adversarial_grid",
    "average_perturbation_images", "adversarial_examples", "gradient_norms", "transfer", "steps_sweep",
    "sweep", "noise", "curve", "other",
)

_BY_NAME = {
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


@dataclass(frozen=True)
class Analysis:
    """One analysis of one card: its name in the card, recognised ``kind`` and normalised ``data``."""

    name: str
    kind: str
    data: dict[str, Any]
    note: str = ""


NORM_KEYS = ("l0", "l1", "l2", "linf")


def _is_norm_summary(value: Any) -> bool:
    return isinstance(value, dict) and all(key in value for key in ("mean", "std", "min", "max"))


def identify(name: str, payload: Any) -> str:
    """The kind of an analysis (see :data:`KINDS`)."""
    if not isinstance(payload, dict):
        # average_perturbation_images() returns (images, counts); stored as is it becomes a 2-list.
        pair = isinstance(payload, list) and len(payload) == 2
        matches = pair and _BY_NAME.get(name) == "average_perturbation_images"
        return "average_perturbation_images" if matches else "other"
    kind = payload.get("kind")
    if kind in KINDS:
        return kind
    if name in _BY_NAME:
        return _BY_NAME[name]
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
    if "summary" in keys or any(_is_norm_summary(payload.get(key)) for key in NORM_KEYS):
        return "perturbation_statistics"
    if {"counts", "success_rate"} <= keys:
        return "average_adversarial_grid"
    return "other"


def normalise(name: str, payload: Any) -> Analysis:
    """Identify and normalise one analysis; a payload that does not fit its kind becomes ``other`` with a note."""
    kind = identify(name, payload)
    if kind == "other":
        return Analysis(name, "other", {"value": payload})
    try:
        return Analysis(name, kind, _NORMALISERS.get(kind, dict)(payload))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return Analysis(name, "other", {"value": payload}, note=f"looks like {kind} but could not be read ({exc!r})")


def _perturbation(payload: dict[str, Any]) -> dict[str, Any]:
    # Either the payload of payloads.perturbation_payload, or perturbation_statistics() stored as is
    # ({norm: NormSummary} through to_jsonable, which adds a "class" key).
    summary = payload.get("summary") or {key: payload[key] for key in NORM_KEYS if _is_norm_summary(payload.get(key))}
    if not summary:
        raise ValueError("no norm summaries")
    clean = {norm: {stat: float(summary[norm][stat]) for stat in ("mean", "std", "min", "max")}
             for norm in NORM_KEYS if norm in summary}
    histograms = {}
    for norm, hist in (payload.get("histograms") or {}).items():
        if len(hist["edges"]) != len(hist["counts"]) + 1:
            raise ValueError(f"histogram of {norm}: edges must be one longer than counts")
        histograms[norm] = {"edges": [float(v) for v in hist["edges"]], "counts": [float(v) for v in hist["counts"]]}
    return {"summary": clean, "histograms": histograms, "n": payload.get("n")}


def _pixel(payload: dict[str, Any]) -> dict[str, Any]:
    edges, clean, adversarial = payload["edges"], payload["clean"], payload["adversarial"]
    if not (len(edges) == len(clean) + 1 == len(adversarial) + 1):
        raise ValueError("edges must be one longer than clean and adversarial")
    return {"edges": edges, "clean": clean, "adversarial": adversarial}


def _square(matrix: Any, size: int | None = None) -> list[list[float]]:
    rows = [list(row) for row in matrix]
    if not rows or any(len(row) != len(rows) for row in rows) or (size is not None and len(rows) != size):
        raise ValueError("expected a square matrix")
    return rows


def _grid(payload: dict[str, Any]) -> dict[str, Any]:
    success = _square(payload["success_rate"])
    size = len(success)
    images = payload.get("images")
    if images is not None:
        images = decode_array(images)
        if images.ndim != 5 or images.shape[:2] != (size, size):
            raise ValueError("images must be (K, K, C, H, W) with K matching success_rate")
    return {"success_rate": success, "counts": _square(payload.get("counts", success), size), "images": images,
            "classes": list(payload.get("classes") or [str(i) for i in range(size)])}


def _perturbation_images(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict):
        images, counts = payload["images"], payload.get("counts")
    else:  # the (images, counts) tuple of average_perturbation_images stored as is
        images, counts = payload
    classes = list(payload.get("classes") or []) if isinstance(payload, dict) else []
    images = decode_array(images)
    if images.ndim != 4 or (counts is not None and len(counts) != images.shape[0]):
        raise ValueError("images must be (K, C, H, W) with one count per class")
    return {"images": images, "counts": counts, "classes": classes or [str(i) for i in range(len(images))]}


def _examples(payload: dict[str, Any]) -> dict[str, Any]:
    clean = dict(payload["clean"], images=decode_array(payload["clean"]["images"]))
    size = len(clean["images"])
    rows = [dict(row, images=decode_array(row["images"])) for row in payload["rows"]]
    for row in [clean] + rows:
        if row["images"].ndim != 4 or len(row["images"]) != size or len(row["pred"]) != size:
            raise ValueError("every row must hold (N, C, H, W) images and N predictions, N as in the clean row")
    return {"clean": clean, "rows": rows, "labels": payload["labels"],
            "classes": payload.get("classes") or [str(i) for i in range(1 + max(payload["labels"]))]}


def _sweep(payload: dict[str, Any]) -> dict[str, Any]:
    values, accuracy = list(payload["values"]), list(payload["robust_accuracy"])
    if len(values) != len(accuracy):
        raise ValueError("values and robust_accuracy differ in length")
    return {"parameter": str(payload["parameter"]), "x": values, "y": accuracy,
            "y_std": list(payload.get("robust_accuracy_std") or [0.0] * len(values))}


def _noise(payload: dict[str, Any]) -> dict[str, Any]:
    stds, accuracy = list(payload["stds"]), list(payload["accuracy"])
    if len(stds) != len(accuracy):
        raise ValueError("stds and accuracy differ in length")
    return {"x": stds, "y": accuracy, "y_std": list(payload.get("accuracy_std") or [0.0] * len(stds)),
            "draws": payload.get("draws")}


def _curve(payload: dict[str, Any]) -> dict[str, Any]:
    x, y = list(payload["x"]), list(payload["y"])
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    return {"x": x, "y": y, "y_std": list(payload.get("y_std") or [0.0] * len(x)),
            "x_label": str(payload.get("x_label", "x")), "y_label": str(payload.get("y_label", "accuracy")),
            "title": str(payload.get("title", "")), "log_x": bool(payload.get("log_x", False))}


def _transfer(payload: dict[str, Any]) -> dict[str, Any]:
    names = [str(name) for name in payload["names"]]
    accuracy = _square(payload["accuracy"], len(names))
    if len(payload["clean_accuracy"]) != len(names):
        raise ValueError("clean_accuracy must have one value per model")
    return {"names": names, "accuracy": accuracy, "clean_accuracy": list(payload["clean_accuracy"])}


def _gradient(payload: dict[str, Any]) -> dict[str, Any]:
    histogram = payload.get("histogram")
    if histogram is not None and not (len(histogram["edges"]) == len(histogram["correct"]) + 1
                                      == len(histogram["incorrect"]) + 1):
        raise ValueError("histogram edges must be one longer than the counts")
    return {"norm": payload["norm"], "correct": payload["correct"], "incorrect": payload["incorrect"],
            "histogram": histogram}


def _single(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: payload.get(key) for key in ("eps", "robust_accuracy", "robust_accuracy_std", "clean_accuracy",
                                              "success_rate", "success_rate_std", "mean_norms", "median_norms",
                                              "queries_per_sample")}


_NORMALISERS = {
    "perturbation_statistics": _perturbation, "pixel_histograms": _pixel, "average_adversarial_grid": _grid,
    "average_perturbation_images": _perturbation_images, "adversarial_examples": _examples,
    "gradient_norms": _gradient, "transfer": _transfer, "steps_sweep": _sweep, "sweep": _sweep, "noise": _noise,
    "curve": _curve, "single_attack": _single,
}
