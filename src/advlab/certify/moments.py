"""Randomized smoothing beside the stochastic feedforward network: two answers to one question.

Both look at a classifier under independent Gaussian pixel noise N(x, σ² I). Smoothing (Cohen et al. 2019)
samples it: PREDICT takes the plurality class of n noisy copies. The moment network (Jin, Dundar, Culurciello 2015)
propagates the noise's mean and variance through the layers in one pass and classifies by the mean logits. This
module measures how often they agree and what each costs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from advlab.certify.smoothing import ABSTAIN, SmoothedClassifier, image_generator
from advlab.defenses.stochastic import MomentNetwork
from advlab.evaluate.inputs import DataLike, EvalData, as_eval_data, model_device


@dataclass(frozen=True)
class Agreement:
    """Per dataset: ``agreement`` = share of the images PREDICT did not abstain on where the moment network gives
    the same class; seconds per image of each (same device, batch of one image for PREDICT's n samples)."""

    images: int
    abstained: int
    agreement: float
    moment_accuracy: float
    smoothed_accuracy: float
    moment_seconds_per_image: float
    smoothing_seconds_per_image: float

    @property
    def cost_ratio(self) -> float:
        """How many times longer PREDICT takes than the moment network."""
        return self.smoothing_seconds_per_image / max(self.moment_seconds_per_image, 1e-12)

    def to_dict(self) -> dict[str, float]:
        return asdict(self) | {"cost_ratio": self.cost_ratio}


def moment_network_agreement(model: nn.Module, data: DataLike | EvalData, *, sigma: float, n: int = 1000,
                             alpha: float = 0.001, seed: int = 0, batch_size: int = 100) -> Agreement:
    """Compare PREDICT (``n`` samples, level ``alpha``) with ``MomentNetwork(model, σ²)`` on every image of ``data``.

    σ in [0, 1] pixel units, the same noise for both (unclipped, as both methods assume).
    """
    data = as_eval_data(data)
    device = model_device(model, None)
    moments = MomentNetwork(model, input_variance=float(sigma) ** 2).eval()
    begin = time.perf_counter()
    moment_pred = []
    with torch.no_grad():
        for index in range(data.num_batches(batch_size)):
            x, _ = data.batch(index, batch_size, device)
            moment_pred.append(moments(x).argmax(dim=-1).cpu())
    moment_seconds = time.perf_counter() - begin
    predicted = torch.cat(moment_pred)
    smoothed = SmoothedClassifier(model, sigma, batch_size=min(n, 1000))
    labels, votes = [], []
    begin = time.perf_counter()
    for index in range(len(data)):
        x, y = data.batch(index, 1, device)
        votes.append(smoothed.predict(x[0], n, alpha, image_generator(seed, index, device)))
        labels.append(int(y[0]))
    smoothing_seconds = time.perf_counter() - begin
    vote, truth = torch.tensor(votes), torch.tensor(labels)
    decided = vote != ABSTAIN
    agree = float((vote[decided] == predicted[decided]).float().mean()) if decided.any() else float("nan")
    return Agreement(images=len(data), abstained=int((~decided).sum()), agreement=agree,
                     moment_accuracy=float((predicted == truth).float().mean()),
                     smoothed_accuracy=float((vote == truth).float().mean()),
                     moment_seconds_per_image=moment_seconds / len(data),
                     smoothing_seconds_per_image=smoothing_seconds / len(data))
