"""Training objectives: what ``advlab.train.fit`` minimizes, one small object per recipe.

The contract (:class:`TrainingObjective`) is

* ``__call__(model, x, y) -> loss``: a scalar tensor for a batch x float32 (N, C, H, W) in [0, 1], y int64 (N,),
  computed with the model in train mode (``fit`` sets it);
* ``describe() -> dict``: ``{"name": ..., **settings}``, written to the checkpoint card.

Two hooks (:class:`HookedObjective`) let an objective keep state across batches and epochs; ``fit`` calls both on
every objective, and :class:`ObjectiveBase` gives them no-op defaults:

* ``on_epoch_start(model, epoch)``: before each epoch (``epoch`` is 0-based), for per-epoch state (a warm-up, a
  frozen snapshot of the model to attack);
* ``on_batch_start(epochs_done)``: before each batch with the training progress *after* that batch in epochs
  (``(global_step + 1) / steps_per_epoch``, a float > 0), for schedules finer than an epoch (an ε ramp-up).

An objective written elsewhere need not subclass anything: :func:`with_hooks` gives one without the hooks (or with
only one of them) the defaults. Defenses add their objectives in ``advlab.defenses`` (adversarial training,
distillation, noise); plain training uses :class:`CrossEntropy`. ``fit`` also counts training accuracy from the
logits of any forward pass the objective makes on the batch ``x`` itself in train mode, so objectives need not
return logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from advlab.errors import InputError


@runtime_checkable
class TrainingObjective(Protocol):
    """What ``fit(objective=...)`` takes: a loss for a batch and the settings for the checkpoint card."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


#: The earlier name of :class:`TrainingObjective`.
Objective = TrainingObjective


@runtime_checkable
class EpochHook(Protocol):
    def on_epoch_start(self, model: nn.Module, epoch: int) -> None: ...


@runtime_checkable
class BatchHook(Protocol):
    def on_batch_start(self, epochs_done: float) -> None: ...


@runtime_checkable
class HookedObjective(TrainingObjective, EpochHook, BatchHook, Protocol):
    """A :class:`TrainingObjective` with both hooks: what the training loop drives (see the module docstring)."""


class ObjectiveBase:
    """No-op defaults for the hooks of :class:`HookedObjective`; objectives subclass it and override what they use."""

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Called by ``fit`` before each epoch (0-based); nothing by default."""

    def on_batch_start(self, epochs_done: float) -> None:
        """Called by ``fit`` before each batch with the progress after it, in epochs; nothing by default."""


@dataclass(frozen=True, kw_only=True)
class CrossEntropy(ObjectiveBase):
    """Mean cross-entropy of the model's logits, with optional label smoothing.

    Label smoothing (Szegedy et al., "Rethinking the Inception architecture", 2016, arXiv:1512.00567) trains on
    targets ``(1 - s)·onehot(y) + s/K``; ``s`` in [0, 1), default 0 (plain cross-entropy).

    Example::

        fit(model, train_set, config=TrainConfig(epochs=5), objective=CrossEntropy(label_smoothing=0.1))
    """

    name: ClassVar[str] = "cross_entropy"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InputError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y, label_smoothing=self.label_smoothing)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "label_smoothing": self.label_smoothing}


def check_objective(objective: object) -> None:
    """Raise InputError unless ``objective`` is callable and has ``describe()`` (:class:`TrainingObjective`)."""
    if not (callable(objective) and isinstance(objective, TrainingObjective) and callable(objective.describe)):
        raise InputError(
            f"the training objective must be callable as objective(model, x, y) -> loss and have describe(); "
            f"got {type(objective).__name__}. Use advlab.objectives.CrossEntropy() or a defense's objective."
        )


class _DefaultHooks(ObjectiveBase):
    """An objective without (some of) the hooks, with the missing ones as no-ops: see :func:`with_hooks`."""

    def __init__(self, objective: TrainingObjective) -> None:
        self.objective = objective
        self._epoch_hook = objective if isinstance(objective, EpochHook) else None
        self._batch_hook = objective if isinstance(objective, BatchHook) else None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.objective(model, x, y)

    def describe(self) -> dict[str, Any]:
        return self.objective.describe()

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        if self._epoch_hook is not None:
            self._epoch_hook.on_epoch_start(model, epoch)

    def on_batch_start(self, epochs_done: float) -> None:
        if self._batch_hook is not None:
            self._batch_hook.on_batch_start(epochs_done)


def with_hooks(objective: object) -> HookedObjective:
    """``objective`` as a :class:`HookedObjective`: itself when it has both hooks, else with no-op defaults for
    the missing ones. Raises :class:`InputError` when it is no :class:`TrainingObjective` at all."""
    check_objective(objective)
    if isinstance(objective, HookedObjective):
        return objective
    assert isinstance(objective, TrainingObjective)  # checked above; narrows the type
    return _DefaultHooks(objective)


def objective_label(objective: object) -> str:
    """The class name of ``objective`` for messages (the objective itself, not a :func:`with_hooks` adapter)."""
    inner = objective.objective if isinstance(objective, _DefaultHooks) else objective
    return type(inner).__name__
