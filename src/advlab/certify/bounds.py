"""Exact binomial statistics for randomized smoothing, in float64 torch (no SciPy needed).

Cohen, Rosenfeld, Kolter, "Certified Adversarial Robustness via Randomized Smoothing" (ICML 2019,
arXiv:1902.02918): CERTIFY needs a one-sided Clopper-Pearson lower confidence bound on the top class's probability,
PREDICT a two-sided binomial test of the two top counts against p = 1/2.
"""

from __future__ import annotations

import math

import torch

from advlab.errors import InputError


def _log_pmf(n: int, p: float) -> torch.Tensor:
    """log P(Bin(n, p) = j) for j = 0..n, float64 (n + 1,); p in (0, 1)."""
    j = torch.arange(n + 1, dtype=torch.float64)
    log_choose = math.lgamma(n + 1) - torch.lgamma(j + 1) - torch.lgamma(n - j + 1)
    return log_choose + j * math.log(p) + (n - j) * math.log1p(-p)


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(Bin(n, p) >= k), exactly (summed in log space)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return float(torch.logsumexp(_log_pmf(n, p)[k:], dim=0).exp().clamp(max=1.0))


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided (1 − α) Clopper-Pearson lower bound on p from k successes in n trials.

    The p at which seeing k or more successes has probability exactly α: ``P(Bin(n, p) >= k) = α`` (the
    ``Beta(α; k, n − k + 1)`` quantile); 0 when k = 0. Found by bisection to 1e-12 (the tail grows with p).
    """
    _check_counts(k, n, alpha)
    if k == 0:
        return 0.0
    if k == n:
        return alpha ** (1.0 / n)  # closed form: p^n = α
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if binomial_upper_tail(k, n, middle) < alpha:
            low = middle
        else:
            high = middle
    return low


def binomial_two_sided_p_value(k: int, n: int) -> float:
    """Two-sided p-value of k successes in n trials against p = 1/2 (the test of Cohen et al.'s PREDICT)."""
    if n == 0:
        return 1.0
    tail = binomial_upper_tail(max(k, n - k), n, 0.5)
    return min(1.0, 2.0 * tail)


def _check_counts(k: int, n: int, alpha: float) -> None:
    if not (isinstance(n, int) and n >= 1 and isinstance(k, int) and 0 <= k <= n):
        raise InputError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must lie in (0, 1), got {alpha}")
