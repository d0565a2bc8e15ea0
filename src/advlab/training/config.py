"""``TrainConfig``: every setting of a training run, as plain data (written to the card, read from presets)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from advlab.errors import InputError

OPTIMIZER_NAMES = ("sgd", "adam")
SCHEDULE_NAMES = ("constant", "step", "cosine", "onecycle", "triangular")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of one ``fit`` run. Learning rates per step; epochs count passes over the training set.

    Optimization:
        epochs, batch_size: number of passes and examples per step.
        optimizer: ``"sgd"`` (with ``momentum``, ``nesterov``) or ``"adam"`` (with ``betas``).
        lr: base (peak, for onecycle) learning rate. weight_decay: L2 coefficient (coupled, as torch's SGD/Adam).
        no_weight_decay: glob patterns (``fnmatch``, on full parameter names such as
            ``"layer1.0.conv1.pni_alpha_weight"``)
            of parameters trained without weight decay, e.g. ``("*pni_alpha*",)`` for PNI's noise scales. A pattern
            that matches no parameter is an error (a typo would otherwise silently decay them).
        decay_norm_and_bias: False also exempts every 1-d parameter (biases, batch-norm scales and shifts).
        grad_clip: clip the global gradient L2 norm to this value (None: no clipping).
    Schedule (a pure function of the step, so a resumed run needs only the step count):
        schedule: ``"constant"``; ``"step"`` (multiply by ``gamma`` at each epoch in ``milestones``);
            ``"cosine"`` (per step from lr to 0, after the warm-up); ``"onecycle"`` (Smith & Topin 2017,
            arXiv:1708.07120, as torch's OneCycleLR without momentum cycling: cosine from lr/25 up to lr over
            ``pct_start`` of the steps, then down to lr/25e4); ``"triangular"`` (Wong, Rice, Kolter 2020's
            "cyclic" lr for fast adversarial training: linear from 0 up to lr at ``pct_start`` of the steps,
            then linear down to 0; they peak at 2/5).
        warmup_epochs: linear warm-up from lr/steps to lr over this many epochs (not with onecycle, which has
            its own).
    Data:
        augmentation: a registered augmentation: ``"none"``, ``"cifar"`` or ``"flip_shift_brightness_contrast"``
            (see advlab.augment). val_fraction: the share of the training set the caller (CLI) holds out for
            validation; ``fit`` takes the split sets. drop_last: drop the final incomplete batch of each epoch.
    Run:
        seed: seeds the data generator (shuffling, augmentation; seed + 1) and, via ``seed_everything``, the
            global generators. precision: ``"fp32"``, ``"bf16"`` (autocast of the forward and backward passes;
            weights, optimizer and loss stay fp32) or ``"auto"`` (bf16 where the CPU has AMX/AVX512-BF16 or on
            CUDA: :mod:`advlab.precision`); the card records what ran. amp: the older switch, bf16 on CUDA only
            (the same as ``precision="bf16"`` there). channels_last: keep the model's
            weights and every training batch in NHWC memory format (values unchanged; often faster for
            convolutions with several input channels, nothing for 1-channel MNIST). compile: run the training
            passes through ``torch.compile`` (the first batches pay the compilation, minutes on a small CPU;
            needs a C++ compiler on the CPU; checkpoints and evaluation use the plain model). device: ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``; None picks CUDA when available. best_metric: epoch metric that selects
            ``best.safetensors`` (``"val_acc"``, or a key returned by ``fit``'s ``eval_hook`` such as
            ``"pgd_acc"``); names ending in ``loss`` are minimized, others maximized.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    no_weight_decay: tuple[str, ...] = ()
    decay_norm_and_bias: bool = True
    grad_clip: float | None = None
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: int = 0
    pct_start: float = 0.3
    augmentation: str = "none"
    val_fraction: float = 0.0
    drop_last: bool = False
    seed: int = 0
    amp: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str | None = None
    best_metric: str = "val_acc"

    def __post_init__(self) -> None:
        # Presets and JSON give lists; keep tuples so the config stays hashable and compares equal.
        for name in ("betas", "no_weight_decay", "milestones"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check(isinstance(self.epochs, int) and self.epochs >= 1,
               f"epochs must be an integer >= 1, got {self.epochs!r}")
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1,
               f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        _check(self.optimizer in OPTIMIZER_NAMES,
               f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, got {self.optimizer!r}")
        _check(_positive(self.lr), f"lr must be a number > 0, got {self.lr!r}")
        _check(_non_negative(self.weight_decay), f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _check(_non_negative(self.momentum) and self.momentum < 1,
               f"momentum must lie in [0, 1), got {self.momentum!r}")
        _check(not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0),
               "nesterov needs optimizer='sgd' with momentum > 0")
        _check(len(self.betas) == 2 and all(_non_negative(b) and b < 1 for b in self.betas),
               f"betas must be two numbers in [0, 1), got {self.betas!r}")
        _check(all(isinstance(p, str) and p for p in self.no_weight_decay),
               f"no_weight_decay must be parameter-name patterns such as '*alpha*', got {self.no_weight_decay!r}")
        _check(self.grad_clip is None or _positive(self.grad_clip),
               f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        _check(self.schedule in SCHEDULE_NAMES,
               f"schedule must be one of {', '.join(SCHEDULE_NAMES)}, got {self.schedule!r}")
        _check(all(isinstance(m, int) and m >= 1 for m in self.milestones)
               and list(self.milestones) == sorted(set(self.milestones)),
               f"milestones must be increasing epoch numbers >= 1, got {self.milestones!r}")
        _check(self.schedule != "step" or bool(self.milestones), "schedule='step' needs milestones, e.g. (100, 150)")
        _check(_positive(self.gamma), f"gamma must be > 0, got {self.gamma!r}")
        _check(isinstance(self.warmup_epochs, int) and 0 <= self.warmup_epochs < self.epochs,
               f"warmup_epochs must be an integer in [0, epochs), got {self.warmup_epochs!r}")
        _check(self.schedule not in ("onecycle", "triangular") or self.warmup_epochs == 0,
               f"{self.schedule} has its own warm-up (pct_start); set warmup_epochs=0")
        _check(_positive(self.pct_start) and self.pct_start < 1,
               f"pct_start must lie in (0, 1), got {self.pct_start!r}")
        _check(_non_negative(self.val_fraction) and self.val_fraction < 1,
               f"val_fraction must lie in [0, 1), got {self.val_fraction!r}")
        _check(isinstance(self.seed, int) and 0 <= self.seed < 2**32 - 1,
               f"seed must be an integer in [0, 2**32 - 1), got {self.seed!r}")
        _check(isinstance(self.best_metric, str) and self.best_metric != "",
               f"best_metric must name an epoch metric such as 'val_acc', got {self.best_metric!r}")
        from advlab.precision import PRECISIONS

        _check(isinstance(self.compile, bool), f"compile must be true or false, got {self.compile!r}")
        _check(self.precision in PRECISIONS,
               f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        from advlab.augment import AUGMENTATIONS

        _check(self.augmentation in AUGMENTATIONS,
               f"augmentation must be one of {', '.join(AUGMENTATIONS.names())}, got {self.augmentation!r}")

    @property
    def best_mode(self) -> str:
        """``"min"`` for metrics named ``*loss``, ``"max"`` otherwise."""
        return "min" if self.best_metric.endswith("loss") else "max"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists), for the card and the training state."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (a preset, a card's ``train`` entry); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown training settings {unknown}; known: {', '.join(sorted(known))}")
        return cls(**values)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _non_negative(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)
