"""Evaluation result cards: one JSON file per evaluated model (RobustBench-style, DESIGN.md §3.7).

The report and tables are rendered from cards, so a report can be rebuilt without rerunning anything. Numbers
are JSON numbers (never strings); ``null`` means "no value" (e.g. the mean norm where no attack succeeded).

Example::

    curve = robust_accuracy_curve(model, data, PGD(eps=0.3), [0.1, 0.2, 0.3])
    card = build_card(model_card=meta, data={"name": "mnist/test", "n": 1000, "seed": 0}, curve=curve)
    save_card("results/mnist_cnn.json", card)
    assert load_card("results/mnist_cnn.json") == card
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import advlab
from advlab.errors import AdvlabError
from advlab.evaluate.cascade import CascadeResult
from advlab.evaluate.checks import CheckResult
from advlab.evaluate.describe import to_jsonable
from advlab.evaluate.robustness import RobustnessCurve
from advlab.io import write_json

CARD_FORMAT = "advlab-evaluation-card"
SCHEMA_VERSION = 1


@dataclass
class EvaluationCard:
    """Everything needed to report an evaluation and to trace how it was obtained.

    Attributes:
        model: the model's card as the caller passes it (architecture, checkpoint, defense, ...).
        data: ``{"name", "n", "seed"}`` of the evaluated points.
        attacks: one dict per attack: registry ``name``, ``class``, ``norm``, ``settings`` (dataclasses.asdict).
        results: one row per ε of the curve: eps, robust_accuracy (mean over trials), robust_accuracy_std,
            clean_accuracy, success_rate, mean/median norms, queries_per_sample, per-trial numbers.
        trials: ``{"count", "randomized", "eot_samples"}``.
        cascade: the cascade summary (per-stage robust accuracy, final worst case) or None.
        checks: sanity-check results (name, status, values, message, doc).
        analyses: summaries of analyses by name (perturbation statistics, gradient norms, transfer, ...).
        seed, versions (advlab, torch, python), timestamp (ISO 8601, UTC), duration_s (seconds).
    """

    model: dict[str, Any]
    data: dict[str, Any]
    attacks: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    trials: dict[str, Any] = field(default_factory=dict)
    cascade: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    analyses: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    timestamp: str = ""
    duration_s: float = 0.0
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CARD_FORMAT,
            "schema_version": self.schema_version,
            "model": to_jsonable(self.model),
            "data": to_jsonable(self.data),
            "attacks": to_jsonable(self.attacks),
            "results": to_jsonable(self.results),
            "trials": to_jsonable(self.trials),
            "cascade": to_jsonable(self.cascade),
            "checks": to_jsonable(self.checks),
            "analyses": to_jsonable(self.analyses),
            "seed": self.seed,
            "versions": dict(self.versions),
            "timestamp": self.timestamp,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_dict(cls, raw: Any, source: str = "card") -> EvaluationCard:
        """Validate a card dict (as read from JSON); raise AdvlabError naming the first problem."""
        validate_card(raw, source)
        return cls(**{key: raw[key] for key in _FIELDS})


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "model": dict,
    "data": dict,
    "attacks": list,
    "results": list,
    "trials": dict,
    "cascade": (dict, type(None)),
    "checks": list,
    "analyses": dict,
    "seed": int,
    "versions": dict,
    "timestamp": str,
    "duration_s": (int, float),
}
_RESULT_NUMBERS = ("eps", "robust_accuracy", "robust_accuracy_std", "clean_accuracy", "success_rate")


def validate_card(raw: Any, source: str = "card") -> None:
    """Check the card's format tag, schema version, field types and that result numbers are numbers."""
    fix = "regenerate it with `advlab evaluate` or pass the right file"
    if not isinstance(raw, dict) or raw.get("format") != CARD_FORMAT:
        raise AdvlabError(f"{source} is not an advlab evaluation card (no format tag {CARD_FORMAT!r}); {fix}")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise AdvlabError(f"{source} has card schema version {version!r}, this advlab reads version "
                          f"{SCHEMA_VERSION}; {fix}")
    for key, kind in _FIELDS.items():
        if key not in raw:
            raise AdvlabError(f"{source} lacks the field {key!r}; {fix}")
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise AdvlabError(f"{source}: field {key!r} has type {type(raw[key]).__name__}; {fix}")
    for index, row in enumerate(raw["results"]):
        if not isinstance(row, dict):
            raise AdvlabError(f"{source}: results[{index}] is not an object; {fix}")
        for key in _RESULT_NUMBERS:
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise AdvlabError(f"{source}: results[{index}].{key} is {value!r}, not a number; {fix}")


def environment_versions() -> dict[str, str]:
    return {"advlab": advlab.__version__, "torch": torch.__version__, "python": platform.python_version()}


def build_card(
    *,
    model_card: dict[str, Any],
    data: dict[str, Any],
    curve: RobustnessCurve | None = None,
    cascade: CascadeResult | None = None,
    checks: list[CheckResult] | None = None,
    analyses: dict[str, Any] | None = None,
    seed: int = 0,
    duration_s: float = 0.0,
) -> EvaluationCard:
    """Assemble a card from results. ``analyses`` values may be dataclasses with ``to_dict()`` or plain dicts."""
    attacks: list[dict[str, Any]] = []
    if curve is not None:
        attacks.append(curve.attack)
    if cascade is not None:
        attacks.extend(cascade.attacks)
    summaries = {name: value.to_dict() if hasattr(value, "to_dict") else value
                 for name, value in (analyses or {}).items()}
    reference = curve or cascade
    # Everything goes through to_jsonable now, so a loaded card compares equal to the one that was saved.
    return EvaluationCard(
        model=to_jsonable(dict(model_card)),
        data=to_jsonable(dict(data)),
        attacks=to_jsonable(attacks),
        results=to_jsonable([point.to_dict() for point in curve.points] if curve is not None else []),
        trials={"count": reference.trials, "randomized": reference.randomized,
                "eot_samples": reference.eot_samples} if reference is not None else {},
        cascade=to_jsonable(cascade.to_dict()) if cascade is not None else None,
        checks=to_jsonable([check.to_dict() for check in (checks or [])]),
        analyses=to_jsonable(summaries),
        seed=int(seed),
        versions=environment_versions(),
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=float(duration_s),
    )


def save_card(path: str | Path, card: EvaluationCard) -> None:
    """Write the card as JSON, atomically (a crash leaves the old file or the new one, never half of one)."""
    write_json(path, card.to_dict())


def load_card(path: str | Path) -> EvaluationCard:
    """Read and validate a card; AdvlabError for a missing, corrupt or foreign file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdvlabError(f"evaluation card {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdvlabError(f"evaluation card {path} is corrupt or not JSON ({exc}); regenerate it with "
                          "`advlab evaluate`") from exc
    return EvaluationCard.from_dict(raw, str(path))
