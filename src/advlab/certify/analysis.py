"""The ``certified`` analysis: what randomized smoothing proves beside what an attack on it reaches.

Two curves over the L2 radius, for the report to draw in one plot: the certified accuracy of CERTIFY (Cohen et
al. 2019) and the accuracy of the smoothed classifier under PGD-L2 (the attack of Salman et al. 2019,
arXiv:1906.04584, "SmoothAdv": PGD on the soft smoothed classifier, the mean softmax over noise samples). The gap
between them is what is neither proven nor broken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advlab.attacks.pgd import PGDL2
from advlab.certify.dataset import certify_dataset
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, model_device
from advlab.evaluate.payloads import curve_payload
from advlab.evaluate.randomness import seeded

DEFAULT_SIGMA = 0.25
DEFAULT_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


class SoftSmoothed(nn.Module):
    """log of the mean softmax of ``model`` over ``samples`` Gaussian copies of each image (σ in [0, 1] units).

    Salman et al.'s soft smoothed classifier: differentiable, and its argmax is (for many samples) the smoothed
    classifier's prediction. (N, C, H, W) -> (N, K). ``stochastic = True``: every pass draws new noise.
    """

    stochastic = True

    def __init__(self, model: nn.Module, sigma: float, samples: int) -> None:
        super().__init__()
        self.model, self.sigma, self.samples = model, float(sigma), int(samples)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        copies = x.repeat_interleave(self.samples, dim=0)
        logits = self.model(copies + self.sigma * torch.randn_like(copies))
        probabilities = logits.softmax(dim=-1).view(x.shape[0], self.samples, -1).mean(dim=1)
        return probabilities.clamp_min(1e-12).log()


def training_sigma(model_card: Mapping[str, Any]) -> float | None:
    """The Gaussian noise σ a model was trained with, from its card's defenses (None when it records none)."""
    for defense in model_card.get("defenses") or ():
        if defense.get("name") == "gaussian_augmentation" and isinstance(defense.get("scale"), (int, float)):
            return float(defense["scale"])
    return None


def certified_analysis(
    model: nn.Module, data: DataLike | EvalData, *, sigma: float, n0: int = 100, n: int = 1000, alpha: float = 0.001,
    radii: Sequence[float] = DEFAULT_RADII, attack_samples: int = 16, attack_steps: int = 20, batch_size: int = 64,
    seed: int = 0, state_dir: str | Path | None = None, trained_sigma: float | None = None,
) -> dict[str, dict[str, Any]]:
    """``{name: curve payload}``: certified accuracy and PGD-L2 accuracy of the smoothed classifier per radius.

    ``n`` noise samples per certificate (Cohen et al. use 100,000; fewer samples only lower the radii, never make
    them wrong); ``attack_samples`` noise copies per attack step; radii in L2 [0, 1] pixel units.
    """
    data = as_eval_data(data)
    device = model_device(model, None)
    certified = certify_dataset(model, data, sigma=sigma, n0=n0, n=n, alpha=alpha, seed=seed, device=device,
                                state_path=None if state_dir is None else Path(state_dir) / "certify.json")
    smoothed = SoftSmoothed(model, sigma, attack_samples).eval()
    attacked = []
    for radius in radii:
        correct = 0
        for index in range(data.num_batches(batch_size)):
            x, y = data.batch(index, batch_size, device)
            with seeded(seed, "smoothed-pgd", float(radius), index, device=device):  # the caller's RNG untouched
                if radius > 0:
                    x = PGDL2(eps=float(radius), steps=attack_steps, seed=seed).perturb(smoothed, x, y)
                with torch.no_grad():
                    correct += int((smoothed(x).argmax(dim=-1) == y).sum())
        attacked.append(correct / len(data))
    trained = "" if trained_sigma is None else f", trained with σ = {trained_sigma:g}"
    title = f"Smoothed classifier, σ = {sigma:g}{trained}: certified vs attacked"
    return {
        f"certified accuracy (σ = {sigma:g})": curve_payload(
            list(radii), [certified.certified_accuracy(r) for r in radii], x_label="L2 radius", title=title)
        | {"certify": {k: v for k, v in certified.to_dict().items() if k != "records"}},
        f"smoothed classifier under PGD-L2 (σ = {sigma:g})": curve_payload(
            list(radii), attacked, x_label="L2 radius", title=title)
        | {"attack": {"name": "pgd_l2 on the soft smoothed classifier", "steps": attack_steps,
                      "noise_samples": attack_samples}},
    }
