"""Per-sample attack losses on logits. Each returns a (N,) tensor that the attack *increases*.

For a targeted attack the sign is flipped by the caller's choice of loss (``targeted_*``), so every gradient
step is an ascent step; this keeps the sign convention in one place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted: CE of the true class (ascending it pushes away from y)."""
    return F.cross_entropy(logits, y, reduction="none")


def targeted_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted: minus CE of the target class (ascending it raises the target's probability)."""
    return -F.cross_entropy(logits, target, reduction="none")


def score(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Untargeted class score: minus the true class's logit ``-F_y(x)`` (ascending it lowers the score of y)."""
    return -logits.gather(1, y[:, None]).squeeze(1)


def targeted_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted class score ``F_t(x)``, the target's logit (Wang, Kunin, Pyron's targeted FGSM and gradient step
    ascend ``∇ₓ F_t``, not the log-probability; the two directions differ by the softmax's normalizer)."""
    return logits.gather(1, target[:, None]).squeeze(1)


def margin(logits: torch.Tensor, y: torch.Tensor, kappa: float = float("inf")) -> torch.Tensor:
    """C&W margin ``max_{j != y} z_j - z_y``, clipped at ``kappa`` (Carlini & Wagner 2017, f6)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(dim=1)
    return (other - true).clamp(max=kappa)


def targeted_margin(logits: torch.Tensor, target: torch.Tensor, kappa: float = float("inf")) -> torch.Tensor:
    """Targeted C&W margin ``z_t - max_{j != t} z_j``, clipped at ``kappa``."""
    return (-margin(logits, target)).clamp(max=kappa)


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020, eq. 5): scale-invariant margin, untargeted.

    ``-(z_y - max_{j != y} z_j) / (z_π1 - z_π3)`` with π the descending order of the logits.
    """
    sorted_logits = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    is_top = sorted_logits[:, 0] == true
    best_other = torch.where(is_top, sorted_logits[:, 1], sorted_logits[:, 0])
    return -(true - best_other) / (sorted_logits[:, 0] - sorted_logits[:, 2] + 1e-12)


def targeted_dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020, eq. 6): ``-(z_y - z_t) / (z_π1 - (z_π3 + z_π4) / 2)``."""
    sorted_logits = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    tgt = logits.gather(1, target[:, None]).squeeze(1)
    return -(true - tgt) / (sorted_logits[:, 0] - 0.5 * (sorted_logits[:, 2] + sorted_logits[:, 3]) + 1e-12)
