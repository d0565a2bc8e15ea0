"""Training objectives: what ``advlab.train.fit`` minimizes, one small object per recipe.

An objective is any object with

* ``__call__(model, x, y) -> loss``: a scalar tensor for a batch x float32 (N, C, H, W) in [0, 1], y int64 (N,),
  computed with the model in train mode (``fit`` sets it);
* ``describe() -> dict``: ``{"name": ..., **settings}``, written to the checkpoint card;
* optionally ``on_epoch_start(model, epoch)``: called by ``fit`` before each epoch (``epoch`` is 0-based), for
  objectives that keep per-epoch state (a warm-up, a frozen snapshot of the model to attack);
* optionally ``on_batch_start(epochs_done)``: called by ``fit`` before each batch with the training progress
  *after* that batch in epochs (``(global_step + 1) / steps_per_epoch``, a float > 0), for schedules finer than
  an epoch (an ε ramp-up).

Defenses add their objectives in ``advlab.defenses`` (adversarial training, distillation, noise); plain training
uses :class:`CrossEntropy`. ``fit`` also counts training accuracy from the logits of any forward pass the objective
makes on the batch ``x`` itself in train mode, so objectives need not return logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from advlab.errors import InputError


@runtime_checkable
class Objective(Protocol):
    """The protocol every training objective follows (see the module docstring)."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class CrossEntropy:
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


def check_objective(objective: Any) -> None:
    """Raise InputError unless ``objective`` is callable and has ``describe()`` (the protocol above)."""
    if not callable(objective) or not callable(getattr(objective, "describe", None)):
        raise InputError(
            f"the training objective must be callable as objective(model, x, y) -> loss and have describe(); "
            f"got {type(objective).__name__}. Use advlab.objectives.CrossEntropy() or a defense's objective."
        )


def start_batch(objective: Any, epochs_done: float) -> None:
    """Call the objective's optional ``on_batch_start(epochs_done)`` hook (progress after this batch, in epochs)."""
    hook = getattr(objective, "on_batch_start", None)
    if hook is not None:
        hook(epochs_done)


def start_epoch(objective: Any, model: nn.Module, epoch: int) -> None:
    """Call the objective's optional ``on_epoch_start(model, epoch)`` hook (``epoch`` 0-based)."""
    hook = getattr(objective, "on_epoch_start", None)
    if hook is not None:
        hook(model, epoch)
