"""Checkpoints: weights in safetensors plus a JSON card beside them (DESIGN.md §3.7). Nothing is ever unpickled.

``save_checkpoint(path, model, card)`` writes ``path`` (``*.safetensors``: every parameter and persistent buffer of
``model.state_dict()``) and ``path.with_suffix(".json")``, the card::

    schema_version   CARD_SCHEMA_VERSION
    model            {"name", "args"} from ``model.advlab_spec`` (set by ``create_model``), "class", "parameters"
    normalization    {"mean", "std"} read from the model's first Normalize layer (null when it has none)
    weights          {"file", "sha256", "bytes"} of the weights file
    versions         advlab, torch, python, numpy, safetensors
    created          UTC time, ISO 8601
    ...              whatever the caller passes: dataset, objective, train config, metrics, seed, defense

Both files are written atomically (temporary file + rename). The weights go first and the card, which holds their
sha256, second: a crash between the two leaves an old card whose hash does not match, which
:func:`load_checkpoint` reports instead of silently loading a mismatched pair.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import platform
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from advlab.errors import CheckpointError, InputError, UnknownNameError
from advlab.io import write_bytes, write_json
from advlab.models.layers import Normalize

CARD_SCHEMA_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
# Keys the checkpoint writer owns; a caller's card may not set them.
RESERVED_CARD_KEYS = frozenset({"schema_version", "model", "normalization", "weights", "versions", "created"})


def card_path(path: str | os.PathLike[str]) -> Path:
    """The card beside a weights file: ``run/best.safetensors`` -> ``run/best.json``."""
    return Path(path).with_suffix(".json")


def weights_path(path: str | os.PathLike[str]) -> Path:
    """The weights file of a checkpoint named by either of its two files."""
    return Path(path).with_suffix(WEIGHTS_SUFFIX)


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from settings: dataclasses, tuples, paths, enums, numpy/torch scalars, nested containers.

    Numbers stay numbers. Anything else (a model, a function) becomes its ``repr`` so a card can always be
    written; such entries describe a setting but cannot rebuild it.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN/inf
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return to_jsonable(value.item())
    if isinstance(value, (torch.device, torch.dtype)):
        return str(value)
    return repr(value)


def library_versions() -> dict[str, str]:
    from advlab import __version__

    return {"advlab": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "safetensors": safetensors.__version__}


def normalization_of(model: nn.Module) -> dict[str, list[float]] | None:
    """Mean and std of the model's first :class:`Normalize` layer, or None when it has none."""
    for module in model.modules():
        if isinstance(module, Normalize):
            return {"mean": module.mean.flatten().tolist(), "std": module.std.flatten().tolist()}
    return None


def model_description(model: nn.Module) -> dict[str, Any]:
    """``{"name", "args", "class", "parameters"}``; name/args come from ``model.advlab_spec`` (None if absent)."""
    spec = getattr(model, "advlab_spec", None) or {}
    return {
        "name": spec.get("name"),
        "args": to_jsonable(spec.get("args", {})),
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def state_tensors(module_or_state: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A safetensors-ready copy of a state dict: detached, on the CPU, contiguous, no shared storage."""
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    # clone(): safetensors refuses tensors that share storage (tied weights, views of one buffer).
    return {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state.items()}


def save_tensors(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor]) -> tuple[str, int]:
    """Write ``tensors`` as a safetensors file atomically; returns (sha256 hex digest, size in bytes)."""
    data = safetensors.torch.save(dict(tensors))
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest(), len(data)


def load_tensors(path: str | os.PathLike[str], *, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file (CPU tensors), checking its sha256 when given. Errors say what to do."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"weights file {path} is missing; check the path or re-create the checkpoint") \
            from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions") from exc
    try:
        tensors = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError (and others) for bad bytes
        raise CheckpointError(
            f"{path} is not a valid safetensors file ({exc}); it is truncated or corrupt: re-create or "
            "re-download it"
        ) from exc
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise CheckpointError(
                f"{path} does not match the sha256 in its card (expected {sha256[:12]}..., got {actual[:12]}...): "
                "the file was modified, replaced or only partly saved; re-create or re-download the checkpoint"
            )
    return tensors


def save_checkpoint(
    path: str | os.PathLike[str], model: nn.Module, card: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``model``'s weights (parameters and buffers) to ``path`` and its card beside it; returns the card.

    ``card`` holds the caller's entries (dataset, objective, train, metrics, seed, ...); the writer adds
    schema_version, model, normalization, weights (with sha256), versions and created.

    Example::

        save_checkpoint("runs/mnist/best.safetensors", model, {"dataset": {"train": "mnist/train"}})
    """
    path = Path(path)
    if path.suffix != WEIGHTS_SUFFIX:
        raise CheckpointError(f"checkpoint path must end in {WEIGHTS_SUFFIX}, got {path}; e.g. runs/x/best.safetensors")
    extra = dict(card or {})
    clash = sorted(RESERVED_CARD_KEYS & set(extra))
    if clash:
        raise CheckpointError(f"card entries {clash} are written by save_checkpoint itself; rename them")
    sha256, size = save_tensors(path, state_tensors(model))
    full_card: dict[str, Any] = {
        "schema_version": CARD_SCHEMA_VERSION,
        "model": model_description(model),
        "normalization": normalization_of(model),
        **to_jsonable(extra),
        "weights": {"file": path.name, "sha256": sha256, "bytes": size},
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(card_path(path), full_card)
    return full_card


def read_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The card of a checkpoint (``x.safetensors`` or ``x.json``), checked for the entries loading needs."""
    card_file = card_path(path)
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint card {card_file} is missing; it must sit beside the weights with the same name "
            "(save checkpoints with advlab.models.checkpoint.save_checkpoint)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint card {card_file} is unreadable or not valid JSON ({exc}); "
                              "re-create the checkpoint") from exc
    if not isinstance(card, dict) or not isinstance(card.get("weights"), dict) \
            or not isinstance(card["weights"].get("sha256"), str) or not isinstance(card.get("model"), dict):
        raise CheckpointError(f"checkpoint card {card_file} lacks its 'model' or 'weights.sha256' entries; "
                              "re-create the checkpoint")
    version = card.get("schema_version")
    if not isinstance(version, int) or version > CARD_SCHEMA_VERSION:
        raise CheckpointError(f"checkpoint card {card_file} has schema version {version!r}; this advlab reads "
                              f"up to {CARD_SCHEMA_VERSION}: upgrade advlab")
    return card


def build_from_card(card: Mapping[str, Any]) -> nn.Module:
    """Rebuild the architecture a card names with ``create_model(name, **args)``."""
    from advlab.models import create_model  # lazy: importing checkpoints must not import every model

    spec = card["model"]
    name, args = spec.get("name"), spec.get("args") or {}
    if not name:
        raise CheckpointError(f"the card names no registered model (class {spec.get('class')}); pass "
                              "build=<a function returning the module> to load_checkpoint")
    try:
        return create_model(name, **args)
    except UnknownNameError as exc:
        raise CheckpointError(f"{exc} The checkpoint needs that model: import the module that registers it, "
                              "or pass build= to load_checkpoint") from exc
    except (TypeError, InputError) as exc:
        raise CheckpointError(f"model {name!r} does not accept the card's arguments {args} ({exc}); the card "
                              "comes from another advlab version: pass build= to load_checkpoint") from exc


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    build: Callable[[], nn.Module] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from its checkpoint and verify it: returns ``(model in eval mode on device, card)``.

    The architecture comes from the card (``create_model(card["model"]["name"], **args)``) unless ``build``
    returns the module. Weights are checked against the card's sha256 and loaded strictly (every key, every
    shape). Any problem raises :class:`~advlab.errors.CheckpointError` saying what to do.

    Example::

        model, card = load_checkpoint("runs/mnist/best.safetensors", device="cuda")
    """
    card = read_card(path)
    tensors = load_tensors(weights_path(path), sha256=card["weights"]["sha256"])
    model = build() if build is not None else build_from_card(card)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        summary = str(exc).replace("\n", " ")
        raise CheckpointError(f"the weights in {weights_path(path)} do not fit the model built for them "
                              f"({summary[:400]}); pass build= with the architecture that was saved") from exc
    spec = card["model"]
    if spec.get("name") and getattr(model, "advlab_spec", None) is None:
        # torch's stubs type Module.__setattr__ for tensors and modules only; any value is allowed at runtime.
        model.advlab_spec = {"name": spec["name"], "args": dict(spec.get("args") or {})}  # type: ignore[assignment]
    return model.to(device).eval(), card
