"""What an analysis is: a registered unit that computes report payloads from a model, a subset and the headline attack.

An analysis is a frozen dataclass registered with :func:`register_analysis`; ``advlab evaluate --analyses NAME``
builds it from the registry and calls :meth:`Analysis.compute` with an :class:`AnalysisContext`. It returns
``{name in card.analyses: payload}``; every payload is a JSON-ready dict carrying a ``"kind"`` that a report section
of :mod:`advlab.report.sections` draws. Adding an analysis is two files: its module here (the package imports every
module, so it registers) and, for a new kind, its section in the report.

Each analysis is one cached, seeded step of the evaluation: :meth:`Analysis.config` is what its stored result
depends on beyond the model, the data and the seed, so a rerun with the same settings reads the stored result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.data.dataset import ImageDataset
from advlab.errors import InputError
from advlab.evaluate.engine import EvalSettings
from advlab.registry import Registry


@dataclass(frozen=True)
class AnalysisContext:
    """Everything an analysis may use; built once per evaluation.

    Attributes:
        model: [0, 1] images -> logits. dataset: all evaluation points (uint8).
        x, y: the analysis subset as float (n, C, H, W) in [0, 1] and int64 (n,), on ``settings.device``.
        classes: class names. epsilons: the evaluation's radii ([0, 1] pixel units), in the order given.
        norm: the threat model. headline: the headline attack built for a radius, EOT applied where the model
            is randomized. honest: any attack with EOT applied where the model is randomized.
        settings: batch size, device, seed, trials, progress of the evaluation. state_dir: where a long analysis
            may keep a per-batch state file of its own. grid_per_class: points per class of the grid analysis.
    """

    model: nn.Module
    dataset: ImageDataset
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    epsilons: list[float]
    norm: Norm
    headline: Callable[[float], Attack]
    honest: Callable[[Attack], Attack]
    settings: EvalSettings
    state_dir: Path
    grid_per_class: int = 10

    @property
    def eps_max(self) -> float:
        return max(self.epsilons)

    @property
    def device(self) -> torch.device:
        return torch.device(self.settings.device) if self.settings.device is not None else self.x.device


class Analysis(ABC):
    """Base of every analysis (a frozen dataclass of its settings; see the module docstring)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def config(self, ctx: AnalysisContext) -> dict[str, Any]:
        """What the stored result depends on besides model, data and seed: the settings and subset size."""
        from advlab.evaluate.describe import to_jsonable

        return {"settings": to_jsonable(self), "points": int(ctx.x.shape[0])}

    @abstractmethod
    def compute(self, ctx: AnalysisContext) -> dict[str, dict[str, Any]]:
        """``{name in card.analyses: payload with a "kind"}``."""


ANALYSES: Registry[Analysis] = Registry("analysis")
A = TypeVar("A", bound=type[Analysis])


def register_analysis(name: str, *, summary: str) -> Callable[[A], A]:
    """``@register_analysis("noise", summary="...")`` on an :class:`Analysis` subclass."""

    def decorate(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, Analysis)):
            raise TypeError(f"analysis {name!r} must be an Analysis subclass")
        cls.name, cls.summary = name, summary
        ANALYSES.register(name, summary=summary, order=len(ANALYSES.names()))(cls)
        return cls

    return decorate


def analysis_names() -> list[str]:
    """Registered analyses in registration order (the order the evaluation runs them)."""
    return sorted(ANALYSES.names(), key=lambda name: ANALYSES.entry(name).info["order"])


def parse_analyses(values: list[str] | tuple[str, ...]) -> set[str]:
    """CLI helper: ``["statistics,grid", "examples"]`` or ``["all"]`` -> a set of registered analysis names."""
    names = {part.strip() for value in values for part in value.split(",") if part.strip()}
    known = analysis_names()
    if "all" in names:
        return set(known)
    unknown = names - set(known)
    if unknown:
        raise InputError(f"unknown analyses {', '.join(sorted(unknown))}; choose from {', '.join(known)} or all")
    return names
