"""Compact, JSON-ready summaries of analyses, for ``card.analyses``, so a report can be drawn from cards alone.

The evaluation's result objects hold tensors (mean images, per-sample norms) that their ``to_dict()`` leaves
out. The functions here keep what the report's figures need, small: per-sample values as histograms, and images
as an *encoded array* ``{"encoding": "uint8-base64", "shape", "low", "high", "data"}``: every value quantised
to one byte between ``low`` and ``high`` (error ≤ (high − low)/510, below what a screen shows), base64 in one
JSON string. Why not nested lists: the card is written with ``indent=2``, which puts every number of a
(10, 10, 1, 28, 28) grid on its own deeply indented line (~2.5 MB); encoded it is ~100 kB. Pass
``encoding="lists"`` for plain nested lists rounded to ``decimals`` instead; the report reads both.
Each payload carries a ``"kind"`` so the report recognises it under any name. Use them as::

    analyses = {"average_adversarial_grid": grid_payload(grid),
                "gradient_norms": gradient_norms_payload(input_gradient_norms(model, data))}
    card = build_card(model_card=meta, data=data_info, curve=curve, analyses=analyses)

Payload formats (all numbers are JSON numbers; images are (…, C, H, W) nested lists in [0, 1] pixel units):

* ``perturbation_statistics``: ``summary`` {norm: {mean, std, min, max}}, ``histograms`` {norm: {edges, counts}}
* ``average_adversarial_grid``: ``images`` (K, K, C, H, W), ``counts`` (K, K), ``success_rate`` (K, K), ``classes``
* ``average_perturbation_images``: ``images`` (K, C, H, W) of mean ``adv - x``, ``counts`` (K,), ``classes``
* ``adversarial_examples``: ``clean`` {images, pred, confidence}, ``labels``, ``rows`` [{eps, images, pred,
  confidence}], ``classes``
* ``gradient_norms``: ``norm``, ``correct``/``incorrect`` summaries, ``histogram`` {edges, correct, incorrect}
* ``curve``: ``x``, ``y``, optional ``y_std``, ``x_label``, ``y_label``, ``title``, ``log_x`` (e.g. accuracy vs σ_N²)

Results whose ``to_dict()`` is already complete (PixelHistogram, TransferMatrix, SweepResult, NoiseCurve, an
EpsilonResult of C&W or ZOO) go into ``analyses`` as they are.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab.attacks.base import Attack, frozen_eval, perturbation_norms
from advlab.errors import InputError

NORMS = ("l0", "l1", "l2", "linf")
ENCODING = "uint8-base64"
ENCODINGS = ("uint8", "lists")


def rounded(values: torch.Tensor, decimals: int = 3) -> Any:
    """A tensor as nested lists of floats rounded to ``decimals``."""
    scale = 10.0 ** decimals
    return (torch.round(values.detach().double().cpu() * scale) / scale).tolist()


def encode_array(values: torch.Tensor) -> dict[str, Any]:
    """A float tensor as one byte per value between its min and max, base64 (see the module docstring)."""
    array = values.detach().double().cpu().numpy()
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    span = high - low
    scaled = np.zeros(array.shape) if span == 0 else (array - low) / span * 255
    data = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return {"encoding": ENCODING, "shape": list(array.shape), "low": low, "high": high,
            "data": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(stored: Any) -> np.ndarray:
    """The float array of :func:`encode_array`'s dict, or of nested lists; ValueError when it is neither."""
    if isinstance(stored, dict):
        if stored.get("encoding") != ENCODING:
            raise ValueError(f"unknown array encoding {stored.get('encoding')!r}")
        shape = tuple(int(n) for n in stored["shape"])
        raw = np.frombuffer(base64.b64decode(stored["data"], validate=True), dtype=np.uint8)
        if raw.size != math.prod(shape):
            raise ValueError(f"encoded array has {raw.size} values for shape {shape}")
        return float(stored["low"]) + raw.reshape(shape).astype(np.float64) / 255 * (
            float(stored["high"]) - float(stored["low"]))
    array = np.asarray(stored, dtype=np.float64)
    if array.dtype == object:
        raise ValueError("nested lists of unequal lengths")
    return array


def _images(values: torch.Tensor, encoding: str, decimals: int) -> Any:
    if encoding not in ENCODINGS:
        raise InputError(f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    return encode_array(values) if encoding == "uint8" else rounded(values, decimals)


def _classes(classes: Sequence[str] | None, count: int) -> list[str]:
    if classes is None:
        return [str(index) for index in range(count)]
    if len(classes) != count:
        raise InputError(f"got {len(classes)} class names for {count} classes; pass one name per class")
    return [str(name) for name in classes]


def _histogram(values: torch.Tensor, edges: torch.Tensor) -> list[int]:
    """Counts of ``values`` per bin ``[edges[i], edges[i+1])`` (the last bin includes its right edge)."""
    index = torch.bucketize(values.double(), edges.double(), right=True) - 1
    index = index.clamp(0, len(edges) - 2)
    return torch.bincount(index, minlength=len(edges) - 1).tolist()


def perturbation_payload(
    x: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor | None = None, *, bins: int = 30
) -> dict[str, Any]:
    """L0/L1/L2/L∞ norms of ``adv - x`` (N, C, H, W): mean/std/min/max and a histogram per norm.

    ``mask`` (N,) bool selects the points described, e.g. ``result.success`` for successful examples only.
    """
    if x.shape != adv.shape or x.dim() != 4 or x.shape[0] == 0:
        raise InputError(f"clean and adversarial images must be non-empty (N, C, H, W) tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(adv.shape)}")
    if bins < 1:
        raise InputError(f"bins must be >= 1, got {bins}")
    norms = perturbation_norms(adv - x)
    if mask is not None:
        norms = {name: values[mask.to(values.device).bool()] for name, values in norms.items()}
    summary, histograms = {}, {}
    for name in NORMS:
        values = norms[name].double().cpu()
        if values.numel() == 0:
            raise InputError("no point selected by the mask: there is nothing to summarise")
        low, high = float(values.min()), float(values.max())
        if high <= low:  # all equal: one bin around the value keeps the plot meaningful
            low, high = low - 0.5 * max(abs(low), 1e-3), high + 0.5 * max(abs(high), 1e-3)
        edges = torch.linspace(low, high, bins + 1, dtype=torch.float64)
        summary[name] = {"mean": float(values.mean()), "std": float(values.std()) if values.numel() > 1 else 0.0,
                         "min": float(values.min()), "max": float(values.max())}
        histograms[name] = {"edges": edges.tolist(), "counts": _histogram(values, edges)}
    return {"kind": "perturbation_statistics", "n": int(norms["l2"].numel()), "summary": summary,
            "histograms": histograms}


def grid_payload(grid: Any, *, classes: Sequence[str] | None = None, encoding: str = "uint8",
                 decimals: int = 3) -> dict[str, Any]:
    """An ``AverageAdversarialGrid`` with its (K, K, C, H, W) mean images kept (encoded, or lists rounded)."""
    images = grid.images
    if images.dim() != 5 or images.shape[0] != images.shape[1]:
        raise InputError(f"the grid's images must be (K, K, C, H, W), got {tuple(images.shape)}")
    return {"kind": "average_adversarial_grid", "classes": _classes(classes, images.shape[0]),
            "images": _images(images, encoding, decimals), "counts": grid.counts.tolist(),
            "success_rate": rounded(grid.success_rate, 4)}


def average_perturbation_payload(
    images: torch.Tensor, counts: torch.Tensor, *, classes: Sequence[str] | None = None, encoding: str = "uint8",
    decimals: int = 4,
) -> dict[str, Any]:
    """The output of ``average_perturbation_images``: mean ``adv - x`` per source class (K, C, H, W), counts (K,)."""
    if images.dim() != 4 or counts.shape != (images.shape[0],):
        raise InputError(f"expected images (K, C, H, W) and counts (K,), got {tuple(images.shape)} and "
                         f"{tuple(counts.shape)}")
    return {"kind": "average_perturbation_images", "classes": _classes(classes, images.shape[0]),
            "images": _images(images, encoding, decimals), "counts": counts.tolist()}


def gradient_norms_payload(result: Any, *, bins: int = 30) -> dict[str, Any]:
    """A ``GradientNorms`` summary plus histograms of correct vs incorrect points on shared log-spaced bins."""
    norms = result.norms.double().cpu()
    correct = result.correct.cpu().bool()
    payload = result.to_dict() | {"kind": "gradient_norms"}
    positive = norms[norms > 0]
    if positive.numel():
        low, high = float(positive.min()), float(positive.max())
        if high <= low:
            low, high = low / 2, high * 2
        # Norms span orders of magnitude (correct points ≪ misclassified ones): log-spaced bins show both.
        edges = torch.logspace(math.log10(low), math.log10(high), bins + 1, dtype=torch.float64)
        payload["histogram"] = {"edges": edges.tolist(), "log": True,
                                "correct": _histogram(norms[correct & (norms > 0)], edges),
                                "incorrect": _histogram(norms[~correct & (norms > 0)], edges),
                                "zero": int((norms == 0).sum())}
    return payload


def adversarial_examples_payload(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Attack,
    epsilons: Sequence[float],
    *,
    count: int = 8,
    classes: Sequence[str] | None = None,
    encoding: str = "uint8",
    decimals: int = 3,
) -> dict[str, Any]:
    """Attack the first ``count`` points at each ε and keep images, predicted labels and confidences.

    ``attack`` must have an ``eps`` field; it is replaced per ε. Confidence = softmax probability of the
    predicted class. The model is left in the mode it came in (the attack and ``frozen_eval`` restore it).
    """
    if not attack.is_bounded():
        raise InputError(f"{type(attack).__name__} has no eps setting; pass an attack with an ε budget")
    if not epsilons:
        raise InputError("pass at least one epsilon")
    x, y = x[:count], y[:count]

    def predict(images: torch.Tensor) -> tuple[list[int], list[float]]:
        with frozen_eval(model), torch.no_grad():
            probs = model(images).float().softmax(dim=-1)
        confidence, pred = probs.max(dim=-1)
        return pred.cpu().tolist(), [round(float(c), 4) for c in confidence]

    pred, confidence = predict(x)
    with frozen_eval(model), torch.no_grad():
        num_classes = int(model(x[:1]).shape[-1])
    rows = []
    for eps in epsilons:
        adv = attack.at(float(eps))(model, x, y).adv
        adv_pred, adv_confidence = predict(adv)
        rows.append({"eps": float(eps), "norm": attack.norm.value, "images": _images(adv, encoding, decimals),
                     "pred": adv_pred, "confidence": adv_confidence})
    return {"kind": "adversarial_examples", "classes": _classes(classes, num_classes), "labels": y.cpu().tolist(),
            "clean": {"images": _images(x, encoding, decimals), "pred": pred, "confidence": confidence}, "rows": rows}


def curve_payload(
    x: Sequence[float],
    y: Sequence[float],
    *,
    y_std: Sequence[float] | None = None,
    x_label: str,
    y_label: str = "accuracy",
    title: str = "",
    log_x: bool = False,
) -> dict[str, Any]:
    """Any measured curve (e.g. accuracy vs σ_N² of the stochastic feed-forward network). Shares in [0, 1]."""
    if len(x) != len(y) or not len(x) or (y_std is not None and len(y_std) != len(y)):
        raise InputError(f"x, y (and y_std) must be non-empty and of one length, got {len(x)} and {len(y)}")
    payload = {"kind": "curve", "x": [float(v) for v in x], "y": [float(v) for v in y], "x_label": x_label,
               "y_label": y_label, "title": title, "log_x": bool(log_x)}
    if y_std is not None:
        payload["y_std"] = [float(v) for v in y_std]
    return payload
