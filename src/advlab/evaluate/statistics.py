"""Statistics of adversarial perturbations, after Wang, Kunin, Pyron, "Exploring adversarial input spaces".

* :func:`perturbation_statistics`: per-sample L0/L1/L2/L∞ norms summarised as mean/std/min/max;
* :func:`pixel_histograms`: pixel-value histograms of clean vs adversarial images;
* :func:`average_perturbation_images`: the mean perturbation per source class;
* :func:`average_adversarial_grid`: the 10×10 grid of mean adversarial images, row i = source class,
  column j = target class of a targeted attack, diagonal = the clean class means (Fig. 1 of the paper);
  :func:`targeted_pairs` runs the attacks and :func:`grid_from_pairs` averages them, over every attack or over
  the successful ones only.

All functions return tensors or dataclasses (plots live in ``advlab.report``) and run batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, frozen_eval, perturbation_norms
from advlab.errors import InputError
from advlab.evaluate.inputs import (
    DataLike,
    EvalData,
    as_eval_data,
    check_batch_size,
    model_device,
)
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
class TargetedPairs:
    """Every point of a dataset attacked towards every other class: M = N·(K − 1) records, one per pair.

    Attributes:
        clean: (N, C, H, W) float images in [0, 1]; labels, clean_pred: int64 (N,).
        index: int64 (M,), the attacked point's position in ``clean``; source = ``labels[index]``.
        target: int64 (M,), the class the pair was attacked towards (never the source).
        adv: (M, C, H, W) adversarial images (box-projected); adv_pred: int64 (M,) their predicted classes.
        num_classes: K.

    A pair succeeded when ``adv_pred == target`` (:attr:`success`).
    """

    clean: torch.Tensor
    labels: torch.Tensor
    clean_pred: torch.Tensor
    index: torch.Tensor
    target: torch.Tensor
    adv: torch.Tensor
    adv_pred: torch.Tensor
    num_classes: int

    @property
    def source(self) -> torch.Tensor:
        return self.labels[self.index]

    @property
    def success(self) -> torch.Tensor:
        return self.adv_pred == self.target

    def select(self, source: int, target: int, *, successful: bool = True) -> torch.Tensor:
        """Positions (into the M pairs) of the ``source → target`` pairs, only the successful ones by default."""
        chosen = (self.source == source) & (self.target == target)
        return (chosen & self.success if successful else chosen).nonzero().squeeze(1)


def targeted_pairs(
    model: nn.Module,
    data: DataLike | EvalData,
    attack: Attack,
    *,
    num_classes: int | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: ProgressLike = None,
) -> TargetedPairs:
    """Attack every point towards each of the other K − 1 classes, one target class at a time (seeded per target).

    Costs K − 1 targeted attacks per point: subset the data first (e.g. 20 points per class).
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
    index, targets, adv, adv_pred = [], [], [], []
    reporter = ProgressReporter(progress, num_classes, "targeted pairs")
    for target in range(num_classes):
        chosen = (labels != target).nonzero().squeeze(1)
        if chosen.numel():
            subset = EvalData(data.images[chosen], data.labels[chosen], data.name)
            with seeded(seed, "grid", target, device=device):
                run = run_attack(model, subset, attack, target=torch.full((chosen.numel(),), target),
                                 batch_size=batch_size, device=device, keep_adversarial=True)
            assert run.adv is not None
            index.append(chosen)
            targets.append(torch.full((chosen.numel(),), target, dtype=torch.int64))
            adv.append(run.adv)
            adv_pred.append(run.adv_pred)
        reporter.advance()
    with frozen_eval(model), torch.no_grad():
        clean_pred = torch.cat([model(x).argmax(dim=-1).cpu() for x, _ in data.batches(batch_size, device)])
    return TargetedPairs(clean=data.float_images().cpu(), labels=labels, clean_pred=clean_pred,
                         index=torch.cat(index), target=torch.cat(targets), adv=torch.cat(adv),
                         adv_pred=torch.cat(adv_pred), num_classes=num_classes)


@dataclass(frozen=True)
class AverageAdversarialGrid:
    """Mean adversarial images of a targeted attack, by source (row) and target (column) class.

    Attributes:
        images: (K, K, C, H, W); ``images[i, j]`` is the mean of the adversarial images of class-i points
            attacked towards class j: all of them, or with ``successful_only`` only those classified as j
            (zeros where none succeeded); ``images[i, i]`` is the mean clean image of class i.
        counts: (K, K) int64, images averaged per cell (diagonal: class sizes).
        success_rate: (K, K) share of the cell's attacked points classified as the target (diagonal: clean
            accuracy).
        successes: (K, K) int64, successful attacks per cell (diagonal: correctly classified clean points);
            None when not recorded.
        successful_only: whether the off-diagonal means average successful attacks only.
    """

    images: torch.Tensor
    counts: torch.Tensor
    success_rate: torch.Tensor
    successes: torch.Tensor | None = None
    successful_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"counts": self.counts.tolist(), "success_rate": self.success_rate.tolist(),
                               "successful_only": self.successful_only}
        if self.successes is not None:
            out["successes"] = self.successes.tolist()
        return out


def grid_from_pairs(pairs: TargetedPairs, *, successful_only: bool = False) -> AverageAdversarialGrid:
    """The (source, target) grid of mean images of ``pairs``; with ``successful_only`` a cell averages only the
    attacks that reached its target (Wang et al.'s Fig. 1: "originally labeled as class i, but perturbed such
    that it would be classified as class j"). The diagonal holds the clean class means either way."""
    k, shape = pairs.num_classes, tuple(pairs.clean.shape[1:])
    diagonal = torch.arange(k)
    source, success = pairs.source, pairs.success
    averaged = success if successful_only else torch.ones_like(success)
    cell = source * k + pairs.target  # flat (row, column) index of each pair
    sums = torch.zeros(k * k, *shape).index_add_(0, cell[averaged], pairs.adv[averaged].float())
    counts = torch.bincount(cell[averaged], minlength=k * k).view(k, k)
    attempts = torch.bincount(cell, minlength=k * k).view(k, k)
    successes = torch.bincount(cell[success], minlength=k * k).view(k, k)
    sums = sums.view(k, k, *shape)
    sums[diagonal, diagonal] = torch.zeros(k, *shape).index_add_(0, pairs.labels, pairs.clean)
    class_sizes = torch.bincount(pairs.labels, minlength=k)
    counts[diagonal, diagonal] = class_sizes
    attempts[diagonal, diagonal] = class_sizes
    successes[diagonal, diagonal] = torch.bincount(pairs.labels[pairs.clean_pred == pairs.labels], minlength=k)
    return AverageAdversarialGrid(
        images=sums / counts.clamp_min(1).view(k, k, 1, 1, 1),
        counts=counts,
        success_rate=successes / attempts.clamp_min(1),
        successes=successes,
        successful_only=successful_only,
    )


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
    successful_only: bool = False,
) -> AverageAdversarialGrid:
    """Attack every point towards every other class and average by (source, target); see the dataclass.

    ``successful_only=True`` averages only the attacks that reached their target (the paper's Fig. 1 reading).
    Costs K - 1 targeted attacks per point: subset the data first (e.g. 20 points per class).
    """
    pairs = targeted_pairs(model, data, attack, num_classes=num_classes, batch_size=batch_size, device=device,
                           seed=seed, progress=progress)
    return grid_from_pairs(pairs, successful_only=successful_only)
