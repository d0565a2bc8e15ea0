"""Accuracy as one setting varies: attack steps (or any attack setting) and Gaussian-noise std.

* :func:`parameter_sweep` / :func:`accuracy_vs_steps`: robust accuracy with one attack setting swept via
  ``dataclasses.replace`` (same trials, EOT and state logic as :func:`robust_accuracy_curve`); a curve that
  keeps falling with more steps means the attack had not converged.
* :func:`accuracy_vs_noise`: accuracy under additive Gaussian noise ``clip(x + σ·N(0, I), 0, 1)``, the
  random-perturbation baseline that adversarial perturbations are compared with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, frozen_eval
from advlab.errors import InputError
from advlab.evaluate.engine import EvalSettings
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, check_batch_size, model_device
from advlab.evaluate.progress import ProgressLike, ProgressReporter
from advlab.evaluate.randomness import mean_std, seeded
from advlab.evaluate.robustness import EpsilonResult, _evaluate


@dataclass(frozen=True)
class SweepResult:
    """Robust accuracy per value of one attack setting (``parameter``)."""

    parameter: str
    values: tuple[Any, ...]
    points: tuple[EpsilonResult, ...]

    @property
    def robust_accuracy(self) -> list[float]:
        return [p.robust_accuracy for p in self.points]

    @property
    def robust_accuracy_std(self) -> list[float]:
        return [p.robust_accuracy_std for p in self.points]

    def to_dict(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "values": list(self.values),
                "robust_accuracy": self.robust_accuracy, "robust_accuracy_std": self.robust_accuracy_std}


def parameter_sweep(
    model: nn.Module, data: DataLike | EvalData, attack: Attack, parameter: str, values: Sequence[Any], **options: Any
) -> SweepResult:
    """Evaluate ``dataclasses.replace(attack, **{parameter: v})`` for every ``v``; ``options`` as evaluate_attack."""
    if parameter not in {f.name for f in dataclasses.fields(attack)}:
        raise InputError(f"{type(attack).__name__} has no setting {parameter!r}")
    if not values:
        raise InputError(f"pass at least one value for {parameter}")
    stages = [dataclasses.replace(attack, **{parameter: value}) for value in values]
    run_options = {"state_path": None, "model_card": None}
    setting_names = {f.name for f in dataclasses.fields(EvalSettings)}
    unknown = set(options) - setting_names - set(run_options)
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(sorted(setting_names | set(run_options)))}")
    settings = EvalSettings(**{key: value for key, value in options.items() if key in setting_names})
    run_options |= {key: value for key, value in options.items() if key in run_options}
    # Unrelated settings of one radius: no chaining (a point fooled with 5 steps is attacked again with 10).
    curve = _evaluate(model, data, stages, settings=settings, chain=False, kind=f"sweep:{parameter}", **run_options)
    return SweepResult(parameter, tuple(values), curve.points)


def accuracy_vs_steps(
    model: nn.Module, data: DataLike | EvalData, attack: Attack, steps: Sequence[int], **options: Any
) -> SweepResult:
    """Robust accuracy as a function of the attack's ``steps`` (e.g. ``[1, 5, 10, 20, 40]``)."""
    return parameter_sweep(model, data, attack, "steps", [int(s) for s in steps], **options)


@dataclass(frozen=True)
class NoiseCurve:
    """Accuracy under Gaussian noise: per std, the mean and std over ``draws`` independent draws."""

    stds: tuple[float, ...]
    accuracy: tuple[float, ...]
    accuracy_std: tuple[float, ...]
    draws: int

    def to_dict(self) -> dict[str, Any]:
        return {"stds": list(self.stds), "accuracy": list(self.accuracy), "accuracy_std": list(self.accuracy_std),
                "draws": self.draws}


def accuracy_vs_noise(
    model: nn.Module,
    data: DataLike | EvalData,
    stds: Sequence[float],
    *,
    draws: int = 1,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: ProgressLike = None,
) -> NoiseCurve:
    """Accuracy on ``clip(x + σ·N(0, I), 0, 1)`` for every σ in ``stds`` ([0, 1] pixel units), batched."""
    if not stds or any(not isinstance(s, (int, float)) or s < 0 for s in stds):
        raise InputError(f"stds must be a non-empty list of numbers >= 0, got {stds!r}")
    if draws < 1:
        raise InputError(f"draws must be >= 1, got {draws}")
    check_batch_size(batch_size)
    data = as_eval_data(data)
    device = model_device(model, device)
    reporter = ProgressReporter(progress, len(stds) * draws * data.num_batches(batch_size), "gaussian noise")
    means, spreads = [], []
    with frozen_eval(model), torch.no_grad():
        for std_index, std in enumerate(stds):
            per_draw = []
            for draw in range(draws):
                correct = 0
                for batch_index, (x, y) in enumerate(data.batches(batch_size, device)):
                    with seeded(seed, "noise", std_index, draw, batch_index, device=device):
                        noisy = (x + float(std) * torch.randn_like(x)).clamp_(0.0, 1.0)
                        correct += int((model(noisy).argmax(dim=-1) == y).sum())
                    reporter.advance()
                per_draw.append(correct / len(data))
            mean, spread = mean_std(per_draw)
            means.append(mean)
            spreads.append(spread)
    return NoiseCurve(tuple(float(s) for s in stds), tuple(means), tuple(spreads), draws)
