"""Optimizer with weight-decay parameter groups, and learning-rate schedules as pure functions of the step.

A schedule here is ``lr_at(step) -> float`` for 0-based optimizer steps, computed from the config and the number
of steps per epoch. ``fit`` writes it into every parameter group before each step (scaled by the group's own
``initial_lr``). No torch scheduler object means no scheduler state to save: a resumed run needs only the step.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from advlab.errors import InputError
from advlab.training.config import TrainConfig

LRSchedule = Callable[[int], float]

# OneCycleLR's defaults (torch and fast.ai): start at lr/25, end at lr/25/1e4.
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """Split trainable parameters into a ``decay`` group and a ``no_decay`` group (weight_decay 0).

    ``no_decay`` holds the parameters matching a ``config.no_weight_decay`` pattern and, when
    ``config.decay_norm_and_bias`` is False, every 1-d parameter. Empty groups are left out; each group carries
    its ``name`` and the names of its parameters (``param_names``), for the card and for debugging.
    """
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    unused = [pattern for pattern in config.no_weight_decay
              if not any(fnmatch.fnmatchcase(name, pattern) for name, _ in named)]
    if unused:
        examples = ", ".join(name for name, _ in named[:4])
        raise InputError(f"no_weight_decay patterns {unused} match no trainable parameter; names look like "
                         f"{examples}. Fix the pattern (globs: '*alpha*', 'fc.*.bias').")

    def exempt(name: str, param: torch.Tensor) -> bool:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in config.no_weight_decay):
            return True
        return not config.decay_norm_and_bias and param.ndim <= 1

    groups: dict[str, tuple[list[torch.Tensor], list[str], float]] = {
        "decay": ([], [], config.weight_decay), "no_decay": ([], [], 0.0)}
    for name, param in named:
        params, names, _ = groups["no_decay" if exempt(name, param) else "decay"]
        params.append(param)
        names.append(name)
    return [{"name": key, "params": params, "param_names": names, "weight_decay": decay}
            for key, (params, names, decay) in groups.items() if params]


def _sgd(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def _adam(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=config.lr, betas=config.betas)


OPTIMIZERS: dict[str, Callable[[list[dict], TrainConfig], torch.optim.Optimizer]] = {"sgd": _sgd, "adam": _adam}


def build_optimizer(model: nn.Module, config: TrainConfig,
                    extra_groups: Iterable[dict] = ()) -> torch.optim.Optimizer:
    """The configured optimizer over :func:`param_groups` plus any ``extra_groups`` (torch group dicts).

    ``extra_groups`` lets a caller add parameters that live outside ``model`` (e.g. a defense's learned
    parameters) with their own settings. Every group records ``initial_lr``, the lr the schedule scales.
    """
    groups = param_groups(model, config) + [dict(group) for group in extra_groups]
    if not any(group["params"] for group in groups):
        raise InputError("the model has no trainable parameters (all have requires_grad=False); nothing to train")
    optimizer = OPTIMIZERS[config.optimizer](groups, config)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return optimizer


def lr_multiplier(config: TrainConfig, steps_per_epoch: int) -> LRSchedule:
    """``step -> factor`` by which the base lr is multiplied at 0-based optimizer step ``step``."""
    if steps_per_epoch < 1:
        raise InputError("the training set yields no batch per epoch; lower batch_size or set drop_last=False")
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    main = _SCHEDULES[config.schedule](config, steps_per_epoch, total - warmup)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return main(step - warmup, step)

    return multiplier


def _constant(config: TrainConfig, steps_per_epoch: int, steps: int) -> Callable[[int, int], float]:
    return lambda step, absolute: 1.0


def _step(config: TrainConfig, steps_per_epoch: int, steps: int) -> Callable[[int, int], float]:
    # Milestones are absolute epoch numbers (as MultiStepLR's), warm-up included.
    def factor(step: int, absolute: int) -> float:
        epoch = absolute // steps_per_epoch
        return config.gamma ** sum(1 for milestone in config.milestones if epoch >= milestone)

    return factor


def _cosine(config: TrainConfig, steps_per_epoch: int, steps: int) -> Callable[[int, int], float]:
    return lambda step, absolute: 0.5 * (1.0 + math.cos(math.pi * step / steps))


def _onecycle(config: TrainConfig, steps_per_epoch: int, steps: int) -> Callable[[int, int], float]:
    # torch.optim.lr_scheduler.OneCycleLR (two phases, cosine annealing), lr only.
    initial = 1.0 / ONECYCLE_DIV_FACTOR
    final = initial / ONECYCLE_FINAL_DIV_FACTOR
    peak_step = float(config.pct_start * steps) - 1
    last_step = float(steps - 1)

    def anneal(start: float, end: float, fraction: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)

    def factor(step: int, absolute: int) -> float:
        if step <= peak_step:
            return anneal(initial, 1.0, step / peak_step if peak_step > 0 else 1.0)
        return anneal(1.0, final, (step - peak_step) / (last_step - peak_step))

    return factor


def _triangular(config: TrainConfig, steps_per_epoch: int, steps: int) -> Callable[[int, int], float]:
    # Wong, Rice, Kolter 2020's "cyclic" lr: linear from 0 to lr at pct_start of the steps, linear back to 0.
    # Evaluated at the step's end point, as their code does: the first step already moves, the last has lr 0.
    peak = config.pct_start * steps

    def factor(step: int, absolute: int) -> float:
        t = step + 1.0
        return t / peak if t <= peak else (steps - t) / (steps - peak)

    return factor


_SCHEDULES: dict[str, Callable[[TrainConfig, int, int], Callable[[int, int], float]]] = {
    "constant": _constant, "step": _step, "cosine": _cosine, "onecycle": _onecycle, "triangular": _triangular,
}


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Set every group's lr to ``initial_lr * factor``; returns the first group's lr (for logs)."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return float(optimizer.param_groups[0]["lr"])
