"""Turn what a user types (``--model NAME --weights FILE`` or ``package.module:factory``) into a ready model.

Three sources, one function (:func:`load_model`):

* an advlab checkpoint (``run/best.safetensors`` with its JSON card): architecture, arguments and any model
  transform of its defense (PNI noise layers, ...) come from the card;
* a registry name plus foreign weights (a ``.th``/``.pt`` state dict, loaded with ``weights_only=True``, or a
  ``.safetensors`` state dict), e.g. the pretrained ResNet-20 of ``../shared/data/pretrained``; a file known by
  its sha256 (:mod:`advlab.models.pretrained`) gets the normalization its authors trained with;
* ``package.module:factory``: the user's own code, imported and called with the model arguments.

It sits above ``models/`` and ``defenses/`` (it rebuilds a checkpoint's defenses around its architecture), so
neither of those imports anything from the other direction.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from advlab.errors import CheckpointError, InputError
from advlab.models.checkpoint import card_path, load_checkpoint, read_card
from advlab.models.foreign import load_foreign_weights
from advlab.models.pretrained import identify
from advlab.models.registry import create_model


@dataclass
class LoadedModel:
    """A model in eval mode and what is known about it (its checkpoint card, or a description built here)."""

    model: nn.Module
    card: dict[str, Any] = field(default_factory=dict)


def apply_defense_transforms(model: nn.Module, defense_cards: Sequence[Mapping[str, Any]] | None) -> nn.Module:
    """Rebuild a checkpoint's defended architecture around ``model``, in the cards' order, so that its saved weights
    fit: model transforms are applied (e.g. PNI layers), two-stage recipes put their deployed model together (e.g.
    the denoiser in front of the classifier); training objectives change no architecture."""
    from advlab.defenses.base import ModelTransform, TwoStageRecipe
    from advlab.defenses.registry import DEFENSES, defense_from_card

    for defense_card in defense_cards or ():
        if DEFENSES.entry(str(defense_card.get("name"))).info["kind"] == "objective":
            continue  # not rebuilt: an objective only trained the weights
        defense = defense_from_card(defense_card)
        if isinstance(defense, TwoStageRecipe):
            model = defense.deployed_model(model)
        elif isinstance(defense, ModelTransform):
            model = defense.apply(model)
    return model


def _import_factory(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import {module_name!r} for --model {spec!r} ({exc}); check the module is on "
                         "PYTHONPATH") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise InputError(f"module {module_name!r} has no {attribute!r}; --model takes package.module:factory") from None


def build_architecture(name: str, args: Mapping[str, Any]) -> nn.Module:
    """A registry model or the user's ``package.module:factory`` called with ``args``, tagged with its spec.

    The spec (``model.advlab_spec``) is what a checkpoint's card records, so a model built from a user factory
    can be rebuilt from its card later (the module must then still be importable, e.g. with ``PYTHONPATH=.``).
    """
    if ":" not in name:
        return create_model(name, **dict(args))
    built = _import_factory(name)(**dict(args))
    if not isinstance(built, nn.Module):
        raise InputError(f"{name} returned {type(built).__name__}, not a torch.nn.Module")
    built.advlab_spec = {"name": name, "args": dict(args)}  # type: ignore[assignment]
    return built


def load_model(
    model: str | None,
    weights: str | Path | None = None,
    *,
    model_args: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
    device: str = "cpu",
) -> LoadedModel:
    """Build and load a model from a registry name, an advlab checkpoint or ``package.module:factory``.

    Args:
        model: registry name (``resnet20``), ``package.module:factory``, or None when ``weights`` is an advlab
            checkpoint whose card names the architecture.
        weights: an advlab checkpoint (``.safetensors`` with a ``.json`` card beside it) or a foreign state dict.
        model_args: keyword arguments for the factory (``{"normalization": "imagenet"}``).
        trust_pickle: allow a foreign torch file to unpickle arbitrary objects (only for files you trust).
    """
    args = dict(model_args or {})
    weights = None if weights is None else Path(weights)
    if weights is not None and not weights.exists():
        raise CheckpointError(f"weights file {weights} does not exist; check the path")
    if weights is not None and weights.is_dir():
        raise InputError(f"--weights {weights} is a folder; name the checkpoint file in it (e.g. "
                         f"{weights / 'last.safetensors'})")
    if weights is not None and weights.suffix == ".safetensors" and card_path(weights).exists():
        card = read_card(weights)
        if model and ":" not in model and card["model"].get("name") not in (None, model):
            raise InputError(f"{weights} holds a {card['model']['name']!r} model, not {model!r}; drop --model "
                             "or pass the matching name")

        name = card["model"].get("name") or model
        if not name:
            raise InputError(f"the card of {weights} does not name its architecture; pass it with --model "
                             "(a registry name or package.module:factory)")

        def build() -> nn.Module:
            base = build_architecture(name, card["model"].get("args") or {})
            return apply_defense_transforms(base, card.get("defenses"))

        loaded, card = load_checkpoint(weights, device=device, build=build)
        return LoadedModel(loaded, card)
    if not model:
        raise InputError("name the architecture with --model (a registry name or package.module:factory), "
                         "or pass an advlab checkpoint (.safetensors with its .json card) as --weights")
    known = identify(weights) if weights is not None else None
    if known is not None and known.model == model:
        args = {**known.args, **args}  # the authors' preprocessing, unless the user chose otherwise
    built = build_architecture(model, args)
    description: dict[str, Any] = {"model": {"name": model, "args": args}}
    if ":" in model:
        description["model"]["source"] = "user factory"
    if weights is not None:
        load_foreign_weights(built, weights, trust_pickle=trust_pickle)
        description["weights"] = {"file": str(weights), "format": "foreign state dict"}
        if known is not None:
            description["weights"].update(sha256=known.sha256, source=known.source,
                                          reported_test_accuracy=known.test_accuracy)
    return LoadedModel(built.to(device).eval(), description)
