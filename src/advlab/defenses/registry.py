"""The defense registry: every defense under a short name, buildable from the settings in a checkpoint card.

A defense is a training *objective* (passed to ``advlab.train.fit(objective=...)``), a model *transform*
(``defense.apply(model)`` returns the defended model), or both (DESIGN.md §3.5). ``create_defense(name,
**settings)`` returns the defense object itself:

* objectives are callables ``(model, x, y) -> scalar loss`` with ``describe()`` and optional ``on_epoch_start``;
* transforms have ``apply(model)`` and ``describe()``;
* two-stage recipes (``distillation``: teacher then student; ``denoiser``: a second network in front of the
  classifier) have explicit methods for each stage (see their classes); ``advlab train`` runs both stages
  (:func:`advlab.training.recipe.train_two_stage`), and their ``apply(model)`` rebuilds the deployed model.

Every object's ``describe()`` is ``{"name": registry name, **settings}`` and :func:`defense_from_card` rebuilds it
from that dict. Each entry's info says ``kind`` ("objective" | "transform" | "both" | "recipe"), whether it makes
the model ``stochastic`` (evaluation then uses EOT and repeated trials), the ``paper`` and a one-line ``summary``.

Factories import their module on first use, so importing the registry imports no defense code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from advlab.errors import InputError
from advlab.registry import Registry

DefenseKind = Literal["objective", "transform", "both", "recipe"]

DEFENSES: Registry[Any] = Registry("defense")


def register_defense(
    name: str, *, kind: DefenseKind, stochastic: bool, paper: str = "", summary: str = "", **info: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@register_defense("pgd_at", kind="objective", stochastic=False, paper=...)`` on a factory."""
    if kind not in ("objective", "transform", "both", "recipe"):
        raise ValueError(f"defense kind must be 'objective', 'transform', 'both' or 'recipe', got {kind!r}")
    return DEFENSES.register(name, kind=kind, stochastic=stochastic, paper=paper, summary=summary, **info)


def create_defense(name: str, **settings: Any) -> Any:
    """Build a registered defense, e.g. ``create_defense("pgd_at", eps=0.3, steps=40, step_size=0.01)``.

    Unknown settings raise :class:`~advlab.errors.InputError` naming the accepted ones.
    """
    entry = DEFENSES.entry(name)
    try:
        return entry.factory(**settings)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc) and "missing" not in str(exc):
            raise
        raise InputError(f"defense {name!r}: {exc}. Check the setting names (see the defense's docstring, or "
                         f"`describe()` of a default instance).") from None


def defense_from_card(card: Mapping[str, Any]) -> Any:
    """Rebuild a defense from its ``describe()`` dict (as stored in a checkpoint card)."""
    if "name" not in card:
        raise InputError("a defense card needs a 'name' entry (the registry name); got keys "
                         f"{sorted(card)}")
    settings = {key: value for key, value in card.items() if key != "name"}
    return create_defense(str(card["name"]), **settings)


def list_defenses() -> list[str]:
    return DEFENSES.names()


# --- objectives -------------------------------------------------------------------------------------------------

@register_defense("fgsm_mixed", kind="objective", stochastic=False,
                  paper="Goodfellow et al. 2015 (arXiv:1412.6572); Hao, Chen, Huang, Fooling networks by adding "
                        "noises", summary="alpha*CE(x) + (1-alpha)*CE(x_FGSM), alpha = 0.5")
def _fgsm_mixed(**settings: Any) -> Any:
    from advlab.defenses.adversarial_training import FGSMMixedLoss

    return FGSMMixedLoss(**settings)


@register_defense("pgd_at", kind="objective", stochastic=False, paper="Madry et al. 2018 (arXiv:1706.06083)",
                  summary="L-inf PGD adversarial training; clean/adversarial weights, true or predicted labels")
def _pgd_at(**settings: Any) -> Any:
    from advlab.defenses.adversarial_training import PGDAdversarialTraining

    return PGDAdversarialTraining(**settings)


@register_defense("fast_fgsm", kind="objective", stochastic=False,
                  paper="Wong, Rice, Kolter 2020 (arXiv:2001.03994)",
                  summary="FGSM from a uniform random start, step 1.25*eps; guard with pgd_accuracy_hook; "
                          "start_in_box=False (gradient at the unclipped start) is Wong et al.'s MNIST recipe")
def _fast_fgsm(**settings: Any) -> Any:
    from advlab.defenses.adversarial_training import FastFGSMTraining

    return FastFGSMTraining(**settings)


@register_defense("n_fgsm", kind="objective", stochastic=False,
                  paper="de Jorge et al. 2022 (arXiv:2202.01181)",
                  summary="FGSM (step eps) from U(-2eps, 2eps) noise, not projected: fast training without "
                          "catastrophic overfitting")
def _n_fgsm(**settings: Any) -> Any:
    from advlab.defenses.adversarial_training import NoiseFGSMTraining

    return NoiseFGSMTraining(**settings)


@register_defense("grad_align", kind="objective", stochastic=False,
                  paper="Andriushchenko & Flammarion 2020 (arXiv:2007.02617)",
                  summary="FGSM training plus a penalty on misaligned input gradients at x and x + U(-eps, eps) "
                          "noise: the authors' remedy for catastrophic overfitting")
def _grad_align(**settings: Any) -> Any:
    from advlab.defenses.adversarial_training import GradAlignTraining

    return GradAlignTraining(**settings)


@register_defense("per_epoch_adversarial", kind="objective", stochastic=False,
                  paper="van Everdingen, CNNs and adversarial examples",
                  summary="FGSM set regenerated once an epoch against a snapshot of the model")
def _per_epoch_adversarial(**settings: Any) -> Any:
    from advlab.defenses.adversarial_training import PerEpochAdversarialTraining

    return PerEpochAdversarialTraining(**settings)


@register_defense("random_sign_training", kind="objective", stochastic=False,
                  paper="van Everdingen, CNNs and adversarial examples",
                  summary="training images plus random-sign noise eps*R, R in {-1,+1}^d, a fresh draw per batch "
                          "(the paper's one pre-drawn set: advlab.defenses.noise.with_random_sign_set)")
def _random_sign_training(**settings: Any) -> Any:
    from advlab.defenses.noise import RandomSignNoiseTraining

    return RandomSignNoiseTraining(**settings)


@register_defense("gaussian_augmentation", kind="objective", stochastic=False,
                  summary="training images plus Gaussian noise sigma*N(0, I)")
def _gaussian_augmentation(**settings: Any) -> Any:
    from advlab.defenses.noise import GaussianNoiseAugmentation

    return GaussianNoiseAugmentation(**settings)


@register_defense("distillation", kind="recipe", stochastic=False,
                  paper="Papernot et al. 2016 (arXiv:1511.04508); van Everdingen's T=1 -> T=4 variant",
                  summary="teacher at T, student on soft labels at T, deployed at T = 1 (masks gradients)")
def _distillation(**settings: Any) -> Any:
    from advlab.defenses.distillation import DefensiveDistillation

    return DefensiveDistillation(**settings)


# --- transforms ---------------------------------------------------------------------------------------------------

@register_defense("input_noise", kind="transform", stochastic=True,
                  paper="van Everdingen, CNNs and adversarial examples",
                  summary="random-sign or Gaussian noise before the classifier; one draw or a majority vote")
def _input_noise(**settings: Any) -> Any:
    from advlab.defenses.noise import InputNoiseTransform

    return InputNoiseTransform(**settings)


@register_defense("mc_dropout", kind="transform", stochastic=True,
                  paper="Wang, Kunin, Pyron, Exploring adversarial input spaces",
                  summary="n passes with dropout on: vote ensemble and vote-disagreement detector")
def _mc_dropout(**settings: Any) -> Any:
    from advlab.defenses.dropout_ensemble import MCDropoutTransform

    return MCDropoutTransform(**settings)


@register_defense("denoiser", kind="recipe", stochastic=False,
                  paper="Wang, Kunin, Pyron, Exploring adversarial input spaces",
                  summary="conv autoencoder trained on (adversarial, clean) pairs, put before the classifier")
def _denoiser(**settings: Any) -> Any:
    from advlab.defenses.denoiser import DenoiserDefense

    return DenoiserDefense(**settings)


# --- noise and moment transforms (advlab.defenses.pni, advlab.defenses.stochastic) --------------------------------

@register_defense("pni", kind="transform", stochastic=True,
                  paper="Rakin, He, Fan 2019, Parametric Noise Injection (arXiv:1811.09310)",
                  summary="trainable Gaussian noise on weights/activations; train with PGDAdversarialTraining.pni()")
def _pni(**settings: Any) -> Any:
    from advlab.defenses.pni import PNITransform

    return PNITransform(**settings)


@register_defense("stochastic_feedforward", kind="transform", stochastic=False,
                  paper="Jin, Dundar, Culurciello 2015 (arXiv:1511.06306)",
                  summary="propagates input-noise means and variances through the trained network (deterministic)")
def _stochastic_feedforward(**settings: Any) -> Any:
    from advlab.defenses.stochastic import MomentPropagationTransform

    return MomentPropagationTransform(**settings)


@register_defense("stochastic", kind="transform", stochastic=False, alias_of="stochastic_feedforward",
                  paper="Jin, Dundar, Culurciello 2015 (arXiv:1511.06306)",
                  summary="short name of stochastic_feedforward (cards record that name)")
def _stochastic(**settings: Any) -> Any:
    return _stochastic_feedforward(**settings)
