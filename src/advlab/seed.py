"""Seeding and random-number-generator state capture, so runs repeat and resumed runs continue the same streams.

A training run draws random numbers from five places: torch's global CPU generator (weight init, dropout and noise
on CPU), the CUDA generators (dropout and noise on the GPU), Python's ``random``, NumPy's legacy global generator
(third-party code), and the run's own data generator (shuffling and augmentation, a ``torch.Generator`` owned by
``fit``). :func:`seed_everything` seeds the global ones; :func:`capture_rng_state` / :func:`restore_rng_state`
save and restore all of them **without pickling**: byte-state tensors go to a safetensors file, the Python and
NumPy states (lists of integers) go to JSON.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from advlab.errors import CheckpointError, InputError


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python ``random``, NumPy's global generator and torch (CPU and every CUDA device) with ``seed``.

    Call it *before* building the model so weight initialization repeats too. ``deterministic=True`` also asks
    cuDNN for deterministic kernels (slower; CPU kernels are deterministic already).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise InputError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CUDA generators as well
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def capture_rng_state(data_generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state of every generator as ``(tensors, json_state)``.

    ``tensors`` (uint8 byte-state tensors, safetensors-ready): ``torch`` (global CPU), ``cuda.<i>`` (one per
    visible CUDA device), ``data`` (the run's data generator, when given). ``json_state``: ``python`` and
    ``numpy`` states as nested lists of numbers, plus the number of CUDA states.
    """
    tensors: dict[str, torch.Tensor] = {"torch": torch.get_rng_state().clone()}
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    for index, state in enumerate(cuda_states):
        tensors[f"cuda.{index}"] = state.cpu().clone()
    if data_generator is not None:
        tensors["data"] = data_generator.get_state().clone()
    version, internal, gauss_next = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    json_state = {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, [int(k) for k in keys], int(position), int(has_gauss), float(cached_gaussian)],
        "cuda_devices": len(cuda_states),
    }
    return tensors, json_state


def restore_rng_state(
    tensors: dict[str, torch.Tensor], json_state: dict[str, Any], data_generator: torch.Generator | None = None
) -> None:
    """Put every generator back in the state :func:`capture_rng_state` recorded."""
    try:
        torch.set_rng_state(tensors["torch"].to(torch.uint8).cpu())
        if data_generator is not None:
            data_generator.set_state(tensors["data"].to(torch.uint8).cpu())
        version, internal, gauss_next = json_state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        kind, keys, position, has_gauss, cached_gaussian = json_state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"the saved random-number-generator state is incomplete or corrupt ({exc}); "
            "start the run again without resume"
        ) from exc
    saved_cuda = int(json_state.get("cuda_devices", 0))
    if saved_cuda and torch.cuda.is_available():
        # A run saved on k GPUs and resumed on a different count cannot continue the same streams exactly;
        # restore what matches rather than refuse (bit-identity is only promised on the same hardware).
        available = torch.cuda.device_count()
        for index in range(min(saved_cuda, available)):
            torch.cuda.set_rng_state(tensors[f"cuda.{index}"].to(torch.uint8).cpu(), device=index)
