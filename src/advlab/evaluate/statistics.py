"""Statistics of adversarial perturbations, after Wang, Kunin, Pyron, "Exploring adversarial input spaces".

* :func:`perturbation_statistics`: per-sample L0/L1/L2/L∞ norms summarised as mean/std/min/max;
* :func:`pixel_histograms`: pixel-value histograms of clean vs adversarial images;
* :func:`average_perturbation_images`: the mean perturbation per source class;
* :func:`average_adversarial_grid`: the 10×10 grid of mean adversarial images, row i = source class,
  column j = target class of a targeted attack, diagonal = the clean class means.

All functions return tensors or dataclasses (plots live in ``advlab.report``) and run batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, frozen_eval, perturbation_norms
from advlab.errors import InputError
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, check_batch_size, model_device
from advlab.evaluate.progress import ProgressLike, ProgressReporter
from advlab.evaluate.randomness import seeded
from advlab.evaluate.runner import NORMS, run_attack


@dataclass(frozen=True)
class NormSummary:
    """Mean, std (n - 1), min and max of one per-sample norm, in [0, 1] pixel units (L0: changed entries)."""

    mean: float
    std: float
    min: float
    max: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max}


def _check_pair(x: torch.Tensor, adv: torch.Tensor) -> None:
    if x.shape != adv.shape or x.dim() != 4 or x.shape[0] == 0:
        raise InputError(f"clean and adversarial images must be non-empty (N, C, H, W) tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(adv.shape)}")


def perturbation_statistics(
    x: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor | None = None
) -> dict[str, NormSummary]:
    """Summaries of the L0/L1/L2/L∞ norms of ``adv - x`` (N, C, H, W), over the points where ``mask`` (N,) holds.

    Pass ``mask = result.success`` to describe only successful adversarial examples.
    """
    _check_pair(x, adv)
    norms = perturbation_norms(adv - x)
    if mask is not None:
        norms = {name: values[mask.to(values.device)] for name, values in norms.items()}
    out = {}
    for name in NORMS:
        values = norms[name].double()
        if values.numel() == 0:
            raise InputError("no point selected by the mask: there is nothing to summarise")
        std = float(values.std()) if values.numel() > 1 else 0.0
        out[name] = NormSummary(float(values.mean()), std, float(values.min()), float(values.max()))
    return out


@dataclass(frozen=True)
class PixelHistogram:
    """Histograms of pixel values: ``edges`` (bins + 1,), ``clean``/``adversarial`` (bins,) as shares summing to 1."""

    edges: torch.Tensor
    clean: torch.Tensor
    adversarial: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "clean": self.clean.tolist(), "adversarial": self.adversarial.tolist()}


def pixel_histograms(x: torch.Tensor, adv: torch.Tensor, bins: int = 50) -> PixelHistogram:
    """Pixel-value histograms over [0, 1] of clean and adversarial images (every channel pooled)."""
    _check_pair(x, adv)
    if bins < 1:
        raise InputError(f"bins must be >= 1, got {bins}")

    def share(images: torch.Tensor) -> torch.Tensor:
        counts = torch.histc(images.detach().float().cpu(), bins=bins, min=0.0, max=1.0)
        return counts / counts.sum()

    return PixelHistogram(torch.linspace(0.0, 1.0, bins + 1), share(x), share(adv))


def average_perturbation_images(
    x: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean perturbation ``adv - x`` per source class: images (K, C, H, W) and counts (K,) (zeros when absent)."""
    _check_pair(x, adv)
    delta = (adv - x).detach().float().cpu()
    labels = labels.cpu()
    sums = torch.zeros(num_classes, *x.shape[1:]).index_add_(0, labels, delta)
    counts = torch.bincount(labels, minlength=num_classes)
    return sums / counts.clamp_min(1).view(-1, 1, 1, 1), counts


@dataclass(frozen=True)
class AverageAdversarialGrid:
    """Mean adversarial images of a targeted attack, by source (row) and target (column) class.

    Attributes:
        images: (K, K, C, H, W); ``images[i, j]`` is the mean of the adversarial images of class-i points
            attacked towards class j (all attacked points, successful or not); ``images[i, i]`` is the mean clean
            image of class i.
        counts: (K, K) int64, points averaged per cell (diagonal: class sizes).
        success_rate: (K, K) share of the cell's points classified as the target (diagonal: clean accuracy).
    """

    images: torch.Tensor
    counts: torch.Tensor
    success_rate: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "success_rate": self.success_rate.tolist()}


def average_adversarial_grid(
    model: nn.Module,
    data: DataLike | EvalData,
    attack: Attack,
    *,
    num_classes: int | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: ProgressLike = None,
) -> AverageAdversarialGrid:
    """Attack every point towards every other class and average by (source, target); see the dataclass.

    Costs K - 1 targeted attacks per point: subset the data first (e.g. 20 points per class).
    """
    check_batch_size(batch_size)
    data = as_eval_data(data)
    device = model_device(model, device)
    if not type(attack).supports_targeted:
        raise InputError(f"{type(attack).__name__} has no targeted mode; the grid needs a targeted attack")
    if num_classes is None:
        x0, _ = data.batch(0, 1, device)
        with frozen_eval(model), torch.no_grad():
            num_classes = int(model(x0).shape[-1])
    labels = data.labels.cpu()
    if int(labels.max()) >= num_classes:
        raise InputError(f"labels go up to {int(labels.max())} but the model has {num_classes} classes")
    shape = tuple(data.images.shape[1:])
    sums = torch.zeros(num_classes, num_classes, *shape)
    counts = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    hits = torch.zeros(num_classes, num_classes)
    clean = data.float_images()
    sums[torch.arange(num_classes), torch.arange(num_classes)] = torch.zeros(num_classes, *shape).index_add_(
        0, labels, clean)
    class_sizes = torch.bincount(labels, minlength=num_classes)
    counts[torch.arange(num_classes), torch.arange(num_classes)] = class_sizes
    reporter = ProgressReporter(progress, num_classes, "average adversarial grid")
    for target in range(num_classes):
        index = (labels != target).nonzero().squeeze(1)
        if index.numel():
            subset = EvalData(data.images[index], data.labels[index], data.name)
            with seeded(seed, "grid", target, device=device):
                run = run_attack(model, subset, attack, target=torch.full((index.numel(),), target),
                                 batch_size=batch_size, device=device, keep_adversarial=True)
            assert run.adv is not None
            source = run.labels
            sums[:, target].index_add_(0, source, run.adv)
            counts[:, target] += torch.bincount(source, minlength=num_classes)
            hits[:, target].index_add_(0, source, (run.adv_pred == target).float())
        reporter.advance()
    with frozen_eval(model), torch.no_grad():
        predictions = torch.cat([model(x).argmax(dim=-1).cpu() for x, _ in data.batches(batch_size, device)])
    hits[torch.arange(num_classes), torch.arange(num_classes)] = torch.zeros(num_classes).index_add_(
        0, labels, (predictions == labels).float())
    denominator = counts.clamp_min(1)
    return AverageAdversarialGrid(
        images=sums / denominator.view(num_classes, num_classes, 1, 1, 1),
        counts=counts,
        success_rate=hits / denominator,
    )
