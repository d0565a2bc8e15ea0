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

from advlab.attacks.base import Attack, frozen_eval
from advlab.errors import InputError
from advlab.evaluate.describe import describe_attack
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, check_batch_size, model_device, model_fingerprint
from advlab.evaluate.progress import ProgressLike, ProgressReporter
from advlab.evaluate.randomness import DEFAULT_EOT_SAMPLES, DEFAULT_TRIALS, mean_std, seeded, with_eot
from advlab.evaluate.robustness import detect_randomized
from advlab.evaluate.state import EvaluationState

NOT_FOOLED = -1
MISCLASSIFIED = -2


@dataclass(frozen=True)
class CascadeStage:
    """One attack of a cascade, with the label reported for it.

    ``target_classes = k > 0`` runs the attack targeted at each of the k most likely wrong classes in turn
    (the attack must support targeted mode); 0 runs it untargeted.
    """

    label: str
    attack: Attack
    target_classes: int = 0

    def __post_init__(self) -> None:
        if self.target_classes < 0:
            raise InputError(f"target_classes must be >= 0, got {self.target_classes}")
        if self.target_classes and not type(self.attack).supports_targeted:
            raise InputError(f"{type(self.attack).__name__} has no targeted mode; set target_classes=0")


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
    check_batch_size(batch_size)
    if trials is not None and (not isinstance(trials, int) or trials < 1):
        raise InputError(f"trials must be a positive integer, got {trials!r}")
    stages = as_stages(attacks)
    data = as_eval_data(data)
    device = model_device(model, device)
    if randomized is None:
        randomized = detect_randomized(model, data, device, seed)
    if randomized and eot:
        stages = [CascadeStage(s.label, with_eot(s.attack, eot_samples), s.target_classes) for s in stages]
    n_trials = (trials or DEFAULT_TRIALS) if randomized else 1
    descriptions = tuple(describe_attack(s.attack, s.label) | {"target_classes": s.target_classes} for s in stages)
    state = EvaluationState(state_path, {
        "kind": "cascade",
        "model_card": model_card,
        "model_weights": model_fingerprint(model),
        "data": {"name": data.name, "n": len(data), "sha256": data.fingerprint()},
        "stages": descriptions,
        "batch_size": batch_size,
        "trials": n_trials,
        "seed": seed,
        "keep_adversarial": keep_adversarial,
    })
    n_batches = data.num_batches(batch_size)
    reporter = ProgressReporter(progress, n_trials * n_batches, "cascade")
    trial_accuracy, clean_accuracy = [], []
    fooled_by = torch.empty(0, dtype=torch.int64)
    adv_parts: list[torch.Tensor] = []
    queries = [0] * len(stages)
    for trial in range(n_trials):
        fooled_parts = []
        for batch_index in range(n_batches):
            key = f"t{trial}/b{batch_index}"
            keep = keep_adversarial and trial == 0
            if state.get(key) is None:
                x, y = data.batch(batch_index, batch_size, device)
                with seeded(seed, trial, batch_index, device=device):
                    batch_fooled, batch_queries, adv = _cascade_batch(model, stages, x, y)
                state.put(key, {"fooled_by": batch_fooled.tolist(), "queries": batch_queries},
                          {"adv": adv} if keep else None)
            record = state.get(key)
            assert record is not None
            fooled_parts.append(torch.tensor(record["fooled_by"], dtype=torch.int64))
            if trial == 0:
                queries = [q + int(b) for q, b in zip(queries, record["queries"])]
                if keep:
                    adv_parts.append(state.tensors(key)["adv"])
            reporter.advance()
        trial_fooled = torch.cat(fooled_parts)
        if trial == 0:
            fooled_by = trial_fooled
        clean_accuracy.append(float((trial_fooled != MISCLASSIFIED).double().mean()))
        trial_accuracy.append(tuple(
            float(((trial_fooled == NOT_FOOLED) | (trial_fooled > index)).double().mean())
            for index in range(len(stages))))
    stats = [mean_std([t[index] for t in trial_accuracy]) for index in range(len(stages))]
    return CascadeResult(
        labels=tuple(s.label for s in stages),
        attacks=descriptions,
        clean_accuracy=mean_std(clean_accuracy)[0],
        stage_robust_accuracy=tuple(m for m, _ in stats),
        stage_robust_accuracy_std=tuple(s for _, s in stats),
        trial_stage_robust_accuracy=tuple(trial_accuracy),
        fooled_by=fooled_by,
        adv=torch.cat(adv_parts) if adv_parts else None,
        queries_per_stage=tuple(queries),
        randomized=bool(randomized),
        eot_samples=max((int(getattr(s.attack, "eot_samples", 1) or 1) for s in stages), default=1),
        trials=n_trials,
        resumed_batches=state.resumed,
    )


def _cascade_batch(
    model: nn.Module, stages: list[CascadeStage], x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """One batch through every stage: (fooled_by (B,) on the CPU, queries per stage, adversarial images (B,...))."""
    with frozen_eval(model), torch.no_grad():
        clean_logits = model(x)
    fooled_by = torch.full((x.shape[0],), NOT_FOOLED, dtype=torch.int64, device=x.device)
    fooled_by[clean_logits.argmax(dim=-1) != y] = MISCLASSIFIED
    # Wrong classes ranked by clean logit, most likely first: the targets of APGD-T-style stages.
    ranked = clean_logits.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
    adv = x.clone()
    queries = []
    for index, stage in enumerate(stages):
        spent = 0
        for k in range(max(1, stage.target_classes)):
            todo = (fooled_by == NOT_FOOLED).nonzero().squeeze(1)
            if todo.numel() == 0 or (stage.target_classes and k >= ranked.shape[1] - 1):
                break
            target = ranked[todo, k] if stage.target_classes else None
            result = stage.attack(model, x[todo], y[todo], target=target)
            spent += int(result.queries)
            hit = result.adv_pred != y[todo]
            fooled_by[todo[hit]] = index
            adv[todo[hit]] = result.adv[hit]
        queries.append(spent)
    return fooled_by.cpu(), queries, adv.cpu()
