"""DeepFool: iterate to the nearest linearized decision boundary among the top-k classes.

Paper: S.-M. Moosavi-Dezfooli, A. Fawzi, P. Frossard, "DeepFool: a simple and accurate method to fool deep
neural networks", 2016, arXiv:1511.04599 (Algorithm 2 for L2; §3.3 for L∞ via the dual L1 norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.registry import register_attack
from advlab.errors import InputError


def candidate_jacobian(
    model: nn.Module, x: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and gradients of ``z_{classes[:, j]} - z_{classes[:, 0]}`` for every candidate j ≥ 1.

    One forward pass and k - 1 backward passes over the whole batch (``classes`` is (N, k)); returns
    ``(differences (N, k-1), gradients (N, k-1, C, H, W))``.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x).gather(1, classes)
        differences = logits[:, 1:] - logits[:, :1]
        grads = [
            torch.autograd.grad(differences[:, j].sum(), x, retain_graph=j < differences.shape[1] - 1)[0]
            for j in range(differences.shape[1])
        ]
    return differences.detach(), torch.stack(grads, dim=1)


@register_attack("deepfool", family="geometric", norm="l2")
@dataclass(frozen=True, kw_only=True)
class DeepFool(Attack):
    """DeepFool L2 (untargeted, minimal perturbation): each step jumps to the closest linearized boundary.

    Threat model: white-box, L2, unbounded (the attack seeks the smallest perturbation; compare its norms).

    Args:
        steps: maximum iterations (paper: 50).
        overshoot: the accumulated step is scaled by ``1 + overshoot`` to land past the boundary (paper: 0.02).
        candidates: the number of top-scoring clean classes considered, the true class included (paper: 10).

    Shapes: x (N, C, H, W) in [0, 1]; samples that flipped are frozen while the rest continue.

    Example::

        result = DeepFool()(model, x, y)
        print(result.success_rate, result.norms["l2"].median())
    """

    norm: ClassVar[Norm] = Norm.L2
    supports_targeted: ClassVar[bool] = False

    steps: int = 50
    overshoot: float = 0.02
    candidates: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1 or self.overshoot < 0 or self.candidates < 2:
            raise InputError("DeepFool needs steps >= 1, overshoot >= 0 and candidates >= 2")

    def _step(self, differences: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """The minimal step (N, C, H, W) onto the nearest linearized boundary, in this attack's norm."""
        flat = grads.flatten(2)
        # The distance to boundary j is |f_j| / ‖w_j‖_q with q the dual norm (L2 -> L2, L∞ -> L1).
        dual = flat.norm(p=2, dim=2) if self.norm is Norm.L2 else flat.abs().sum(dim=2)
        distance = differences.abs() / (dual + 1e-8)
        nearest = distance.argmin(dim=1)
        rows = torch.arange(grads.shape[0], device=grads.device)
        w, d = flat[rows, nearest], distance[rows, nearest]
        # 1e-4 as in the reference implementation: step slightly past the linearized boundary.
        if self.norm is Norm.L2:
            step = (d + 1e-4)[:, None] * w / (dual[rows, nearest][:, None] + 1e-8)
        else:
            step = (d + 1e-4)[:, None] * w.sign()
        return step.view_as(grads[:, 0])

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            logits = model(x)
        k = min(self.candidates, logits.shape[1])
        # Candidates: the true class first, then the k-1 highest-scoring other classes of the clean image.
        others = logits.scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices
        classes = torch.cat([y[:, None], others], dim=1)
        total = torch.zeros_like(x)
        adv = x.clone()
        active = logits.argmax(1) == y
        for _ in range(self.steps):
            if not active.any():
                break
            idx = active.nonzero().squeeze(1)
            differences, grads = candidate_jacobian(model, adv[idx], classes[idx])
            total[idx] += self._step(differences, grads)
            adv[idx] = (x[idx] + (1 + self.overshoot) * total[idx]).clamp(0, 1)
            with torch.no_grad():
                flipped = model(adv[idx]).argmax(1) != y[idx]
            active[idx[flipped]] = False
        return adv


@register_attack("deepfool_linf", family="geometric", norm="linf")
@dataclass(frozen=True, kw_only=True)
class DeepFoolLinf(DeepFool):
    """DeepFool L∞: the same iteration with the L1 dual norm and sign steps (paper §3.3). Arguments as DeepFool.

    Example::

        result = DeepFoolLinf()(model, x, y)
        print(result.norms["linf"].median())
    """

    norm: ClassVar[Norm] = Norm.LINF
