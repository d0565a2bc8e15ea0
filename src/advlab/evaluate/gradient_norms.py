"""Input-gradient norms per example, split by whether the model classifies the example correctly.

After "CNNs and adversarial examples" (Figs. 4-6): the norm of ∇ₓ CE(f(x), y) is typically small on correctly
classified points and large on misclassified ones; a defense that shrinks it everywhere (or zeroes it) shows
up here. Norms are of the gradient with respect to [0, 1] pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import frozen_eval
from advlab.errors import InputError
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, check_batch_size, model_device
from advlab.evaluate.progress import ProgressLike, ProgressReporter

GRADIENT_NORMS = {"l1": 1.0, "l2": 2.0, "linf": float("inf")}


@dataclass(frozen=True)
class GradientNorms:
    """Per-example input-gradient norms (N,) and correctness (N,) bool, with summaries per group."""

    norms: torch.Tensor
    correct: torch.Tensor
    norm: str

    def _summary(self, values: torch.Tensor) -> dict[str, float | int | None]:
        values = values.double()
        if values.numel() == 0:
            return {"n": 0, "mean": None, "median": None, "std": None}
        return {"n": int(values.numel()), "mean": float(values.mean()), "median": float(values.median()),
                "std": float(values.std()) if values.numel() > 1 else 0.0}

    @property
    def correct_norms(self) -> torch.Tensor:
        return self.norms[self.correct]

    @property
    def incorrect_norms(self) -> torch.Tensor:
        return self.norms[~self.correct]

    def to_dict(self) -> dict[str, Any]:
        return {"norm": self.norm, "correct": self._summary(self.correct_norms),
                "incorrect": self._summary(self.incorrect_norms)}


def input_gradient_norms(
    model: nn.Module,
    data: DataLike | EvalData,
    *,
    norm: str = "l2",
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: ProgressLike = None,
) -> GradientNorms:
    """‖∇ₓ CE(f(x), y)‖ (``norm`` in l1/l2/linf) for every example, batched, in eval mode."""
    if norm not in GRADIENT_NORMS:
        raise InputError(f"norm must be one of {', '.join(GRADIENT_NORMS)}, got {norm!r}")
    check_batch_size(batch_size)
    data = as_eval_data(data)
    device = model_device(model, device)
    reporter = ProgressReporter(progress, data.num_batches(batch_size), "input gradients")
    norms, correct = [], []
    with frozen_eval(model):
        for x, y in data.batches(batch_size, device):
            x = x.requires_grad_(True)
            with torch.enable_grad():
                logits = model(x)
                # Summed loss: examples are independent, so each x_i receives exactly its own gradient.
                (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
            norms.append(grad.flatten(1).norm(p=GRADIENT_NORMS[norm], dim=1).cpu())
            correct.append((logits.argmax(dim=-1) == y).cpu())
            reporter.advance()
    return GradientNorms(torch.cat(norms), torch.cat(correct), norm)
