"""The recipe behind ``advlab train``: model + optional defense + ``fit()``, with the test set checked each epoch.

A defense from the registry is an objective (``fit(objective=...)``), a model transform (``apply(model)``, e.g.
PNI noise layers) or both; its ``describe()`` goes into the checkpoint card so that loading the checkpoint
re-applies the transform (see :func:`advlab.models.loading.load_model`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.training.config import TrainConfig
from advlab.training.loop import TrainResult, evaluate, fit


def resolve_device(device: str | None) -> str:
    """``"auto"``/None -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; anything else unchanged."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def build_defense(name: str | None, settings: Mapping[str, Any]) -> tuple[Any | None, Any | None, dict | None]:
    """``(objective or None, transform or None, describe() dict or None)`` for a registered defense."""
    if not name:
        return None, None, None
    from advlab.defenses.registry import DEFENSES, create_defense

    kind = DEFENSES.entry(name).info["kind"]
    defense = create_defense(name, **settings)
    objective = defense if kind in ("objective", "both") else None
    transform = defense if kind in ("transform", "both") else None
    return objective, transform, defense.describe()


def train_with_defense(
    model_name: str,
    train_set: ImageDataset,
    test_set: ImageDataset,
    *,
    model_args: Mapping[str, Any] | None = None,
    defense: str | None = None,
    defense_args: Mapping[str, Any] | None = None,
    config: Mapping[str, Any],
    out_dir: str | Path,
    resume: bool = False,
    device: str | None = "auto",
    quiet: bool = False,
) -> TrainResult:
    """Train ``model_name`` on ``train_set`` with an optional registered defense; ``test_acc`` logged per epoch.

    ``config`` holds :class:`TrainConfig` fields; with ``val_fraction > 0`` a seeded share of ``train_set`` is held
    out as the validation set that selects ``best.safetensors``.
    """
    from advlab.models import create_model
    from advlab.models.loading import load_model

    device = resolve_device(device)
    objective, transform, defense_card = build_defense(defense, defense_args or {})
    train_config = TrainConfig(**{**config, "device": device,
                                  "no_weight_decay": tuple(config.get("no_weight_decay", ()))
                                  + tuple(getattr(transform, "no_weight_decay", ()))})
    if ":" in model_name:
        model: nn.Module = load_model(model_name, model_args=model_args).model
    else:
        model = create_model(model_name, **dict(model_args or {}))
    if transform is not None:
        model = transform.apply(model)

    val_set = None
    if train_config.val_fraction > 0:
        train_set, val_set = train_set.split(train_config.val_fraction, seed=train_config.seed)

    def test_accuracy(trained: nn.Module, epoch: int) -> dict[str, float]:
        return {"test_acc": evaluate(trained, test_set, device=torch.device(device))["acc"]}

    card_extra: dict[str, Any] = {"test_dataset": test_set.name}
    if defense_card is not None:
        card_extra["defense"] = defense_card
    return fit(model, train_set, config=train_config, objective=objective, val_set=val_set, out_dir=out_dir,
               resume=resume, card_extra=card_extra, quiet=quiet, device=device, eval_hook=test_accuracy)
