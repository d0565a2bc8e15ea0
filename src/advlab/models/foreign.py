"""Read weights published by others (``.safetensors``, ``torch.save`` files) into advlab models, safely.

``torch.save`` files are pickles, and unpickling can run arbitrary code; they are therefore read with
``torch.load(..., weights_only=True)``, which only rebuilds tensors and plain containers. ``trust_pickle=True``
lifts that restriction for files whose source the user trusts (DESIGN.md §3.7). Every failure is a
:class:`CheckpointError` that says what was wrong and what to do.

Example::

    model = create_model("resnet20", normalization="imagenet")
    load_foreign_weights(model, "resnet20-12fca82f.th")   # akamaster/pytorch_resnet_cifar10, 91.73 %
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advlab.errors import CheckpointError
from advlab.models.layers import Normalize

# Keys under which training scripts commonly nest the state dict ({'state_dict': ..., 'best_prec1': ...}).
CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# Prefixes added by wrappers: nn.DataParallel / DistributedDataParallel ("module.") and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# The most keys of each kind listed in an error message (the count of the rest follows).
_LISTED_KEYS = 8


def read_state_dict(path: str | Path, *, trust_pickle: bool = False) -> dict[str, Tensor]:
    """The tensors of a weights file, by name, on the CPU.

    Reads ``.safetensors`` with safetensors and anything else with ``torch.load(weights_only=True)`` (or
    ``weights_only=False`` when ``trust_pickle`` is set: only for files from a source you trust, since that can
    run code). Unwraps ``{'state_dict': ...}`` / ``{'model': ...}`` containers (and a pickled ``nn.Module`` when
    trusted) and strips a ``module.`` prefix shared by every key.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, holds pickled objects (without
            ``trust_pickle``) or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist; check the path.")
    if path.suffix == ".safetensors":
        loaded: Any = _read_safetensors(path)
    else:
        loaded = _read_torch_file(path, trust_pickle=trust_pickle)
    return _strip_wrapper_prefix(_unwrap(loaded, path))


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({error}); it is truncated or corrupt: "
            "download or export it again."
        ) from None


def _read_torch_file(path: Path, *, trust_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as error:
        if trust_pickle:
            raise CheckpointError(f"{path} is not a readable torch file ({error}); download it again.") from None
        # weights_only refuses any global outside its allow-list; a corrupt byte stream also lands here.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} could not be read as a weights-only torch file ({first_line}). If it is truncated or corrupt, "
            "download it again; if it holds pickled Python objects and you trust its source, pass "
            "trust_pickle=True (--trust-pickle on the command line; unpickling an untrusted file can run "
            "arbitrary code), or convert it to .safetensors."
        ) from None
    except (EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile, AttributeError, ImportError,
            KeyError, IndexError, TypeError) as error:
        raise CheckpointError(
            f"{path} is not a readable torch weights file ({type(error).__name__}: {error}); it is truncated, "
            "corrupt or not a weights file: download or export it again."
        ) from None


def _unwrap(loaded: Any, path: Path) -> dict[str, Tensor]:
    """Descend into training-script containers until a name -> tensor mapping is left."""
    for _ in range(4):  # containers nest at most a couple of levels; a bound keeps odd files from looping
        if isinstance(loaded, nn.Module):  # a whole pickled model (only reachable with trust_pickle)
            loaded = loaded.state_dict()
        if not isinstance(loaded, Mapping):
            break
        if loaded and all(isinstance(value, Tensor) for value in loaded.values()):
            if not all(isinstance(key, str) for key in loaded):
                break
            return dict(loaded)
        inner = next((loaded[key] for key in CONTAINER_KEYS if key in loaded), None)
        if inner is None:
            break
        loaded = inner
    found = sorted(map(str, loaded)) if isinstance(loaded, Mapping) else type(loaded).__name__
    raise CheckpointError(
        f"{path} holds no state dict of named tensors (found {found!r}); expected a mapping of parameter names "
        f"to tensors, possibly under one of {CONTAINER_KEYS}. Export the model's state_dict() and try again."
    )


def _strip_wrapper_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    for prefix in WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    return state


def _optional_keys(model: nn.Module) -> set[str]:
    """Model keys a foreign file may lack: BN ``num_batches_tracked`` counters and the Normalize buffers.

    Normalization is chosen when the model is built (``normalization=...``), not by the file, because most
    published weights keep it outside the network.
    """
    optional = {key for key in model.state_dict() if key.endswith("num_batches_tracked")}
    for name, module in model.named_modules():
        if isinstance(module, Normalize):
            optional |= {f"{name}.{buffer}" if name else buffer for buffer, _ in module.named_buffers()}
    return optional


def _listing(kind: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED_KEYS])
    more = f" (+{len(keys) - _LISTED_KEYS} more)" if len(keys) > _LISTED_KEYS else ""
    return f"{len(keys)} {kind}: {shown}{more}"


def load_foreign_weights(
    model: nn.Module, path: str | Path, *, trust_pickle: bool = False, strict: bool = True
) -> nn.Module:
    """Copy the tensors of a weights file into ``model`` (in place) and return it.

    Keys are matched by name after unwrapping containers and stripping ``module.``. A file may lack BN
    ``num_batches_tracked`` counters and the model's Normalize buffers (the model keeps its own). With
    ``strict`` (default) any other missing or unexpected key is an error; shape mismatches always are. All
    problems are reported together in one :class:`CheckpointError`.
    """
    state = read_state_dict(path, trust_pickle=trust_pickle)
    own = model.state_dict()
    optional = _optional_keys(model)
    missing = sorted(key for key in own if key not in state and key not in optional)
    unexpected = sorted(key for key in state if key not in own)
    mismatched = sorted(
        f"{key} (file {tuple(state[key].shape)}, model {tuple(own[key].shape)})"
        for key in state
        if key in own and state[key].shape != own[key].shape
    )
    problems = [_listing("shape mismatches", mismatched)] if mismatched else []
    if strict:
        problems += [_listing(kind, keys) for kind, keys in (("missing keys", missing),
                                                             ("unexpected keys", unexpected)) if keys]
    if problems:
        raise CheckpointError(
            f"{path} does not fit {type(model).__name__}: " + "; ".join(problems) + ". Check that the model and "
            "its arguments (depth, width, num_classes) match the file"
            + ("; pass strict=False to load only the keys that match." if strict else ".")
        )
    matching = {key: value for key, value in state.items() if key in own}
    if not matching:
        raise CheckpointError(f"{path} shares no key with {type(model).__name__}; it is for another model.")
    model.load_state_dict(matching, strict=False)
    return model


__all__ = ["CONTAINER_KEYS", "WRAPPER_PREFIXES", "load_foreign_weights", "read_state_dict"]
