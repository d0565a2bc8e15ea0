"""Random input noise as a defense: noise-augmented training objectives and an inference-time noise wrapper.

From "CNNs and adversarial examples" (van Everdingen): training images get random-sign noise ε·R, R ∈ {−1, +1}^d
uniformly at random (Eq. 2; the cheapest "adversarial-looking" perturbation: the same L∞ size as FGSM, random
direction), and, as the usual baseline, Gaussian noise σ·N(0, I). At inference, the same noise can be added before
classification, either one draw per forward pass or a majority vote over several draws.

Two ways to train on random-sign copies:
    * :func:`with_random_sign_set`: the paper's "Random Adversarial Training" (§6): ONE set of random-sign
      examples, made before training, added to the training set (train on the union with plain cross-entropy).
    * :class:`RandomSignNoiseTraining`: a fresh draw for every batch, the alternative the paper suggests but does
      not test (§6).

All scales are in [0, 1] pixel units; noisy images are clipped back to [0, 1] so the model sees valid images.

Evaluating a noisy model honestly (Athalye, Carlini, Wagner 2018, arXiv:1802.00420): the single-draw wrapper is
randomized, so it declares ``stochastic = True`` and evaluation attacks it with EOT (gradients averaged over draws)
and reports accuracy over repeated trials. The voting wrapper's output is piecewise constant in the input (its
gradient is zero almost everywhere), so gradient attacks on it see nothing; the honest attack on a vote is EOT-PGD
on :meth:`InputNoise.single_draw`, then the vote is evaluated on the adversarial images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.defenses.adversarial_training import PerturbedInputObjective
from advlab.defenses.base import TransformBase
from advlab.defenses.registry import register_defense
from advlab.errors import InputError

NoiseKind = Literal["random_sign", "gaussian"]
NOISE_KINDS: tuple[str, ...] = ("random_sign", "gaussian")


def check_noise(kind: str, scale: float) -> None:
    if kind not in NOISE_KINDS:
        raise InputError(f"noise kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    if not isinstance(scale, (int, float)) or math.isnan(scale) or scale < 0:
        raise InputError(f"noise scale must be a number >= 0 in [0, 1] pixel units, got {scale!r}")


def add_noise(x: torch.Tensor, kind: NoiseKind, scale: float, *, clip: bool = True) -> torch.Tensor:
    """``x + scale·R`` with R uniform random signs (``random_sign``) or standard normal (``gaussian``).

    Shapes: x (N, C, H, W) -> same; a fresh independent draw per element and per call. ``clip`` clamps to [0, 1].
    """
    if kind == "random_sign":
        noise = torch.empty_like(x).bernoulli_(0.5).mul_(2.0).sub_(1.0)
    elif kind == "gaussian":
        noise = torch.randn_like(x)
    else:
        raise InputError(f"noise kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    noisy = x + scale * noise
    return noisy.clamp(0.0, 1.0) if clip else noisy


def random_sign_set(data: ImageDataset, eps: float, *, seed: int = 0) -> ImageDataset:
    """The random-sign copy of ``data`` (Eq. 2 of van Everdingen): ``clip(x + ε·R)``, R uniform in {−1, +1}^d.

    Drawn once, from ``seed``, for every image. Datasets hold uint8 images, so ``x + ε·R`` is rounded to the
    1/255 grid stochastically: a pixel moves by ⌊255ε⌋ or ⌈255ε⌉ levels with the probabilities that make its
    expected move exactly ε (ε = 0.01 = 2.55/255: 2 or 3 levels, 3 with probability 0.55), always in R's
    direction. Then clipped to [0, 255]. Same shape, labels and classes as ``data``.
    """
    check_noise("random_sign", eps)
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, data.images.shape, generator=generator, dtype=torch.int8).float().mul_(2).sub_(1)
    uniform = torch.rand(data.images.shape, generator=generator)
    levels = torch.floor(255.0 * eps * signs + uniform)  # stochastic rounding: E[levels] = 255·ε·R
    images = (data.images.float() + levels).clamp_(0, 255).to(torch.uint8)
    return ImageDataset(images, data.labels.clone(), data.classes, f"{data.name}+random_sign({eps:g})", data.info)


def with_random_sign_set(data: ImageDataset, eps: float, *, seed: int = 0) -> ImageDataset:
    """``data`` followed by its :func:`random_sign_set`: the training set of the paper's Random AT (2N images).

    Example::

        fit(model, with_random_sign_set(cifar_train, 0.01), config=config)   # plain cross-entropy on the union
    """
    copies = random_sign_set(data, eps, seed=seed)
    return ImageDataset(torch.cat([data.images, copies.images]), torch.cat([data.labels, copies.labels]),
                        data.classes, f"{data.name}+random_sign_set({eps:g})", data.info)


@dataclass(kw_only=True)
class _NoiseAugmentation(PerturbedInputObjective):
    """``clean_weight · CE(x) + (1 − clean_weight) · CE(clip(x + scale·R))`` with a fresh draw per batch.

    ``clean_weight=0.5`` (default) weighs clean and noisy copies equally, i.e. training on the original set
    augmented with a noisy copy; 0 trains on noisy images only.
    """

    kind: ClassVar[NoiseKind]
    scale: float
    clean_weight: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_noise(self.kind, self.scale)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return add_noise(x, self.kind, self.scale)


@register_defense("random_sign_training", stochastic=False, paper="van Everdingen, CNNs and adversarial examples",
                  summary="training images plus random-sign noise eps*R, R in {-1,+1}^d, a fresh draw per batch "
                          "(the paper's one pre-drawn set: advlab.defenses.noise.with_random_sign_set)")
@dataclass(kw_only=True)
class RandomSignNoiseTraining(_NoiseAugmentation):
    """Training on images plus random-sign noise ε·R, R ∈ {−1, +1}^d ("CNNs and adversarial examples").

    A fresh draw for every batch: the variant van Everdingen suggests but does not test (§6). The paper's own
    Random Adversarial Training uses one set drawn before training: :func:`with_random_sign_set`.

    Args: scale: ε in [0, 1] units (e.g. 0.1 or 0.3 on MNIST); clean_weight: default 0.5.

    Example::

        fit(model, mnist_train, config=config, objective=RandomSignNoiseTraining(scale=0.3))
    """

    name: ClassVar[str] = "random_sign_training"
    kind: ClassVar[NoiseKind] = "random_sign"


@register_defense("gaussian_augmentation", stochastic=False,
                  summary="training images plus Gaussian noise sigma*N(0, I)")
@dataclass(kw_only=True)
class GaussianNoiseAugmentation(_NoiseAugmentation):
    """Training on images plus Gaussian noise σ·N(0, I), clipped to [0, 1].

    Args: scale: σ in [0, 1] units; clean_weight: default 0.5.

    Example::

        fit(model, train_set, config=config, objective=GaussianNoiseAugmentation(scale=0.1))
    """

    name: ClassVar[str] = "gaussian_augmentation"
    kind: ClassVar[NoiseKind] = "gaussian"


class InputNoise(nn.Module):
    """Adds random noise to the input before the classifier, in train and eval mode alike.

    Args:
        model: the classifier ([0, 1] images -> logits).
        kind: ``"random_sign"`` (scale·R, R ∈ {−1, +1}^d) or ``"gaussian"`` (scale·N(0, I)).
        scale: noise size in [0, 1] pixel units.
        votes: 1 returns the logits of one noisy pass (differentiable, randomized). n > 1 classifies n noisy
            copies and returns ``log(max(vote share, floor))`` per class: the argmax is the plurality vote (ties
            go to the lowest class index), the values are log-probability-like scores for calibration plots, and
            ``floor`` keeps classes nobody voted for finite. Votes carry **no gradient** (see the module
            docstring: attack :meth:`single_draw` with EOT instead).
        floor: smallest vote share before the log (default 1e-3; must be in (0, 1)).
        clip: clamp the noisy image to [0, 1] (default True).

    Shapes: (N, C, H, W) -> (N, num_classes). ``stochastic = True``: evaluation uses EOT and repeated trials.

    Example::

        noisy = InputNoise(model, kind="gaussian", scale=0.1)
        voting = InputNoise(model, kind="random_sign", scale=0.3, votes=15)
    """

    stochastic: ClassVar[bool] = True

    def __init__(self, model: nn.Module, kind: NoiseKind = "gaussian", scale: float = 0.1, votes: int = 1,
                 floor: float = 1e-3, clip: bool = True) -> None:
        super().__init__()
        check_noise(kind, scale)
        if not isinstance(votes, int) or votes < 1:
            raise InputError(f"votes must be a positive integer, got {votes!r}")
        if not 0.0 < floor < 1.0:
            raise InputError(f"floor must lie in (0, 1), got {floor}")
        self.model = model
        self.kind, self.scale, self.votes, self.floor, self.clip = kind, float(scale), votes, float(floor), clip

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        return add_noise(x, self.kind, self.scale, clip=self.clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.votes == 1:
            return self.model(self.noisy(x))
        with torch.no_grad():
            counts: torch.Tensor | None = None
            for _ in range(self.votes):
                logits = self.model(self.noisy(x))
                ballots = torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1])
                counts = ballots if counts is None else counts + ballots
            assert counts is not None
            share = counts.float() / self.votes
        return share.clamp_min(self.floor).log()

    def single_draw(self) -> InputNoise:
        """The same noise with one draw per pass (shares the classifier): the model to attack with EOT."""
        return InputNoise(self.model, self.kind, self.scale, votes=1, floor=self.floor, clip=self.clip)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, scale={self.scale}, votes={self.votes}, clip={self.clip}"


@register_defense("input_noise", stochastic=True, paper="van Everdingen, CNNs and adversarial examples",
                  summary="random-sign or Gaussian noise before the classifier; one draw or a majority vote")
@dataclass(frozen=True, kw_only=True)
class InputNoiseTransform(TransformBase):
    """The ``input_noise`` defense as a model transform: ``apply(model)`` wraps it in :class:`InputNoise`."""

    name: ClassVar[str] = "input_noise"
    stochastic: ClassVar[bool] = True

    kind: NoiseKind = "gaussian"
    scale: float = 0.1
    votes: int = 1
    floor: float = 1e-3
    clip: bool = True

    def __post_init__(self) -> None:
        check_noise(self.kind, self.scale)

    def apply(self, model: nn.Module) -> InputNoise:
        return InputNoise(model, self.kind, self.scale, self.votes, self.floor, self.clip)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "scale": self.scale, "votes": self.votes,
                "floor": self.floor, "clip": self.clip}
