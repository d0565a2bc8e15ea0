"""Square Attack (L∞): random search over square patches at the corners of the ε-box, scores only.

Paper: M. Andriushchenko, F. Croce, N. Flammarion, M. Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", 2020, arXiv:1912.00049 (Algorithm 1, L∞ version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.losses import margin, targeted_cross_entropy
from advlab.attacks.registry import register_attack
from advlab.errors import InputError

# The paper's schedule for the fraction p of pixels changed: (milestone, divisor of p_init once past it), at
# iterations rescaled to a 10,000-query budget.
_P_SCHEDULE = ((10, 2), (50, 4), (200, 8), (500, 16), (1000, 32), (2000, 64), (4000, 128), (6000, 256), (8000, 512))


def square_fraction(p_init: float, step: int, steps: int) -> float:
    """p at iteration ``step`` of ``steps``: p_init divided at the paper's milestones (rescaled to 10,000)."""
    rescaled = int(step / steps * 10000)
    divisor = 1
    for milestone, value in _P_SCHEDULE:
        if rescaled > milestone:
            divisor = value
    return p_init / divisor


@register_attack("square", family="black-box", norm="linf")
@dataclass(frozen=True, kw_only=True)
class SquareAttack(Attack):
    """Square Attack L∞ (score-based black-box): keep a random ±ε square update whenever it lowers the loss.

    Loss: the margin ``z_y - max_{j≠y} z_j`` untargeted, cross-entropy of the target when targeted (as in the
    authors' code). Initialization: vertical stripes of ±ε. Each image draws its own square position.

    Threat model: black-box with scores, L∞ ball of radius ``eps`` ([0, 1] units).

    Args:
        eps: L∞ radius (e.g. 0.3 on MNIST, 8/255 on CIFAR-10).
        steps: iterations, one query per unfinished image each (plus one for the initialization).
        p_init: initial fraction of pixels in the square (the side is ``round(sqrt(p·H·W))``), decayed by the
            paper's schedule.
        seed: seeds the random squares.

    Shapes: x (N, C, H, W) in [0, 1]. ``extras["queries"]`` (N,): queries spent on each image (it stops at
    success).

    Example::

        result = SquareAttack(eps=0.3, steps=1000)(black_box_model, x, y)
        print(result.robust_accuracy, result.extras["queries"].float().mean())
    """

    norm: ClassVar[Norm] = Norm.LINF

    eps: float
    steps: int = 1000
    p_init: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or not 0 < self.p_init <= 1:
            raise InputError(f"Square needs steps >= 1 and 0 < p_init <= 1, got {self.steps}, {self.p_init}")

    def _loss(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Per-sample loss to *increase*; it is positive exactly when the image is adversarial (untargeted)."""
        return margin(logits, y) if target is None else targeted_cross_entropy(logits, target)

    def run(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n, c, h, w = x.shape
        generator = torch.Generator().manual_seed(self.seed)

        def rand_sign(*shape: int) -> torch.Tensor:
            return (torch.randint(0, 2, shape, generator=generator) * 2 - 1).to(x)

        best = (x + self.eps * rand_sign(n, c, 1, w)).clamp(0, 1)
        with torch.no_grad():
            logits = model(best)
        loss = self._loss(logits, y, target)
        done = self._is_adversarial(logits, y, target)
        queries = torch.ones(n, dtype=torch.int64, device=x.device)
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        for step in range(self.steps):
            idx = (~done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            m = idx.numel()
            side = round((square_fraction(self.p_init, step, self.steps) * h * w) ** 0.5)
            side = min(max(side, 1), h - 1)
            top = torch.randint(0, h - side + 1, (m,), generator=generator).to(x.device)
            left = torch.randint(0, w - side + 1, (m,), generator=generator).to(x.device)
            inside = ((rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + side))[:, :, None] & (
                (cols[None, :] >= left[:, None]) & (cols[None, :] < left[:, None] + side))[:, None, :]
            inside = inside[:, None]  # (m, 1, H, W), broadcast over channels
            current = best[idx]
            # A new ±ε value per channel for the whole square (a vertex of the L∞ box restricted to the square).
            # Redraw where the candidate equals the current image (likely with one channel: a wasted query).
            signs = rand_sign(m, c, 1, 1)
            for _ in range(10):
                candidate = (x[idx] + torch.where(inside, self.eps * signs, current - x[idx])).clamp(0, 1)
                unchanged = ((candidate - current).abs() < 1e-7).flatten(1).all(1)
                if not unchanged.any():
                    break
                signs = torch.where(unchanged[:, None, None, None], rand_sign(m, c, 1, 1), signs)
            with torch.no_grad():
                new_logits = model(candidate)
            new_loss = self._loss(new_logits, y[idx], None if target is None else target[idx])
            improved = new_loss > loss[idx]
            best[idx[improved]] = candidate[improved]
            loss[idx[improved]] = new_loss[improved]
            queries[idx] += 1
            adversarial = self._is_adversarial(new_logits, y[idx], None if target is None else target[idx])
            done[idx[improved & adversarial]] = True
        return best, {"queries": queries}

    @staticmethod
    def _is_adversarial(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        pred = logits.argmax(1)
        return pred != y if target is None else pred == target
