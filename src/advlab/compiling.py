"""``torch.compile`` for advlab's training and attack passes: the toolchain check and the per-model cache.

Compiling traces the model once and generates fused kernels (inductor: C++/OpenMP on CPU, Triton on CUDA). The
first call pays the compilation, seconds to minutes on a small CPU; it is repaid only by a run long enough
(``benchmarks/bench_precision.py`` prints the break-even step count measured on its machine). A changing batch
size (early stop shrinks the batch every step) costs one more compilation, after which the batch dimension is
symbolic and no further shapes recompile.
"""

from __future__ import annotations

import shutil
import weakref
from typing import cast

import torch
from torch import nn

from advlab.errors import InputError

# model -> its compiled module, so that every batch of an evaluation reuses one compilation
_COMPILED: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def compiled(model: nn.Module, device: torch.device | str, *, option: str = "compile=True (--compile)") -> nn.Module:
    """``torch.compile(model)`` (sharing its parameters), or an InputError where the CPU backend has no C++
    compiler to build its kernels (a bare machine with only Python). ``option`` names the setting in the error."""
    if torch.device(device).type == "cpu" and not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        raise InputError(f"{option} needs a C++ compiler (g++ or clang++) on the PATH to build torch.compile's "
                         "CPU kernels; install one or run without it")
    return cast(nn.Module, torch.compile(model))


def compiled_once(model: nn.Module, device: torch.device | str, *, option: str) -> nn.Module:
    """:func:`compiled`, cached per model object (weakly: the cache never keeps a model alive)."""
    module = _COMPILED.get(model)
    if module is None:
        module = _COMPILED[model] = compiled(model, device, option=option)
    return module
