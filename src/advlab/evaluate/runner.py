"""Run one attack over a whole dataset in batches, and summarise the per-sample outcome.

Every evaluation in this package reduces to "attack these batches, keep per-sample records": robust or not,
fooled or not, perturbation norms, queries. :class:`AttackRun` holds those records for a dataset;
:class:`AttackMetrics` is the summary a curve, a cascade stage or a card reports.

Definitions (used throughout advlab's cards):
    clean_accuracy: share of points the model classifies correctly without attack.
    robust_accuracy: share of *all* points still classified correctly after the attack (a point misclassified
        when clean counts as not robust).
    success_rate: share of the *clean-correct* points the attack turned into a misclassification.
    mean/median norms: L0/L1/L2/L∞ of the perturbations of those successful points, in [0, 1] pixel units
        (None when the attack succeeded nowhere).
    queries_per_sample: the attack's own forward evaluations (single images) divided by the number of points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from advlab.attacks.base import Attack, AttackResult
from advlab.distributed import all_gather_objects, is_distributed, shard_batches
from advlab.errors import InputError
from advlab.evaluate.inputs import (
    DataLike,
    EvalData,
    as_eval_data,
    check_batch_size,
    model_device,
)
from advlab.evaluate.progress import ProgressLike, ProgressReporter

NORMS = ("l0", "l1", "l2", "linf")
TargetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batch_record(result: AttackResult) -> dict[str, Any]:
    """Per-sample outcome of one attacked batch as JSON-ready lists (what the state file stores)."""
    return {
        "correct": (result.clean_pred == result.labels).cpu().tolist(),
        "robust": (result.adv_pred == result.labels).cpu().tolist(),
        "adv_pred": result.adv_pred.cpu().tolist(),
        "norms": {name: result.norms[name].cpu().tolist() for name in NORMS},
        "queries": int(result.queries),
    }


@dataclass(frozen=True)
class AttackMetrics:
    """Summary numbers of one attack over a dataset (see the module docstring for the definitions)."""

    n: int
    clean_accuracy: float
    robust_accuracy: float
    success_rate: float
    mean_norms: dict[str, float | None]
    median_norms: dict[str, float | None]
    queries_per_sample: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "success_rate": self.success_rate,
            "mean_norms": dict(self.mean_norms),
            "median_norms": dict(self.median_norms),
            "queries_per_sample": self.queries_per_sample,
        }


@dataclass
class AttackRun:
    """Per-sample records of one attack over N points (all tensors on the CPU).

    Attributes:
        labels, clean_pred, adv_pred: int64 (N,).
        norms: ``{"l0", "l1", "l2", "linf"}`` -> float32 (N,).
        queries: total queries of the attack over the dataset.
        adv: the adversarial images (N, C, H, W) when kept, else None.
        target: target classes (N,) of a targeted run, else None.
    """

    labels: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    norms: dict[str, torch.Tensor]
    queries: int
    adv: torch.Tensor | None = None
    target: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def correct(self) -> torch.Tensor:
        return self.clean_pred == self.labels

    @property
    def robust(self) -> torch.Tensor:
        return self.adv_pred == self.labels

    @property
    def success(self) -> torch.Tensor:
        """Untargeted: the prediction changed away from the label; targeted: it became the target."""
        return self.adv_pred == self.target if self.target is not None else ~self.robust

    def metrics(self) -> AttackMetrics:
        return summarize(self.correct, self.robust, self.norms, self.queries)


def summarize(
    correct: torch.Tensor, robust: torch.Tensor, norms: dict[str, torch.Tensor], queries: int
) -> AttackMetrics:
    """:class:`AttackMetrics` from per-sample bool (N,) tensors ``correct``/``robust`` and norms (N,)."""
    n = int(correct.shape[0])
    fooled = correct & ~robust
    n_correct = int(correct.sum())

    def stat(fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float | None]:
        return {name: (float(fn(norms[name][fooled].double())) if fooled.any() else None) for name in NORMS}

    return AttackMetrics(
        n=n,
        clean_accuracy=float(correct.double().mean()),
        robust_accuracy=float(robust.double().mean()),
        success_rate=float(fooled.sum()) / n_correct if n_correct else 0.0,
        mean_norms=stat(torch.mean),
        median_norms=stat(torch.median),
        queries_per_sample=queries / n if n else 0.0,
    )


def records_to_tensors(
    records: list[dict[str, Any]]
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], int]:
    """Concatenate batch records into (correct, robust, norms, total queries)."""
    correct = torch.tensor([v for r in records for v in r["correct"]], dtype=torch.bool)
    robust = torch.tensor([v for r in records for v in r["robust"]], dtype=torch.bool)
    norms = {name: torch.tensor([v for r in records for v in r["norms"][name]], dtype=torch.float32)
             for name in NORMS}
    return correct, robust, norms, sum(int(r["queries"]) for r in records)


def run_attack(
    model: nn.Module,
    data: DataLike | EvalData,
    attack: Attack,
    *,
    target: torch.Tensor | TargetFn | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    keep_adversarial: bool = False,
    progress: ProgressLike = None,
) -> AttackRun:
    """Attack every point of ``data`` in batches and keep per-sample records.

    Args:
        target: None (untargeted), target classes (N,), or a function ``(x, y) -> target`` per batch.
        keep_adversarial: also keep the adversarial images (N, C, H, W) on the CPU.

    In a distributed run (``torchrun``; see :mod:`advlab.distributed`) this is a collective: each rank attacks
    every ``world_size``-th batch of the single-process batching and all ranks get the gathered records, in the
    original order.
    """
    check_batch_size(batch_size)
    data = as_eval_data(data)
    if len(data) == 0:
        raise InputError(f"{data.name} holds no images; check the data source, --split and --n")
    device = model_device(model, device)
    num_batches = data.num_batches(batch_size)
    distributed = is_distributed()
    mine = shard_batches(num_batches) if distributed else range(num_batches)
    reporter = ProgressReporter(progress, len(mine), f"{type(attack).__name__}")
    records: list[tuple[int, dict[str, Any]]] = []
    for index in mine:
        x, y = data.batch(index, batch_size, device)
        batch_target = None
        if callable(target):
            batch_target = target(x, y)
        elif target is not None:
            batch_target = target[index * batch_size:(index + 1) * batch_size].to(device)
        result = attack(model, x, y, target=batch_target)
        records.append((index, {
            "labels": result.labels.cpu(), "clean_pred": result.clean_pred.cpu(), "adv_pred": result.adv_pred.cpu(),
            "adv": result.adv.cpu() if keep_adversarial else None,
            "target": batch_target.cpu() if batch_target is not None else None,
            "norms": {name: result.norms[name].cpu() for name in NORMS}, "queries": int(result.queries),
        }))
        reporter.advance()
    if distributed:
        records = sorted((item for part in all_gather_objects(records) for item in part), key=lambda item: item[0])
    parts: dict[str, list[torch.Tensor]] = {key: [record[key] for _, record in records if record[key] is not None]
                                            for key in ("labels", "clean_pred", "adv_pred", "adv", "target")}
    norms = {name: [record["norms"][name] for _, record in records] for name in NORMS}
    queries = sum(record["queries"] for _, record in records)
    return AttackRun(
        labels=torch.cat(parts["labels"]),
        clean_pred=torch.cat(parts["clean_pred"]),
        adv_pred=torch.cat(parts["adv_pred"]),
        norms={name: torch.cat(values) for name, values in norms.items()},
        queries=queries,
        adv=torch.cat(parts["adv"]) if keep_adversarial else None,
        target=torch.cat(parts["target"]) if parts["target"] else None,
    )
