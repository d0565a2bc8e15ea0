"""Is a model's eval-mode forward pass random? Attacks ask before trusting a single forward pass.

A randomized model (input noise, PNI weight noise, dropout kept on at test time) answers differently on every
pass. An attack that stops at, or keeps, the first iterate one noise draw misclassified measures that draw's luck,
not robustness: the final verdict is taken on a fresh draw, and the iterate frozen early is weaker than the one
the remaining steps would have reached (Athalye, Carlini, Wagner 2018, arXiv:1802.00420, §5.3, on EOT).
"""

from __future__ import annotations

import torch
from torch import nn

from advlab.attacks.base import ForwardCounter, frozen_eval, probe_logits
from advlab.errors import InputError

# Images used to probe an undeclared model for randomness inside an attack: two passes on this many.
PROBE_IMAGES = 4


def declares_stochastic(model: nn.Module) -> bool:
    """True when the model or one of its submodules declares ``stochastic = True`` (advlab's noise defenses)."""
    return any(getattr(module, "stochastic", False) is True for module in model.modules())


def is_randomized(model: nn.Module, x: torch.Tensor, *, passes: int = 2, rtol: float = 1e-4) -> bool:
    """True when ``passes`` eval-mode forward passes on ``x`` (N, C, H, W) disagree beyond float noise.

    Two logits tensors differ "beyond float noise" when ``max |a - b| > rtol * (1 + max |a|)``; nondeterministic
    GPU kernels change logits by ~1e-6 relative, a noise layer by far more. The model's mode and parameter
    flags are restored afterwards. Being a first contact with the model, the first pass raises
    :class:`InputError` for images the model cannot take or non-finite logits (:func:`probe_logits`).
    """
    if passes < 2:
        raise InputError(f"randomness detection needs at least 2 forward passes, got {passes}")
    with frozen_eval(model), torch.no_grad():
        first = probe_logits(model, x)
        scale = float(first.abs().max()) if first.numel() else 0.0
        for _ in range(passes - 1):
            if float((model(x) - first).abs().max()) > rtol * (1.0 + scale):
                return True
    return False


def forward_is_random(model: nn.Module, x: torch.Tensor) -> bool:
    """Declared stochastic, or two passes on the first :data:`PROBE_IMAGES` images of ``x`` disagree.

    A :class:`ForwardCounter` is looked through, so the probe spends none of the attack's query budget, and the
    probe's noise draws come from a forked RNG, so the attack's own random stream is the same with or without it.
    """
    inner = model.model if isinstance(model, ForwardCounter) else model
    if declares_stochastic(inner):
        return True
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return is_randomized(inner, x[:PROBE_IMAGES].detach())
