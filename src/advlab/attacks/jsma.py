"""JSMA: the Jacobian-based Saliency Map Attack, raising the two most salient pixels to the maximum each step.

Paper: N. Papernot, P. McDaniel, S. Jha, M. Fredrikson, Z. B. Celik, A. Swami, "The Limitations of Deep Learning
in Adversarial Settings", 2016, arXiv:1511.07528 (Algorithms 2-3, the increasing variant θ = +1).

Saliency rules (``JSMA(saliency=...)``), with α_p = ∂F_t/∂x_p and β_p = Σ_{k≠t} ∂F_k/∂x_p on the logits F:
    * "pairs": Papernot's pair score α_pq·|β_pq| subject to α_pq > 0, β_pq < 0 (Algorithm 3).
    * "additive": the single-pixel score of Wang, Kunin, Pyron ("Exploring Adversarial Input Spaces for
      Convolutional Neural Network Defense", §1.1): ``∂F_t/∂x_p + Σ_{k≠t} −∂F_k/∂x_p = α_p − β_p``; the paper only
      says that "the fraction of pixels with the highest impactfulness are updated", so the update (the two
      highest-scoring pixels per step, set to 1.0, as in the pair rule) is not in that paper: our choice.
    * "target": the two largest α_p (ART's simplification).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from advlab.attacks.base import Attack, Norm
from advlab.attacks.registry import register_attack
from advlab.errors import InputError


def target_and_other_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, others: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Logits (N, K), α = ∂z_t/∂x and β = ∂(Σ_{j≠t} z_j)/∂x, both flattened to (N, D), from two backward passes.

    ``others=False`` skips the second backward pass and returns β = None (the target-only saliency needs α alone).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        (alpha,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), x, retain_graph=others)
        beta = None
        if others:
            (total,) = torch.autograd.grad(logits.sum(), x)
            beta = (total - alpha).flatten(1)
    return logits.detach(), alpha.flatten(1), beta


def best_pixel_pairs(alpha: torch.Tensor, beta: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The pair (p, q), p ≠ q, both in ``domain``, maximizing ``α_pq · |β_pq|`` subject to α_pq > 0, β_pq < 0.

    ``α_pq = α_p + α_q`` and ``β_pq = β_p + β_q`` (paper, Algorithm 3). Builds the (N, D, D) pairwise scores;
    ties go to the first pair in row-major order. Returns ``(p, q, found)``, each (N,); ``found`` is False where
    no pair satisfies the conditions.
    """
    # Pixels outside the domain get α = -big, β = +big, so every pair containing one fails a sign condition.
    big = torch.finfo(alpha.dtype).max / 4
    alpha = alpha.masked_fill(~domain, -big)
    beta = beta.masked_fill(~domain, big)
    # Two (N, D, D) buffers, updated in place: α_pq clipped to > 0, β_pq clipped to < 0, so their product is
    # -α_pq·|β_pq| where both conditions hold and 0 elsewhere.
    scores = (alpha[:, :, None] + alpha[:, None, :]).clamp_(min=0)
    scores.mul_((beta[:, :, None] + beta[:, None, :]).clamp_(max=0)).neg_()
    scores.diagonal(dim1=1, dim2=2).zero_()
    best_score, best = scores.flatten(1).max(dim=1)
    found = best_score > 0
    return best // alpha.shape[1], best % alpha.shape[1], found


def best_target_pixels(alpha: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The two features in ``domain`` with the largest target gradient ``α`` (no condition on the other classes).

    The simplified saliency of ART's ``SaliencyMapMethod``: it ignores β, so it also moves pixels that raise other
    classes, but it never runs out of admissible pairs. Returns ``(p, q, found)``, each (N,); ``found`` is False
    where fewer than two features remain in the domain.
    """
    scores = alpha.masked_fill(~domain, float("-inf"))
    top = scores.topk(2, dim=1)
    return top.indices[:, 0], top.indices[:, 1], torch.isfinite(top.values[:, 1])


def best_additive_pixels(alpha: torch.Tensor, beta: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The two features in ``domain`` with the largest additive saliency ``α_p − β_p`` (Wang et al.'s score).

    A feature with a positive score raises the target's logit more than it raises the others' sum. Returns
    ``(p, q, found)``, each (N,); ``found`` is False where fewer than two features remain in the domain or no
    feature has a positive score (raising any pixel would not help).
    """
    scores = (alpha - beta).masked_fill(~domain, float("-inf"))
    top = scores.topk(2, dim=1)
    return top.indices[:, 0], top.indices[:, 1], torch.isfinite(top.values[:, 1]) & (top.values[:, 0] > 0)


SALIENCY_RULES = ("pairs", "additive", "target")


@register_attack("jsma", family="saliency", norm="l0")
@dataclass(frozen=True, kw_only=True)
class JSMA(Attack):
    """JSMA (targeted, L0): set two salient features to 1.0 per step until the target class wins or the budget ends.

    Threat model: white-box, L0; at most ``gamma`` of the D = C·H·W features change (enforced here; no ε-ball).
    Saliency uses the logits' Jacobian, as the authors' cleverhans implementation does.

    Args:
        gamma: maximum fraction of features changed (paper: 0.1 on MNIST, i.e. ⌊γD/2⌋ two-pixel steps).
        saliency: "pairs" (default): the paper's pair saliency α_pq·|β_pq| with α_pq > 0, β_pq < 0; "additive":
            Wang et al.'s single-pixel score α_p − β_p, the two best pixels per step (the update is our choice);
            "target": the two largest target gradients (ART's simplification; it can reach the target where the
            paper's sign conditions leave no admissible pair: see ``benchmarks/README.md``).
        pair_chunk: images whose (D, D) pair scores are built at once; memory is ``pair_chunk · D² · 4`` bytes
            per temporary (32 MNIST images ≈ 80 MB).

    Untargeted calls (no ``target``) attack toward the clean image's second most likely class, the usually
    cheapest target; the paper's attack is targeted only.

    Shapes: x (N, C, H, W) in [0, 1]; target (N,). A sample stops when it reaches the target, exhausts the budget
    or no pixel pair satisfies the saliency conditions.

    Example::

        result = JSMA(gamma=0.1)(model, x, target=(y + 1) % 10)
        print(result.success_rate, result.norms["l0"].mean())
    """

    norm: ClassVar[Norm] = Norm.L0

    gamma: float = 0.1
    pair_chunk: int = 32
    saliency: str = "pairs"

    def __post_init__(self) -> None:
        if not 0 < self.gamma <= 1 or self.pair_chunk < 1:
            raise InputError(f"JSMA needs 0 < gamma <= 1 and pair_chunk >= 1, got {self.gamma}, {self.pair_chunk}")
        if self.saliency not in SALIENCY_RULES:
            raise InputError(f"unknown saliency {self.saliency!r}; choose one of {', '.join(SALIENCY_RULES)}")

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        if target is None:
            with torch.no_grad():
                target = model(x).scatter(1, y[:, None], float("-inf")).argmax(1)
        adv = x.clone().flatten(1)
        # Features already at the maximum cannot be increased, so they start outside the search domain.
        domain = adv < 1.0
        max_steps = int(self.gamma * adv.shape[1]) // 2
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(max_steps):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            logits, alpha, beta = target_and_other_gradients(model, adv[idx].view(-1, *x.shape[1:]), target[idx],
                                                             others=self.saliency != "target")
            reached = logits.argmax(1) == target[idx]
            for start in range(0, idx.numel(), self.pair_chunk):
                rows = idx[start:start + self.pair_chunk]
                part = slice(start, start + self.pair_chunk)
                p, q, found = self._pick(alpha[part], None if beta is None else beta[part], domain[rows])
                move = found & ~reached[part]
                moving = rows[move]
                for pixel in (p[move], q[move]):
                    adv[moving, pixel] = 1.0
                    domain[moving, pixel] = False
                active[rows[~move]] = False
        return adv.view_as(x)

    def _pick(self, alpha: torch.Tensor, beta: torch.Tensor | None, domain: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The two features to raise under this attack's saliency rule: ``(p, q, found)``, each (N,)."""
        if self.saliency == "target" or beta is None:
            return best_target_pixels(alpha, domain)
        if self.saliency == "additive":
            return best_additive_pixels(alpha, beta, domain)
        return best_pixel_pairs(alpha, beta, domain)
