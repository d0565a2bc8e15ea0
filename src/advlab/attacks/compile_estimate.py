"""Does ``torch.compile`` repay itself for an attack on this machine? Measured, not guessed.

:func:`estimate_compile` times one attack gradient pass (forward + input-gradient backward of the cross-entropy,
as PGD's step) through exactly the network an attack with ``compile=True`` uses (batch norm folded, then
compiled, cached per model), once eager and once compiled, and the compilation itself. The compilation is not
wasted: the attack that follows finds the compiled network in the cache. An early-stopping attack shrinks its
batch, which costs one more compilation (then the batch size is symbolic); the estimate does not include it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import attack_network, frozen_eval
from advlab.precision import autocast

TIMED_PASSES = 3  # timed passes per variant after one untimed warm-up (the median is kept)


@dataclass(frozen=True)
class CompileEstimate:
    """Seconds of one gradient pass on ``batch`` images, eager and compiled, and of the compilation."""

    batch: int
    eager_s: float
    compiled_s: float
    compile_s: float

    @property
    def break_even_passes(self) -> float | None:
        """Gradient passes (of ``batch`` images) after which compiling has paid for itself; None: never."""
        saved = self.eager_s - self.compiled_s
        return self.compile_s / saved if saved > 0 else None

    def describe(self, planned_passes: int | None = None) -> str:
        """One line for a person: the measured times, the break-even point and, given the run's planned passes,
        whether this run repays the compilation."""
        text = (f"torch.compile: a gradient pass on {self.batch} images takes {self.compiled_s * 1e3:.1f} ms "
                f"compiled against {self.eager_s * 1e3:.1f} ms eager; compiling took {self.compile_s:.1f} s")
        even = self.break_even_passes
        if even is None:
            return text + ", and the compiled pass is not faster here: it never pays off"
        text += f"; repaid after {even:.0f} passes"
        if planned_passes is not None:
            saved = planned_passes * (self.eager_s - self.compiled_s) - self.compile_s
            verdict = f"saves about {saved:.0f} s" if saved > 0 else f"costs about {-saved:.0f} s more than eager"
            text += f" (this run plans up to {planned_passes} passes: compiling {verdict})"
        return text


def estimate_compile(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, precision: str = "fp32",
                     channels_last: bool = False) -> CompileEstimate:
    """Measure eager vs compiled gradient passes of ``model`` on ``x`` (N, C, H, W) in [0, 1], labels ``y`` (N,).

    ``precision`` and ``channels_last`` as the attack's (:class:`advlab.attacks.base.Attack`); needs a C++
    compiler on CPU like ``compile=True`` itself (:func:`advlab.compiling.compiled`).
    """
    with frozen_eval(model):  # the modes and flags the attack will see: the cached copies then match
        eager = attack_network(model, x, channels_last=channels_last)
        compiled = attack_network(model, x, compile=True, channels_last=channels_last)

        def gradient_pass(network: nn.Module) -> float:
            begin = time.perf_counter()
            xr = x.detach().requires_grad_(True)
            with torch.enable_grad(), autocast(precision, x.device):
                loss = F.cross_entropy(network(xr).float(), y)
            torch.autograd.grad(loss, xr)
            return time.perf_counter() - begin

        gradient_pass(eager)
        eager_s = sorted(gradient_pass(eager) for _ in range(TIMED_PASSES))[TIMED_PASSES // 2]
        first = gradient_pass(compiled)
        compiled_s = sorted(gradient_pass(compiled) for _ in range(TIMED_PASSES))[TIMED_PASSES // 2]
    return CompileEstimate(batch=len(y), eager_s=eager_s, compiled_s=compiled_s,
                           compile_s=max(first - compiled_s, 0.0))
