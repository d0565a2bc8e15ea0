"""CERTIFY over a dataset: per-image certificates, resumable, and the certified-accuracy curve.

Every image draws its noise from a generator seeded by (seed, image index) alone, and each finished image is
recorded in a crash-safe state file (:class:`advlab.evaluate.state.EvaluationState`), so a killed run resumes
where it stopped and a rerun gives identical radii.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.certify.smoothing import ABSTAIN, SmoothedClassifier, image_generator
from advlab.errors import InputError
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, model_device, model_fingerprint
from advlab.evaluate.progress import ProgressLike, ProgressReporter
from advlab.evaluate.state import EvaluationState
from advlab.precision import resolve_precision


@dataclass
class CertificationResult:
    """Per-image certificates of one CERTIFY run and its settings.

    ``records``: one dict per image, ``{"index", "label", "prediction" (−1 = abstain), "radius", "p_lower",
    "count", "correct", "seconds"}``; radii in L2 [0, 1] pixel units.
    """

    sigma: float
    n0: int
    n: int
    alpha: float
    records: list[dict[str, Any]]
    data_name: str = ""
    resumed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def certified_accuracy(self, radius: float) -> float:
        """Share of images certified correct with a radius of at least ``radius``."""
        if not self.records:
            return float("nan")
        hits = sum(1 for r in self.records if r["correct"] and r["radius"] >= radius)
        return hits / len(self.records)

    def curve(self, radii: Sequence[float]) -> list[tuple[float, float]]:
        return [(float(r), self.certified_accuracy(float(r))) for r in radii]

    @property
    def abstain_rate(self) -> float:
        return sum(r["prediction"] == ABSTAIN for r in self.records) / max(len(self.records), 1)

    def to_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha, "data": self.data_name,
                "images": len(self.records), "abstain_rate": self.abstain_rate,
                "certified_accuracy_at_0": self.certified_accuracy(0.0), "settings": self.settings,
                "records": self.records}


def certify_dataset(
    model: nn.Module, data: DataLike | EvalData, *, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
    batch_size: int = 1000, seed: int = 0, device: torch.device | str | None = None,
    state_path: str | Path | None = None, progress: ProgressLike = None, precision: str = "fp32",
    channels_last: bool = False,
) -> CertificationResult:
    """Cohen et al.'s CERTIFY on every image of ``data`` (defaults: their n0 = 100, n = 100,000, α = 0.001).

    Args:
        sigma: noise std in [0, 1] pixel units; the base model should have been trained with this noise.
        batch_size: noisy copies per forward pass. precision / channels_last: see :class:`SmoothedClassifier`.
        state_path: a JSON state file; a rerun with the same settings resumes from it (None: in memory).
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must lie in (0, 1), got {alpha}")
    data = as_eval_data(data)
    if len(data) == 0:
        raise InputError(f"{data.name} holds no images; check the data source and --subset")
    device = model_device(model, device)
    smoothed = SmoothedClassifier(model, sigma, batch_size=batch_size, precision=precision,
                                  channels_last=channels_last)
    settings = {"sigma": float(sigma), "n0": n0, "n": n, "alpha": alpha, "seed": seed,
                "precision": resolve_precision(precision, device)}
    state = EvaluationState(state_path, {
        "kind": "certify", "model_weights": model_fingerprint(model),
        "data": {"name": data.name, "n": len(data), "sha256": data.fingerprint()}, **settings})
    reporter = ProgressReporter(progress, len(data), f"certify σ={sigma:g}")
    records = []
    for index in range(len(data)):
        name = f"i{index}"
        record = state.get(name)
        if record is None:
            x, y = data.batch(index, 1, device)
            begin = time.perf_counter()
            certificate = smoothed.certify(x[0], n0, n, alpha, image_generator(seed, index, device))
            record = {"index": index, "label": int(y[0]), "prediction": certificate.prediction,
                      "radius": certificate.radius, "p_lower": certificate.p_lower, "count": certificate.count,
                      "correct": certificate.prediction == int(y[0]), "seconds": time.perf_counter() - begin}
            state.put(name, record)
        records.append(record)
        reporter.advance()
    return CertificationResult(sigma=float(sigma), n0=n0, n=n, alpha=alpha, records=records,
                               data_name=data.name, resumed=state.resumed, settings=settings)
