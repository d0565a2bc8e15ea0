"""Gradient estimators: the seam through which gradient-based attacks see the model (DESIGN.md §3.4).

An estimator maps (model, x, loss_fn) to the per-sample loss and an estimate of ∇ₓ loss. PGD with
:class:`EOTGradient` *is* EOT-PGD, and an attack that takes :class:`FiniteDifferenceGradient` becomes
black-box; no attack class is copied to change how gradients are obtained.

``loss_fn(logits) -> (N,)`` is the per-sample loss to *increase*; samples are independent, so the gradient of
the summed loss with respect to ``x`` is the stack of per-sample gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from advlab.errors import InputError

LossFn = Callable[[torch.Tensor], torch.Tensor]


class GradientEstimator(Protocol):
    def __call__(self, model: nn.Module, x: torch.Tensor, loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(loss (N,), gradient (N, C, H, W))`` at ``x``."""
        ...


@dataclass(frozen=True)
class AutogradGradient:
    """Exact gradient by reverse-mode autodiff (one forward and one backward pass)."""

    def __call__(self, model: nn.Module, x: torch.Tensor, loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(x))
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad


@dataclass(frozen=True)
class EOTGradient:
    """Expectation over Transformation (Athalye, Carlini, Wagner 2018, arXiv:1802.00420).

    Averages the gradient (and loss) of ``samples`` independent forward/backward passes. Passes are run one
    after another on purpose: a randomized model may draw its noise once per forward call (PNI's weight noise
    does), so stacking copies in one batch would share a single draw and under-estimate the expectation.
    On a deterministic model this equals :class:`AutogradGradient`.
    """

    samples: int = 10

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise InputError(f"EOT needs at least one sample, got {self.samples}")

    def __call__(self, model: nn.Module, x: torch.Tensor, loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor]:
        exact = AutogradGradient()
        loss_sum, grad_sum = exact(model, x, loss_fn)
        for _ in range(self.samples - 1):
            loss, grad = exact(model, x, loss_fn)
            loss_sum, grad_sum = loss_sum + loss, grad_sum + grad
        return loss_sum / self.samples, grad_sum / self.samples


@dataclass(frozen=True)
class FiniteDifferenceGradient:
    """Zeroth-order estimate from scores only: symmetric differences along ``coordinates`` random coordinates.

    ``g_i ≈ (f(x + h e_i) - f(x - h e_i)) / 2h`` (ZOO, Chen et al. 2017, arXiv:1708.03999, eq. 6). Coordinates
    not sampled get a zero estimate. ``coordinates=None`` estimates every coordinate (exact up to O(h²); used to
    test the estimator against autograd). All 2k probes of a batch go through the model in chunks of
    ``chunk`` images, so no Python loop runs per sample. The probes always run in float32, also inside a bf16
    attack: bf16 logits carry about 3 significant digits, far too few to resolve a difference made by h = 1e-4.
    """

    h: float = 1e-4
    coordinates: int | None = 128
    chunk: int = 1024
    generator: torch.Generator | None = None

    def __call__(self, model: nn.Module, x: torch.Tensor, loss_fn: LossFn) -> tuple[torch.Tensor, torch.Tensor]:
        n, dim = x.shape[0], x[0].numel()
        k = dim if self.coordinates is None else min(self.coordinates, dim)
        if self.coordinates is None:
            coords = torch.arange(dim, device=x.device).expand(n, dim)
        else:
            scores = torch.rand(n, dim, generator=self.generator).to(x.device)
            coords = scores.topk(k, dim=1).indices
        flat = x.detach().flatten(1)
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            base_loss = loss_fn(model(x))
            grad = torch.zeros_like(flat)
            # probes[b, j, s]: image b with coordinate coords[b, j] moved by s*h, s in {+1, -1}
            for start in range(0, k, max(1, self.chunk // (2 * n))):
                cols = coords[:, start:start + max(1, self.chunk // (2 * n))]
                m = cols.shape[1]
                probes = flat[:, None, None, :].repeat(1, m, 2, 1)
                step = torch.tensor([self.h, -self.h], device=x.device, dtype=x.dtype).view(1, 1, 2)
                index = cols[:, :, None, None].expand(n, m, 2, 1)
                probes.scatter_add_(3, index, step.expand(n, m, 2)[..., None])
                logits = model(probes.view(n * m * 2, *x.shape[1:]))
                repeated_loss_fn_input = logits.view(n, m, 2, -1)
                losses = _per_probe_loss(loss_fn, repeated_loss_fn_input)
                estimate = (losses[:, :, 0] - losses[:, :, 1]) / (2 * self.h)
                grad.scatter_(1, cols, estimate)
        return base_loss, grad.view_as(x)


def _per_probe_loss(loss_fn: LossFn, logits: torch.Tensor) -> torch.Tensor:
    """Apply a per-sample loss to logits shaped (N, M, 2, classes), where loss_fn expects (N, classes).

    ``loss_fn`` closes over per-sample labels of length N, so the probes are fed one (N, classes) slice at a time
    (M*2 calls on tiny tensors; the model work is already batched).
    """
    n, m, two, _ = logits.shape
    out = torch.empty(n, m, two, device=logits.device, dtype=logits.dtype)
    for j in range(m):
        for s in range(two):
            out[:, j, s] = loss_fn(logits[:, j, s])
    return out
