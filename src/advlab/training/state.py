"""The resumable training state of a run, saved after every completed epoch without pickling anything.

Layout in the run's ``out_dir``::

    train_state.json                 epoch, step, config, history, best, optimizer hyperparameters and scalar
                                     state, Python/NumPy RNG states, and the name + sha256 of ...
    train_state-e0003.safetensors    ... the tensors: model weights (``model.*``), optimizer state tensors
                                     (``optim.<param index>.<key>``, e.g. momentum buffers, Adam moments and
                                     steps), torch/CUDA/data-generator RNG states (``rng.*``)

The tensors file is named by epoch and written first; the JSON, written second, points to it; older tensors
files are deleted only after that. A crash at any moment therefore leaves a JSON that points to a complete,
matching tensors file (the previous epoch's or this one's), never a half-updated pair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.errors import CheckpointError
from advlab.io import write_json
from advlab.models.checkpoint import load_tensors, save_tensors, state_tensors, to_jsonable
from advlab.seed import capture_rng_state, restore_rng_state

STATE_SCHEMA_VERSION = 1
STATE_JSON = "train_state.json"


@dataclass
class TrainingState:
    """Where a run stands after ``epochs_completed`` epochs: what ``fit`` needs to continue it exactly."""

    epochs_completed: int
    global_step: int
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    config: dict[str, Any]
    objective: dict[str, Any]


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": to_jsonable(state_dict["param_groups"]), "scalars": to_jsonable(scalars)}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensor
    for index, values in saved["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [dict(group) for group in saved["param_groups"]]
    for group in groups:
        if "betas" in group:  # JSON has no tuples; Adam's betas are one
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


def save_training_state(
    out_dir: Path,
    state: TrainingState,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_generator: torch.Generator,
) -> None:
    """Save the state after an epoch (see the module docstring for the files and their order)."""
    optim_tensors, optim_json = _flatten_optimizer(optimizer)
    rng_tensors, rng_json = capture_rng_state(data_generator)
    tensors = {f"model.{name}": tensor for name, tensor in state_tensors(model).items()}
    tensors.update(optim_tensors)
    tensors.update({f"rng.{name}": tensor for name, tensor in rng_tensors.items()})
    tensors_file = f"train_state-e{state.epochs_completed:04d}.safetensors"
    sha256, _ = save_tensors(out_dir / tensors_file, tensors)
    write_json(out_dir / STATE_JSON, {
        "schema_version": STATE_SCHEMA_VERSION,
        "epochs_completed": state.epochs_completed,
        "global_step": state.global_step,
        "config": state.config,
        "objective": state.objective,
        "history": to_jsonable(state.history),
        "best": to_jsonable(state.best),
        "optimizer": optim_json,
        "rng": rng_json,
        "tensors_file": tensors_file,
        "tensors_sha256": sha256,
    })
    for old in out_dir.glob("train_state-e*.safetensors"):
        if old.name != tensors_file:
            old.unlink(missing_ok=True)


def has_training_state(out_dir: Path) -> bool:
    return (out_dir / STATE_JSON).is_file()


def clear_training_state(out_dir: Path) -> None:
    """Remove a previous run's state (a fresh, non-resumed run in the same folder)."""
    (out_dir / STATE_JSON).unlink(missing_ok=True)
    for old in out_dir.glob("train_state-e*.safetensors"):
        old.unlink(missing_ok=True)


def _read_state_json(out_dir: Path) -> dict[str, Any]:
    json_file = out_dir / STATE_JSON
    if not json_file.is_file():
        raise CheckpointError(f"nothing to resume: {json_file} does not exist. Train without resume, or point "
                              "out_dir at the folder of the interrupted run")
    try:
        saved = json.loads(json_file.read_text(encoding="utf-8"))
        if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
            raise TypeError("not a training-state object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"the training state {json_file} is unreadable ({exc}); start the run again "
                              "without resume") from exc
    if saved.get("schema_version") != STATE_SCHEMA_VERSION:
        raise CheckpointError(f"{json_file} has schema version {saved.get('schema_version')!r}, this advlab "
                              f"resumes version {STATE_SCHEMA_VERSION}; start the run again without resume")
    return saved


def saved_config(out_dir: Path) -> dict[str, Any]:
    """The training settings (``TrainConfig.to_dict()``) of the run saved in ``out_dir``."""
    return dict(_read_state_json(out_dir)["config"])


def saved_objective(out_dir: Path) -> Any:
    """The ``describe()`` of the objective the run saved in ``out_dir`` was trained with."""
    return _read_state_json(out_dir).get("objective")


def load_training_state(
    out_dir: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_generator: torch.Generator,
) -> TrainingState:
    """Restore model weights, optimizer state and every RNG from ``out_dir``; returns the bookkeeping."""
    saved = _read_state_json(out_dir)
    tensors_file, sha256 = saved.get("tensors_file"), saved.get("tensors_sha256")
    if not isinstance(tensors_file, str) or not isinstance(sha256, str):
        raise CheckpointError(f"{out_dir / STATE_JSON} names no tensors file with its sha256; start the run "
                              "again without resume")
    tensors = load_tensors(out_dir / tensors_file, sha256=sha256)
    model_state = {name[len("model."):]: t for name, t in tensors.items() if name.startswith("model.")}
    try:
        model.load_state_dict(model_state, strict=True)
        optimizer.load_state_dict(_unflatten_optimizer(tensors, saved["optimizer"]))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"the training state in {out_dir} does not fit this model or optimizer ({exc}); "
                              "resume with the same model and settings, or start again without resume") from exc
    restore_rng_state({name[len("rng."):]: t for name, t in tensors.items() if name.startswith("rng.")},
                      saved["rng"], data_generator)
    return TrainingState(epochs_completed=int(saved["epochs_completed"]), global_step=int(saved["global_step"]),
                         history=list(saved["history"]), best=saved["best"], config=dict(saved["config"]),
                         objective=saved.get("objective") or {})
