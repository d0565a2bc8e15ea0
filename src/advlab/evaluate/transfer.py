"""Transferability of adversarial examples between models (Papernot et al. 2016, arXiv:1605.07277).

Row i = the source model the attack was run on (white-box), column j = the target model evaluated on those
adversarial examples. The diagonal is the white-box robust accuracy. Randomized models (PNI, input noise) make
both crafting and evaluation random: ``trials`` repeats the whole matrix with fresh draws and reports the mean and
the sample std per cell (the mean ± std over 5 trials of Rakin, He, Fan 2019, Table 5).
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
        accuracy: (S, S); ``accuracy[i, j]`` = accuracy of model j on examples crafted against model i (the mean
            over trials).
        clean_accuracy: (S,) accuracy of each model on the clean points (mean over trials).
        accuracy_std: (S, S) sample std of ``accuracy`` over the trials (zeros for one trial).
        trials: how many times the matrix was measured.
    """

    names: tuple[str, ...]
    accuracy: torch.Tensor
    clean_accuracy: torch.Tensor
    accuracy_std: torch.Tensor | None = None
    trials: int = 1

    @property
    def success_rate(self) -> torch.Tensor:
        """(S, S) drop from clean accuracy: ``clean_accuracy[j] - accuracy[i, j]`` (can be negative)."""
        return self.clean_accuracy.view(1, -1) - self.accuracy

    def to_dict(self) -> dict[str, Any]:
        out = {"names": list(self.names), "accuracy": self.accuracy.tolist(),
               "clean_accuracy": self.clean_accuracy.tolist(), "trials": self.trials}
        if self.accuracy_std is not None:
            out["accuracy_std"] = self.accuracy_std.tolist()
        return out


def transfer_matrix(
    models: Mapping[str, nn.Module],
    data: DataLike | EvalData,
    attack: Attack,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: ProgressLike = None,
    trials: int = 1,
) -> TransferMatrix:
    """Craft ``attack`` on every model and evaluate every model on the results (batched; see the dataclass).

    ``trials`` > 1 repeats the whole matrix (crafting and evaluation, each trial seeded apart) and reports the
    mean and sample std per cell; use it when a model is randomized. The attack runs as given (no EOT added).
    """
    if len(models) < 1:
        raise InputError("pass at least one model (name -> model)")
    if not isinstance(trials, int) or trials < 1:
        raise InputError(f"trials must be a positive integer, got {trials!r}")
    check_batch_size(batch_size)
    data = as_eval_data(data)
    names = tuple(models)
    first = next(iter(models.values()))
    device = model_device(first, device)
    reporter = ProgressReporter(progress, data.num_batches(batch_size) * len(names) * trials, "transfer matrix")
    runs = [_one_matrix(models, data, attack, batch_size, device, seed, trial, reporter) for trial in range(trials)]
    accuracy = torch.stack([run[0] for run in runs])
    clean = torch.stack([run[1] for run in runs])
    std = accuracy.std(dim=0, unbiased=True) if trials > 1 else torch.zeros_like(accuracy[0])
    return TransferMatrix(names, accuracy.mean(dim=0), clean.mean(dim=0), accuracy_std=std, trials=trials)


def _one_matrix(models: Mapping[str, nn.Module], data: EvalData, attack: Attack, batch_size: int,
                device: torch.device, seed: int, trial: int, reporter: ProgressReporter
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One trial: (S, S) transfer accuracy and (S,) clean accuracy."""
    size = len(models)
    correct = torch.zeros(size, size)
    clean_correct = torch.zeros(size)
    # Trial 0 keeps the seeds of a single-trial matrix, so adding trials never changes the first measurement.
    tag = () if trial == 0 else (trial,)
    for batch_index, (x, y) in enumerate(data.batches(batch_size, device)):
        with seeded(seed, "transfer-clean", batch_index, *tag, device=device):
            for j, target in enumerate(models.values()):
                with frozen_eval(target), torch.no_grad():
                    clean_correct[j] += float((target(x).argmax(dim=-1) == y).sum())
        for i, source in enumerate(models.values()):
            with seeded(seed, "transfer", i, batch_index, *tag, device=device):
                adv = attack(source, x, y).adv
                for j, target in enumerate(models.values()):
                    with frozen_eval(target), torch.no_grad():
                        correct[i, j] += float((target(adv).argmax(dim=-1) == y).sum())
            reporter.advance()
    return correct / len(data), clean_correct / len(data)
