"""Worst-case robust accuracy over an attack set, AutoAttack style (Croce & Hein 2020, arXiv:2003.01690).

Attacks run in order; each one only on the points that are still robust (clean-correct and not yet fooled).
A point counts as robust at the end only if every attack failed on it, so the final number is the worst case
over the set, and it is never above any single attack's robust accuracy. The first successful adversarial
example of each point is kept.

A stage may be targeted in AutoAttack's APGD-T way: ``CascadeStage(label, attack, target_classes=9)`` runs the
attack once per target, the k-th most likely wrong class of the clean logits, k = 1..9, on the points still
robust; a point is fooled as soon as it is misclassified (any class).

Randomized models: as in :mod:`advlab.evaluate.robustness`, EOT gradients and ``trials`` repetitions
(mean ± std of each stage's robust accuracy); the kept adversarial examples are those of the first trial.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack
from advlab.errors import InputError
from advlab.evaluate.describe import describe_attack
from advlab.evaluate.engine import MISCLASSIFIED, NOT_FOOLED, EvalSettings, Records, Schedule, Stage, run_stages
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data
from advlab.evaluate.progress import ProgressLike
from advlab.evaluate.randomness import DEFAULT_EOT_SAMPLES, mean_std

__all__ = ["MISCLASSIFIED", "NOT_FOOLED", "CascadeResult", "CascadeStage", "as_stages", "cascade_result",
           "run_cascade"]

#: A stage of a cascade (the engine's :class:`~advlab.evaluate.engine.Stage`).
CascadeStage = Stage


@dataclass(frozen=True)
class CascadeResult:
    """Outcome of a cascade over N points.

    Attributes:
        labels: stage labels, in order.
        attacks: each stage's attack as run (``describe_attack`` dicts, with ``target_classes``).
        clean_accuracy: share of points classified correctly (mean over trials).
        stage_robust_accuracy: robust accuracy after stages 0..i (cumulative worst case), mean over trials.
        stage_robust_accuracy_std: its sample std over trials (0.0 for one trial).
        trial_stage_robust_accuracy: per trial, the cumulative robust accuracy after each stage.
        fooled_by: int64 (N,) from the first trial: the index of the stage that first fooled the point,
            -1 (``NOT_FOOLED``) if none did, -2 (``MISCLASSIFIED``) if the clean point was already wrong.
        adv: (N, C, H, W) adversarial images of the first trial (the clean image where no attack succeeded),
            or None when not kept.
        queries_per_stage: per stage, queries spent in the first trial.
        randomized, eot_samples, trials: how it was evaluated. resumed_batches: batches read from a state file.
    """

    labels: tuple[str, ...]
    attacks: tuple[dict[str, Any], ...]
    clean_accuracy: float
    stage_robust_accuracy: tuple[float, ...]
    stage_robust_accuracy_std: tuple[float, ...]
    trial_stage_robust_accuracy: tuple[tuple[float, ...], ...]
    fooled_by: torch.Tensor
    adv: torch.Tensor | None
    queries_per_stage: tuple[int, ...]
    randomized: bool
    eot_samples: int
    trials: int
    resumed_batches: int = 0

    @property
    def robust_accuracy(self) -> float:
        """Final worst-case robust accuracy (mean over trials)."""
        return self.stage_robust_accuracy[-1]

    @property
    def robust_accuracy_std(self) -> float:
        return self.stage_robust_accuracy_std[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [
                {"label": label, "attack": attack, "robust_accuracy": acc, "robust_accuracy_std": std,
                 "newly_fooled": int((self.fooled_by == index).sum()), "queries": queries}
                for index, (label, attack, acc, std, queries) in enumerate(zip(
                    self.labels, self.attacks, self.stage_robust_accuracy, self.stage_robust_accuracy_std,
                    self.queries_per_stage))
            ],
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "robust_accuracy_std": self.robust_accuracy_std,
            "trial_stage_robust_accuracy": [list(t) for t in self.trial_stage_robust_accuracy],
            "randomized": self.randomized,
            "eot_samples": self.eot_samples,
            "trials": self.trials,
            "n": int(self.fooled_by.shape[0]),
        }


def as_stages(attacks: Sequence[Attack | CascadeStage]) -> list[CascadeStage]:
    if not attacks:
        raise InputError("a cascade needs at least one attack")
    stages = []
    for item in attacks:
        if isinstance(item, CascadeStage):
            stages.append(item)
        elif isinstance(item, Attack):
            stages.append(CascadeStage(type(item).__name__, item))
        else:
            raise InputError(f"cascade entries must be Attack or CascadeStage instances, got {type(item).__name__}")
    return stages


def run_cascade(
    model: nn.Module,
    data: DataLike | EvalData,
    attacks: Sequence[Attack | CascadeStage],
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    trials: int | None = None,
    eot: bool = True,
    eot_samples: int = DEFAULT_EOT_SAMPLES,
    randomized: bool | None = None,
    seed: int = 0,
    keep_adversarial: bool = True,
    state_path: str | Path | None = None,
    model_card: dict[str, Any] | None = None,
    progress: ProgressLike = None,
) -> CascadeResult:
    """Run ``attacks`` in order, each on the points still robust; see the module docstring.

    Arguments as :func:`advlab.evaluate.robustness.robust_accuracy_curve`; ``keep_adversarial`` keeps the
    adversarial images of the first trial (in the state folder too, so a resumed run returns them).
    """
    stages = as_stages(attacks)
    data = as_eval_data(data)
    settings = EvalSettings(batch_size=batch_size, device=device, trials=trials, eot=eot, eot_samples=eot_samples,
                            randomized=randomized, seed=seed, progress=progress)
    records = run_stages(model, data, [stages], [None], schedule=Schedule.CASCADE, settings=settings,
                         keep_adversarial=keep_adversarial, state_path=state_path, model_card=model_card,
                         kind="cascade")
    return cascade_result(records, 0)


def cascade_result(records: Records, e: int) -> CascadeResult:
    """The cascade summary of radius row ``e`` of ``records``: robust accuracy after stages 0..i, per trial."""
    stages = records.stages[e]
    cumulative = records.cumulative()[:, e]  # (T, S, N)
    trial_accuracy = [tuple(float(cumulative[t, i].double().mean()) for i in range(len(stages)))
                      for t in range(records.trials)]
    stats = [mean_std([t[i] for t in trial_accuracy]) for i in range(len(stages))]
    return CascadeResult(
        labels=tuple(s.label for s in stages),
        attacks=tuple(describe_attack(s.attack, s.label) | {"target_classes": s.target_classes} for s in stages),
        clean_accuracy=mean_std([float(c.double().mean()) for c in records.correct])[0],
        stage_robust_accuracy=tuple(m for m, _ in stats),
        stage_robust_accuracy_std=tuple(sd for _, sd in stats),
        trial_stage_robust_accuracy=tuple(trial_accuracy),
        fooled_by=records.first_fooled_by(e),
        adv=records.adv,
        queries_per_stage=tuple(int(q) for q in records.queries[0, e]),
        randomized=records.randomized,
        eot_samples=records.eot_samples,
        trials=records.trials,
        resumed_batches=records.resumed_batches,
    )
