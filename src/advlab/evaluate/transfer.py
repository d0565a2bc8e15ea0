"""Transferability of adversarial examples between models (Papernot et al. 2016, arXiv:1605.07277).

Row i = the source model the attack was run on (white-box), column j = the target model evaluated on those
adversarial examples. The diagonal is the white-box robust accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, frozen_eval
from advlab.errors import InputError
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, check_batch_size, model_device
from advlab.evaluate.progress import ProgressLike, ProgressReporter
from advlab.evaluate.randomness import seeded


@dataclass(frozen=True)
class TransferMatrix:
    """Accuracy of each target model on the adversarial examples crafted on each source model.

    Attributes:
        names: model names, the order of rows (sources) and columns (targets).
        accuracy: (S, S); ``accuracy[i, j]`` = accuracy of model j on examples crafted against model i.
        clean_accuracy: (S,) accuracy of each model on the clean points.
    """

    names: tuple[str, ...]
    accuracy: torch.Tensor
    clean_accuracy: torch.Tensor

    @property
    def success_rate(self) -> torch.Tensor:
        """(S, S) drop from clean accuracy: ``clean_accuracy[j] - accuracy[i, j]`` (can be negative)."""
        return self.clean_accuracy.view(1, -1) - self.accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "accuracy": self.accuracy.tolist(),
                "clean_accuracy": self.clean_accuracy.tolist()}


def transfer_matrix(
    models: Mapping[str, nn.Module],
    data: DataLike | EvalData,
    attack: Attack,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: ProgressLike = None,
) -> TransferMatrix:
    """Craft ``attack`` on every model and evaluate every model on the results (batched; see the dataclass)."""
    if len(models) < 1:
        raise InputError("pass at least one model (name -> model)")
    check_batch_size(batch_size)
    data = as_eval_data(data)
    names = tuple(models)
    first = next(iter(models.values()))
    device = model_device(first, device)
    size = len(names)
    correct = torch.zeros(size, size)
    clean_correct = torch.zeros(size)
    reporter = ProgressReporter(progress, data.num_batches(batch_size) * size, "transfer matrix")
    for batch_index, (x, y) in enumerate(data.batches(batch_size, device)):
        for j, target in enumerate(models.values()):
            with frozen_eval(target), torch.no_grad():
                clean_correct[j] += float((target(x).argmax(dim=-1) == y).sum())
        for i, source in enumerate(models.values()):
            with seeded(seed, "transfer", i, batch_index, device=device):
                adv = attack(source, x, y).adv
            for j, target in enumerate(models.values()):
                with frozen_eval(target), torch.no_grad():
                    correct[i, j] += float((target(adv).argmax(dim=-1) == y).sum())
            reporter.advance()
    return TransferMatrix(names, correct / len(data), clean_correct / len(data))
