"""Numeric precision of model passes: fp32, or bf16 autocast where the hardware runs bf16 natively.

On CPUs with AMX or AVX512-BF16 (Intel Sapphire Rapids and later; some AMD Zen 4+) oneDNN runs bf16 matmuls and
convolutions several times faster than fp32; elsewhere bf16 is emulated and slower. ``"auto"`` therefore picks
bf16 only on such CPUs (read from the kernel's CPU flags) and on CUDA devices that support it, else fp32.
Under autocast only the heavy ops (matmul, conv) run in bf16; parameters, inputs and elementwise work stay fp32.
"""

from __future__ import annotations

import contextlib
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from advlab.errors import InputError

PRECISIONS = ("fp32", "bf16", "auto")
# CPU flags (Linux /proc/cpuinfo) that mean native bf16 matmul/conv support.
NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is absent, e.g. macOS, Windows)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` where /proc/cpuinfo is absent):
    timings mean little without it, and this project's machines change CPU between sessions."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown CPU"


def _cpuinfo_field(name: str) -> str:
    """The first ``name : value`` of /proc/cpuinfo ("" where the file or the field is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def has_native_bf16(device: torch.device, flags: frozenset[str] | None = None) -> bool:
    """True where bf16 runs natively: a CUDA device with bf16 support, or a CPU with AMX or AVX512-BF16."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool((cpu_flags() if flags is None else flags) & NATIVE_BF16_FLAGS)
    return False


def resolve_precision(precision: str, device: torch.device | str, *, flags: frozenset[str] | None = None) -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` is bf16 exactly where :func:`has_native_bf16`, an explicit choice
    stays as it is (bf16 on a CPU without native support is correct, only slower)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if has_native_bf16(torch.device(device), flags) else "fp32"


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on ``device`` for ``precision`` (after :func:`resolve_precision`); a no-op for fp32."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
