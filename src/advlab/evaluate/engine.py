"""The one evaluation loop: attacks × radii × trials × batches, per-sample records, one resumable state.

Every evaluation of advlab is a fold over the records this module produces: a robust-accuracy curve
(:mod:`advlab.evaluate.robustness`) reads one attack's row per ε, the worst-case cascade
(:mod:`advlab.evaluate.cascade`) reads "robust after stages 0..i", and :func:`advlab.evaluate.pipeline.evaluate_model`
reads both from a single run.

Shapes: T trials, E radii, S stages (attacks), N points. For every trial and batch the clean logits are computed
once; only clean-correct points are attacked (a misclassified point is not robust whatever the attack does).

**Schedules.** ``Schedule.EACH``: every stage attacks every point it has not fooled yet, so each stage has its own
curve (the quick and papers suites: FGSM and PGD are read side by side). ``Schedule.CASCADE``: every stage attacks
only the points no stage has fooled yet (AutoAttack, Croce & Hein 2020, arXiv:2003.01690), so the last stage costs
only what the earlier ones left.

**Radii in ascending order** (``chain=True``): an adversarial example found inside the ball of radius ε₁ lies
inside every larger ball, so a point fooled at ε₁ is fooled at ε₂ > ε₁ without attacking it again; its record at
ε₂ keeps the perturbation norms of the example found at ε₁. Each stage's curve is therefore monotone, and the worst
case at every ε is the AND of every run's per-sample robust flags at that ε and below. Under CASCADE a point any
stage fooled at a smaller ε counts as fooled from the first stage on, so "robust after stages 0..s" at ε means: no
stage ≤ s fooled it at ε, and no stage at all at a smaller ε. ``chain=False`` treats the
settings as unrelated (a sweep over attack steps).

**Randomness.** Every attack call runs under :func:`~advlab.evaluate.randomness.seeded` from
``(seed, trial, radius, stage, target rank, batch)`` alone, and the clean pass from ``(seed, trial, batch)``, so a
resumed run repeats an uninterrupted one. A randomized model gets EOT gradients and ``trials`` repetitions; its
clean prediction is drawn once per trial and batch, and a point judged fooled by one draw stays fooled (as in
AutoAttack's cascade).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, frozen_eval, require_finite_logits
from advlab.errors import InputError
from advlab.evaluate.describe import describe_attack
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, check_batch_size, model_device, model_fingerprint
from advlab.evaluate.progress import ProgressLike, ProgressReporter
from advlab.evaluate.randomness import (
    DEFAULT_EOT_SAMPLES,
    DEFAULT_TRIALS,
    detect_randomized,
    eot_samples_of,
    seeded,
    with_eot,
)
from advlab.evaluate.runner import NORMS, AttackMetrics, summarize
from advlab.evaluate.state import EvaluationState

NOT_FOOLED = -1
MISCLASSIFIED = -2


class Schedule(str, Enum):
    """Which points a stage attacks (see the module docstring)."""

    EACH = "each"
    CASCADE = "cascade"


@dataclass(frozen=True)
class EvalSettings:
    """How an evaluation runs, shared by every attack of it.

    Attributes:
        batch_size: points per attack call. device: where to run (None: the model's device).
        trials: repetitions for a randomized model (None: 5); a deterministic model always gets one.
        eot / eot_samples: for a randomized model, raise each attack's ``eot_samples`` to ``eot_samples``.
        randomized: None detects (two forward passes, or a ``stochastic = True`` declaration); a bool forces it.
        seed: every attack call is seeded from it and its coordinates. progress: a callback or a rich Progress.
    """

    batch_size: int = 256
    device: torch.device | str | None = None
    trials: int | None = None
    eot: bool = True
    eot_samples: int = DEFAULT_EOT_SAMPLES
    randomized: bool | None = None
    seed: int = 0
    progress: ProgressLike = None

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if self.trials is not None and (isinstance(self.trials, bool) or not isinstance(self.trials, int)
                                        or self.trials < 1):
            raise InputError(f"trials must be a positive integer, got {self.trials!r}")


@dataclass(frozen=True)
class Stage:
    """One attack of an evaluation and the label its rows carry.

    ``target_classes = k > 0`` runs the attack targeted at each of the k most likely wrong classes (by clean
    logit) in turn, on the points still robust, as AutoAttack's APGD-T; a point is fooled as soon as it is
    misclassified. The attack must support targeted mode.
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
class Records:
    """Per-sample outcome of an evaluation (all tensors on the CPU).

    Attributes:
        radii: per row e, the radius (None for an attack run as configured).
        stages: the stages as run (EOT applied), per row e: ``stages[e][s]``.
        correct: bool (T, N), clean-correct per trial.
        robust: bool (T, E, S, N): not fooled by stage s at radius e (or, with ``chain``, at any smaller one).
            Under CASCADE a stage never sees the points an earlier one fooled, so only :meth:`cumulative` (robust
            to stages 0..s) is a measurement there; stage 0 also carries what any stage fooled at a smaller ε.
        norms: float32 (T, E, S, 4, N): L0, L1, L2, L∞ of the example that fooled the point (0 where robust).
        queries: int64 (T, E, S): the stage's queries at that radius (points fooled at a smaller one cost none).
        adv: (N, C, H, W) of the first trial when kept: the first adversarial example found for each point
            (the clean image where none was), else None.
        randomized, trials, eot_samples: how it was evaluated. resumed_batches: batches read from a state file.
    """

    radii: tuple[float | None, ...]
    stages: tuple[tuple[Stage, ...], ...]
    schedule: Schedule
    correct: torch.Tensor
    robust: torch.Tensor
    norms: torch.Tensor
    queries: torch.Tensor
    adv: torch.Tensor | None
    randomized: bool
    trials: int
    eot_samples: int
    resumed_batches: int

    @property
    def n(self) -> int:
        return int(self.correct.shape[1])

    def cumulative(self) -> torch.Tensor:
        """bool (T, E, S, N): robust to every stage 0..s (the worst case after stage s)."""
        return self.robust.int().cummin(dim=2).values.bool()

    def worst_case(self) -> torch.Tensor:
        """bool (T, E, N): robust to every stage at radius e."""
        return self.robust.all(dim=2)

    def first_fooled_by(self, e: int, trial: int = 0) -> torch.Tensor:
        """int64 (N,): the first stage that fooled each point at radius e, NOT_FOOLED, or MISCLASSIFIED."""
        fooled = ~self.robust[trial, e]  # (S, N)
        first = torch.where(fooled.any(dim=0), fooled.int().argmax(dim=0), torch.full_like(fooled[0], NOT_FOOLED,
                                                                                             dtype=torch.int64))
        return torch.where(self.correct[trial], first.long(), torch.full_like(first.long(), MISCLASSIFIED))

    def metrics(self, e: int, s: int, *, cumulative: bool = False) -> tuple[AttackMetrics, ...]:
        """Per trial, the summary of stage s at radius e (``cumulative``: of stages 0..s together)."""
        out = []
        for trial in range(self.trials):
            if cumulative:
                robust = self.robust[trial, e, : s + 1].all(dim=0)
                fooled = ~self.robust[trial, e, : s + 1]
                first = fooled.int().argmax(dim=0)  # the stage whose example counts (0 where none fooled)
                norms = self.norms[trial, e, first, :, torch.arange(self.n)]  # (N, 4)
                queries = int(self.queries[trial, e, : s + 1].sum())
            else:
                robust = self.robust[trial, e, s]
                norms = self.norms[trial, e, s].T
                queries = int(self.queries[trial, e, s])
            out.append(summarize(self.correct[trial], robust, {name: norms[:, i] for i, name in enumerate(NORMS)},
                                 queries))
        return tuple(out)


def run_stages(
    model: nn.Module,
    data: DataLike | EvalData,
    stages: Sequence[Sequence[Stage]],
    radii: Sequence[float | None],
    *,
    schedule: Schedule = Schedule.EACH,
    chain: bool = True,
    settings: EvalSettings = EvalSettings(),
    keep_adversarial: bool = False,
    state_path: str | Path | None = None,
    model_card: dict[str, Any] | None = None,
    kind: str = "evaluation",
) -> Records:
    """Run ``stages[e][s]`` (the attack of stage s built for radius ``radii[e]``) over ``data``; see the module.

    Args:
        model: [0, 1] images -> logits; left in the mode it came in.
        data: an ImageDataset or ``(x, y)`` with x float (N, C, H, W) in [0, 1].
        stages: E rows of S stages each, the same labels in every row.
        radii: E radii in [0, 1] pixel units (None: no radius; then ``chain`` has no effect).
        chain: visit the radii in ascending order and never re-attack a point fooled at a smaller radius.
        keep_adversarial: keep the first trial's adversarial images (also in the state folder).
        state_path: JSON state file, rewritten atomically after every batch (None: in memory only).
        model_card, kind: written into the state key beside the weights' hash, the data's hash and the stages.
    """
    if not stages or not stages[0] or any(len(row) != len(stages[0]) for row in stages) or len(stages) != len(radii):
        raise InputError("run_stages needs E rows of the same S >= 1 stages and one radius per row")
    labels = [stage.label for stage in stages[0]]
    if any([stage.label for stage in row] != labels for row in stages):
        raise InputError("every row of stages must carry the same labels in the same order")
    data = as_eval_data(data)
    if len(data) == 0:
        raise InputError(f"{data.name} holds no images; check the data source, --split and --n")
    device = model_device(model, settings.device)
    randomized = settings.randomized
    if randomized is None:
        randomized = detect_randomized(model, data, device, settings.seed)
    rows: tuple[tuple[Stage, ...], ...] = tuple(tuple(row) for row in stages)
    if randomized and settings.eot:
        rows = tuple(tuple(Stage(s.label, with_eot(s.attack, settings.eot_samples), s.target_classes) for s in row)
                     for row in rows)
    n_trials = (settings.trials or DEFAULT_TRIALS) if randomized else 1
    chained = chain and all(radius is not None for radius in radii)
    order = sorted(range(len(radii)), key=lambda e: float(radii[e] or 0.0)) if chained else list(range(len(radii)))
    state = EvaluationState(state_path, {
        "kind": kind,
        "model_card": model_card,
        "model_weights": model_fingerprint(model),
        "data": {"name": data.name, "n": len(data), "sha256": data.fingerprint()},
        "stages": [[describe_attack(s.attack, s.label) | {"target_classes": s.target_classes} for s in row]
                   for row in rows],
        "radii": list(radii),
        "schedule": schedule.value,
        "chain": chained,
        "batch_size": settings.batch_size,
        "trials": n_trials,
        "seed": settings.seed,
        "keep_adversarial": keep_adversarial,
    })
    n_batches = data.num_batches(settings.batch_size)
    reporter = ProgressReporter(settings.progress, n_trials * n_batches, labels[0] if len(labels) == 1 else kind)
    per_trial: list[list[dict[str, Any]]] = []
    adv_parts: list[torch.Tensor] = []
    for trial in range(n_trials):
        records = []
        for batch_index in range(n_batches):
            key = f"t{trial}/b{batch_index}"
            keep = keep_adversarial and trial == 0
            if state.get(key) is None:
                x, y = data.batch(batch_index, settings.batch_size, device)
                fresh, adv = _attack_batch(model, rows, order, schedule, chained, x, y,
                                           coordinates=(settings.seed, trial, batch_index), keep=keep)
                state.put(key, fresh, {"adv": adv} if adv is not None else None)
            record = state.get(key)
            assert record is not None
            records.append(record)
            if keep:
                adv_parts.append(state.tensors(key)["adv"])
            reporter.advance()
        per_trial.append(records)
    return Records(
        radii=tuple(radii),
        stages=rows,
        schedule=schedule,
        correct=torch.stack([torch.tensor([v for r in records for v in r["correct"]], dtype=torch.bool)
                             for records in per_trial]),
        robust=torch.stack([torch.cat([torch.tensor(r["robust"], dtype=torch.bool).reshape(len(radii), len(labels), -1)
                                       for r in records], dim=-1) for records in per_trial]),
        norms=torch.stack([torch.cat([torch.tensor(r["norms"], dtype=torch.float32).reshape(
            len(radii), len(labels), len(NORMS), -1) for r in records], dim=-1) for records in per_trial]),
        queries=torch.stack([torch.tensor([r["queries"] for r in records], dtype=torch.int64).sum(dim=0).reshape(
            len(radii), len(labels)) for records in per_trial]),
        adv=torch.cat(adv_parts) if adv_parts else None,
        randomized=bool(randomized),
        trials=n_trials,
        eot_samples=max(eot_samples_of(s.attack) for row in rows for s in row),
        resumed_batches=state.resumed,
    )


def _attack_batch(
    model: nn.Module,
    stages: tuple[tuple[Stage, ...], ...],
    order: list[int],
    schedule: Schedule,
    chained: bool,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    coordinates: tuple[int, int, int],
    keep: bool,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """One batch through every radius and stage: its JSON record and, when ``keep``, its adversarial images."""
    seed, trial, batch_index = coordinates
    # Seeded like the attacks: a randomized model's clean draw must not depend on the batches run before it.
    with frozen_eval(model), torch.no_grad(), seeded(seed, trial, "clean", batch_index, device=x.device):
        clean_logits = require_finite_logits(model(x))
    correct = clean_logits.argmax(dim=-1) == y
    # Wrong classes ranked by clean logit, most likely first: the targets of APGD-T-style stages.
    ranked = clean_logits.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
    n_radii, n_stages, size = len(stages), len(stages[0]), x.shape[0]
    fooled = torch.zeros(n_stages, size, dtype=torch.bool, device=x.device)
    norms = torch.zeros(n_stages, len(NORMS), size, device=x.device)
    robust_out = torch.zeros(n_radii, n_stages, size, dtype=torch.bool)
    norms_out = torch.zeros(n_radii, n_stages, len(NORMS), size)
    queries_out = torch.zeros(n_radii, n_stages, dtype=torch.int64)
    adv = x.clone() if keep else None
    found = torch.zeros(size, dtype=torch.bool, device=x.device)  # an adversarial example is already kept
    for position, e in enumerate(order):
        if not chained:
            fooled.zero_()
            norms.zero_()
        elif schedule is Schedule.CASCADE and position:
            # A point any stage fooled at a smaller ε counts as fooled from the first stage on, so "robust after
            # stages 0..s" means the same at every ε (the later stages' earlier successes are not lost).
            carried = fooled.any(dim=0) & ~fooled[0]
            if carried.any():
                first = fooled[:, carried].int().argmax(dim=0)
                norms[0][:, carried] = norms[first, :, carried.nonzero().squeeze(1)].T
                fooled[0] |= carried
        for s, stage in enumerate(stages[e]):
            todo_mask = correct & ~(fooled[s] if schedule is Schedule.EACH else fooled.any(dim=0))
            for k in range(max(1, stage.target_classes)):
                if stage.target_classes and k >= ranked.shape[1] - 1:  # the last "wrong" class is the label
                    break
                todo = todo_mask.nonzero().squeeze(1)
                if todo.numel() == 0:
                    break
                target = ranked[todo, k] if stage.target_classes else None
                with seeded(seed, trial, e, s, k, batch_index, device=x.device):
                    result = stage.attack(model, x[todo], y[todo], target=target)
                queries_out[e, s] += int(result.queries)
                hit = result.adv_pred != y[todo]
                index = todo[hit]
                fooled[s, index] = True
                norms[s, :, index] = torch.stack([result.norms[name][hit].float() for name in NORMS])
                todo_mask[index] = False
                if adv is not None:
                    new = ~found[index]
                    adv[index[new]] = result.adv[hit][new].to(adv.dtype)
                    found[index] = True
            robust_out[e, s] = (correct & ~fooled[s]).cpu()
            norms_out[e, s] = norms[s].cpu()
    record = {"correct": correct.cpu().tolist(), "robust": robust_out.flatten().tolist(),
              "norms": norms_out.flatten().tolist(), "queries": queries_out.flatten().tolist()}
    return record, (adv.cpu() if adv is not None else None)
