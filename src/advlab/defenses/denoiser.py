"""A denoising autoencoder that purifies adversarial images before a fixed classifier.

Paper: Wang, Kunin, Pyron, "Exploring adversarial input spaces" (their proposed defense; in the line of MagNet,
Meng & Chen 2017, arXiv:1705.09064): train a small convolutional autoencoder D on (adversarial, clean) pairs with
the mean-squared error ``‖D(x_adv) − x‖²``, where x_adv is made by a given attack against the fixed classifier f;
deploy ``f(D(x))``. Threat model: that of the attack used for the pairs (L∞ FGSM/PGD by default).

Caveat for evaluation: the purifier is differentiable, so white-box attacks on ``Purified(D, f)`` (the whole
pipeline) are the honest test; the "share of adversarial labels fixed" measures purification of examples made
against f alone (a gray-box setting, as in the paper).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from advlab.data.dataset import ImageDataset
from advlab.defenses.registry import register_defense
from advlab.errors import InputError
from advlab.objectives import ObjectiveBase

if TYPE_CHECKING:
    from advlab.attacks.base import Attack


class ConvDenoiser(nn.Module):
    """Small conv encoder-decoder predicting a correction: ``D(x) = clip(x + decoder(encoder(x)), 0, 1)``.

    Encoder: two 3×3 conv layers (``width`` channels, the second with stride 2: H×W -> ⌈H/2⌉×⌈W/2⌉); decoder: a
    4×4 stride-2 transposed conv back to full size and a 3×3 conv to ``channels``. The last layer starts at zero,
    so an untrained denoiser is the identity: training starts from "change nothing" instead of from a blur.

    Args: channels: image channels (1 MNIST, 3 CIFAR-10); width: feature channels (default 32).
    Shapes: (N, C, H, W) in [0, 1] -> (N, C, H, W) in [0, 1] (odd sizes are cropped back).
    """

    def __init__(self, channels: int = 1, width: int = 32) -> None:
        super().__init__()
        if channels < 1 or width < 1:
            raise InputError(f"channels and width must be positive, got channels={channels}, width={width}")
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        upsample = nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
        last = nn.Conv2d(width, channels, 3, padding=1)
        self.decoder = nn.Sequential(upsample, nn.ReLU(inplace=True), last)
        nn.init.zeros_(last.weight)
        if last.bias is not None:  # always (bias=True); the check narrows the Optional type
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        correction = self.decoder(self.encoder(x))[..., :height, :width]
        return (x + correction).clamp(0.0, 1.0)


class Purified(nn.Module):
    """``classifier(denoiser(x))``: the purifier in front of the classifier. (N, C, H, W) -> (N, num_classes)."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.denoiser, self.classifier = denoiser, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.denoiser(x))


@dataclass(kw_only=True)
class DenoisingObjective(ObjectiveBase):
    """Objective for the *denoiser*: ``MSE(D(x_adv), x) + clean_weight · MSE(D(x), x)``.

    ``x_adv = attack.perturb(classifier, x, y)`` is made per batch against the fixed classifier (fresh random starts
    every epoch for PGD). The optional clean term teaches D to leave clean images alone. The ``model`` passed by
    the training loop is the denoiser; labels are only used by the attack.

    Args: classifier: fixed model f; attack: an :class:`~advlab.attacks.base.Attack` instance;
    clean_weight: weight of the clean reconstruction term (default 0).
    """

    name: ClassVar[str] = "denoiser"
    classifier: nn.Module
    attack: Attack
    clean_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.clean_weight < 0:
            raise InputError(f"clean_weight must be >= 0, got {self.clean_weight}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if next(self.classifier.parameters()).device != x.device:  # fit moves the denoiser, not the classifier
            self.classifier.to(x.device)
        adversarial = self.attack.perturb(self.classifier, x, y)
        loss = F.mse_loss(model(adversarial), x)
        if self.clean_weight > 0:
            loss = loss + self.clean_weight * F.mse_loss(model(x), x)
        return loss

    def describe(self) -> dict[str, Any]:
        # Only the attack's plain settings (numbers, strings, flags) go to the JSON card.
        attack = self.attack
        plain = (bool, int, float, str, type(None))
        settings = {f.name: getattr(attack, f.name) for f in fields(attack)
                    if isinstance(getattr(attack, f.name), plain)} if is_dataclass(attack) else {}
        return {"name": self.name, "attack": type(attack).__name__, "attack_settings": settings,
                "clean_weight": self.clean_weight}


def purification_hook(classifier: nn.Module, val_set: ImageDataset, attack: Attack, *, n: int | None = 256,
                      batch_size: int = 256, seed: int = 0) -> Callable[[nn.Module, int], dict[str, float]]:
    """``eval_hook(denoiser, epoch)`` for ``fit``: purification metrics on held-out adversarial examples.

    The adversarial examples of ``n`` validation images (drawn once with ``seed``) are made once, against the
    fixed classifier, on the first call; each epoch reports ``purify_loss`` (MSE of D(x_adv) to x; a ``*loss``
    name, so ``best_metric="purify_loss"`` keeps the lowest) and ``purify_fixed_share`` (see
    :func:`purification_report`).
    """
    subset = val_set.subset(n, seed=seed)
    cache: dict[str, torch.Tensor] = {}

    def eval_hook(denoiser: nn.Module, epoch: int) -> dict[str, float]:
        device = next(denoiser.parameters()).device
        if not cache:
            classifier.to(device)
            batches = [(x, y, attack.perturb(classifier, x, y)) for x, y in subset.batches(batch_size, device=device)]
            cache.update(x=torch.cat([b[0] for b in batches]), y=torch.cat([b[1] for b in batches]),
                         adv=torch.cat([b[2] for b in batches]))
        report = purification_report(denoiser, classifier, cache["x"], cache["adv"], cache["y"])
        return {"purify_loss": report["mse_purified"], "purify_fixed_share": report["fixed_share"]}

    return eval_hook


@torch.no_grad()
def purification_report(denoiser: nn.Module, classifier: nn.Module, clean: torch.Tensor,
                        adversarial: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """How much the denoiser undoes adversarial examples made against ``classifier``.

    Returns (numbers as floats): ``mse_adversarial`` (‖x_adv − x‖² per pixel), ``mse_purified`` (‖D(x_adv) − x‖²),
    ``accuracy_adversarial`` (f on x_adv), ``accuracy_purified`` (f on D(x_adv)), ``accuracy_clean_purified``
    (f on D(x)), and ``fixed_share``: the share of the examples f misclassifies whose label D restores
    (0 when none are misclassified).
    """
    from advlab.attacks.base import frozen_eval

    with frozen_eval(denoiser), frozen_eval(classifier):
        purified = denoiser(adversarial)
        adv_pred = classifier(adversarial).argmax(dim=-1)
        purified_pred = classifier(purified).argmax(dim=-1)
        clean_purified_pred = classifier(denoiser(clean)).argmax(dim=-1)
    fooled = adv_pred != labels
    fixed = fooled & (purified_pred == labels)
    return {
        "mse_adversarial": float(F.mse_loss(adversarial, clean)),
        "mse_purified": float(F.mse_loss(purified, clean)),
        "accuracy_adversarial": float((adv_pred == labels).float().mean()),
        "accuracy_purified": float((purified_pred == labels).float().mean()),
        "accuracy_clean_purified": float((clean_purified_pred == labels).float().mean()),
        "fixed_share": float(fixed.sum()) / max(1, int(fooled.sum())),
    }


@register_defense("denoiser", stochastic=False, paper="Wang, Kunin, Pyron, Exploring adversarial input spaces",
                  summary="conv autoencoder trained on (adversarial, clean) pairs, put before the classifier")
@dataclass(frozen=True, kw_only=True)
class DenoiserDefense:
    """The ``denoiser`` defense: builds the autoencoder and its objective; :meth:`purified` puts it before a
    classifier.

    A :class:`~advlab.defenses.base.TwoStageRecipe`: :mod:`advlab.training.two_stage` trains the classifier, then
    the denoiser against it; :meth:`deployed_model` rebuilds the purified model (a fresh denoiser) for loading.

    Args: width: denoiser feature channels; clean_weight: clean reconstruction term; attack / attack_settings:
    the registered attack (name and settings) that makes the training pairs, default FGSM with ε = 0.1;
    channels: image channels of the denoiser.

    Example::

        defense = DenoiserDefense(attack="pgd", attack_settings={"eps": 0.3, "steps": 10, "step_size": 0.05})
        denoiser = defense.build(channels=1)
        train_denoiser(denoiser, classifier, train_set, attack=defense.make_attack(), config=TrainConfig(...))
        # (train_denoiser from advlab.training.two_stage)
        protected = defense.purified(classifier, denoiser)
    """

    name: ClassVar[str] = "denoiser"
    stochastic: ClassVar[bool] = False

    width: int = 32
    clean_weight: float = 0.0
    attack: str = "fgsm"
    attack_settings: dict[str, Any] | None = None
    channels: int = 1

    def build(self, channels: int | None = None) -> ConvDenoiser:
        return ConvDenoiser(channels=self.channels if channels is None else channels, width=self.width)

    def make_attack(self) -> Attack:
        from advlab.attacks.registry import create_attack

        settings = {"eps": 0.1} if self.attack_settings is None else dict(self.attack_settings)
        return create_attack(self.attack, **settings)

    def objective(self, classifier: nn.Module) -> DenoisingObjective:
        return DenoisingObjective(classifier=classifier, attack=self.make_attack(), clean_weight=self.clean_weight)

    def purified(self, classifier: nn.Module, denoiser: nn.Module | None = None) -> Purified:
        """``classifier(denoiser(x))``; without a denoiser a fresh one (to load a saved purified model into)."""
        purified = Purified(self.build() if denoiser is None else denoiser, classifier)
        spec = getattr(classifier, "advlab_spec", None)
        if spec is not None:  # the card names the classifier's architecture; the defense card adds the denoiser
            purified.advlab_spec = spec
        return purified

    def deployed_model(self, model: nn.Module) -> Purified:
        """The purified model around the classifier ``model`` with a fresh denoiser: a checkpoint loads into it."""
        return self.purified(model)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "width": self.width, "clean_weight": self.clean_weight, "attack": self.attack,
                "attack_settings": self.attack_settings, "channels": self.channels}
