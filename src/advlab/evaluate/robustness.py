"""Robust accuracy of a model under an attack: one setting, or a whole curve over ε in one call.

``robust_accuracy_curve(model, data, PGD(eps=0.3, steps=20), [0.05, 0.1, 0.2, 0.3])`` builds one attack per ε
with ``attack.at(e)`` (Foolbox 3's "one call, a list of ε"), runs it batched over the
data, and reports per ε: robust accuracy, success rate, mean/median perturbation norms and queries. The radii are
visited in ascending order and a point fooled at a smaller ε is not attacked again at a larger one (its example
lies inside the larger ball too), so the curve is monotone and costs only what the robust points need
(:mod:`advlab.evaluate.engine`); ``queries_per_sample`` at an ε counts the queries spent at that ε.

Randomized models (Athalye et al. 2018, arXiv:1802.00420): when two eval-mode forward passes differ, the
attack is given EOT gradients (``eot_samples``, default 10, when the attack has that field) and the whole
evaluation is repeated ``trials`` times (default 5), reporting mean ± std. Deterministic models get one trial
(repeating it would only measure the attack's random start, which is what ``restarts`` are for).
``eot=False`` keeps the attack as given, to show the naive number beside the honest one.

Resumable: with ``state_path`` every finished batch is recorded (see :mod:`advlab.evaluate.state`); rerunning
the same call skips them and returns the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack
from advlab.errors import InputError
from advlab.evaluate.describe import describe_attack
from advlab.evaluate.engine import EvalSettings, Stage, run_stages
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data
from advlab.evaluate.progress import ProgressLike
from advlab.evaluate.randomness import DEFAULT_EOT_SAMPLES, detect_randomized, mean_std
from advlab.evaluate.runner import NORMS, AttackMetrics

__all__ = ["EpsilonResult", "RobustnessCurve", "detect_randomized", "evaluate_attack", "robust_accuracy_curve"]


@dataclass(frozen=True)
class EpsilonResult:
    """One attack setting (one ε of a curve) evaluated over ``len(trials)`` trials.

    Properties give the mean over trials and the sample std (0.0 for one trial).
    """

    eps: float | None
    trials: tuple[AttackMetrics, ...]

    def _mean_std(self, name: str) -> tuple[float, float]:
        return mean_std([getattr(t, name) for t in self.trials])

    @property
    def robust_accuracy(self) -> float:
        return self._mean_std("robust_accuracy")[0]

    @property
    def robust_accuracy_std(self) -> float:
        return self._mean_std("robust_accuracy")[1]

    @property
    def clean_accuracy(self) -> float:
        return self._mean_std("clean_accuracy")[0]

    @property
    def success_rate(self) -> float:
        return self._mean_std("success_rate")[0]

    @property
    def success_rate_std(self) -> float:
        return self._mean_std("success_rate")[1]

    @property
    def queries_per_sample(self) -> float:
        return self._mean_std("queries_per_sample")[0]

    def _norm_mean(self, kind: str) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name in NORMS:
            values = [v for t in self.trials if (v := getattr(t, kind)[name]) is not None]
            out[name] = sum(values) / len(values) if values else None
        return out

    @property
    def mean_norms(self) -> dict[str, float | None]:
        """Mean perturbation norms of the successful points, averaged over trials."""
        return self._norm_mean("mean_norms")

    @property
    def median_norms(self) -> dict[str, float | None]:
        return self._norm_mean("median_norms")

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps": self.eps,
            "robust_accuracy": self.robust_accuracy,
            "robust_accuracy_std": self.robust_accuracy_std,
            "clean_accuracy": self.clean_accuracy,
            "success_rate": self.success_rate,
            "success_rate_std": self.success_rate_std,
            "mean_norms": self.mean_norms,
            "median_norms": self.median_norms,
            "queries_per_sample": self.queries_per_sample,
            "trials": [t.to_dict() for t in self.trials],
        }


@dataclass(frozen=True)
class RobustnessCurve:
    """Robust accuracy per ε of one attack, with how it was obtained.

    Attributes:
        attack: the attack as run (``describe_attack``: registry name, class, settings incl. eot_samples).
        points: one :class:`EpsilonResult` per ε, in the order given.
        randomized: whether the model was found (or declared) randomized.
        eot_samples: gradient samples the attack used (1: plain gradients).
        trials: how many times the evaluation was repeated.
        n: number of points; data_name: the data's name.
        resumed_batches: batches taken from an existing state file instead of being recomputed.
    """

    attack: dict[str, Any]
    points: tuple[EpsilonResult, ...]
    randomized: bool
    eot_samples: int
    trials: int
    n: int
    data_name: str
    resumed_batches: int = 0

    @property
    def epsilons(self) -> list[float]:
        return [float(p.eps) if p.eps is not None else math.inf for p in self.points]

    @property
    def robust_accuracy(self) -> list[float]:
        return [p.robust_accuracy for p in self.points]

    @property
    def robust_accuracy_std(self) -> list[float]:
        return [p.robust_accuracy_std for p in self.points]

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "randomized": self.randomized,
            "eot_samples": self.eot_samples,
            "trials": self.trials,
            "n": self.n,
            "data": self.data_name,
            "points": [p.to_dict() for p in self.points],
        }


def check_epsilons(epsilons: Sequence[float]) -> list[float]:
    """``epsilons`` as floats, or one InputError: none given, one that is not a number >= 0, or one given twice."""
    if isinstance(epsilons, (str, bytes)) or not isinstance(epsilons, Sequence) or not epsilons:
        raise InputError("pass at least one epsilon in [0, 1] pixel units, e.g. 0.1, 0.2, 0.3 (MNIST) or 2/255, 8/255 "
                         "(CIFAR-10)")
    for eps in epsilons:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or math.isnan(eps) or eps < 0:
            raise InputError(f"every epsilon must be a number >= 0 in [0, 1] pixel units, got {eps!r}")
    if len({float(eps) for eps in epsilons}) < len(epsilons):
        raise InputError(f"each epsilon once, please: {list(epsilons)} repeats one")
    return [float(eps) for eps in epsilons]


def robust_accuracy_curve(
    model: nn.Module,
    data: DataLike | EvalData,
    attack: Attack,
    epsilons: Sequence[float],
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    trials: int | None = None,
    eot: bool = True,
    eot_samples: int = DEFAULT_EOT_SAMPLES,
    randomized: bool | None = None,
    seed: int = 0,
    state_path: str | Path | None = None,
    model_card: dict[str, Any] | None = None,
    progress: ProgressLike = None,
) -> RobustnessCurve:
    """Robust accuracy of ``model`` under ``attack`` at every ε in ``epsilons`` (one call, batched).

    Args:
        model: [0, 1] images -> logits; left in the mode it came in.
        data: an ImageDataset or ``(x, y)`` with x float (N, C, H, W) in [0, 1].
        attack: any bounded Attack (an ``eps`` setting); one copy per ε via :meth:`Attack.at`.
        epsilons: radii in [0, 1] pixel units, e.g. ``[2/255, 4/255, 8/255]``.
        batch_size: points per attack call.
        device: where to run (default: the model's device); the data moves there one batch at a time.
        trials: repetitions for a randomized model (default 5); a deterministic model always gets one.
        eot / eot_samples: for a randomized model, raise the attack's ``eot_samples`` to this (default 10).
        randomized: skip detection and force the answer (None: detect with two forward passes, or a
            ``stochastic = True`` declaration on a submodule).
        seed: every attack call is seeded from (seed, trial, ε index, stage, batch) and the clean pass from (seed,
            trial, batch) (:mod:`advlab.evaluate.engine`); the caller's RNG is untouched.
        state_path: JSON state file for resuming an interrupted evaluation (None: no file).
        model_card: the model's card, written into the state key (the weights hash is always included).
        progress: None, a callback ``(done, total, description)`` or a rich Progress.
    """
    if not attack.is_bounded():
        raise InputError(f"{type(attack).__name__} has no eps setting, so it has no curve over ε; "
                         "use evaluate_attack(model, data, attack) instead")
    eps_list = check_epsilons(epsilons)
    settings = EvalSettings(batch_size=batch_size, device=device, trials=trials, eot=eot, eot_samples=eot_samples,
                            randomized=randomized, seed=seed, progress=progress)
    return _evaluate(model, data, [attack.at(eps) for eps in eps_list], settings=settings, chain=True,
                     state_path=state_path, model_card=model_card, kind="curve")


def evaluate_attack(
    model: nn.Module,
    data: DataLike | EvalData,
    attack: Attack,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    trials: int | None = None,
    eot: bool = True,
    eot_samples: int = DEFAULT_EOT_SAMPLES,
    randomized: bool | None = None,
    seed: int = 0,
    state_path: str | Path | None = None,
    model_card: dict[str, Any] | None = None,
    progress: ProgressLike = None,
) -> EpsilonResult:
    """One attack as configured (also unbounded ones: C&W, DeepFool, ZOO), with the same trials/EOT/state logic.

    For C&W this gives the mean L2 needed to fool (``mean_norms["l2"]``), for ZOO its success rate.
    """
    settings = EvalSettings(batch_size=batch_size, device=device, trials=trials, eot=eot, eot_samples=eot_samples,
                            randomized=randomized, seed=seed, progress=progress)
    curve = _evaluate(model, data, [attack], settings=settings, chain=False, state_path=state_path,
                      model_card=model_card, kind="single")
    return curve.points[0]


def _evaluate(
    model: nn.Module,
    data: DataLike | EvalData,
    attacks: list[Attack],
    *,
    settings: EvalSettings,
    chain: bool,
    state_path: str | Path | None,
    model_card: dict[str, Any] | None,
    kind: str,
) -> RobustnessCurve:
    """One row of the engine per attack setting: a curve over ε (``chain``), one attack, or a sweep."""
    data = as_eval_data(data)
    label = type(attacks[0]).__name__
    records = run_stages(model, data, [[Stage(label, attack)] for attack in attacks],
                         [attack.budget for attack in attacks], chain=chain, settings=settings,
                         state_path=state_path, model_card=model_card, kind=kind)
    points = tuple(EpsilonResult(row[0].attack.budget, records.metrics(e, 0)) for e, row in enumerate(records.stages))
    return RobustnessCurve(
        attack=describe_attack(records.stages[0][0].attack),
        points=points,
        randomized=records.randomized,
        eot_samples=records.eot_samples,
        trials=records.trials,
        n=len(data),
        data_name=data.name,
        resumed_batches=records.resumed_batches,
    )
