"""The defense registry: every defense under a short name, buildable from the settings in a checkpoint card.

A defense is a training *objective* (passed to ``advlab.train.fit(objective=...)``), a model *transform*
(``defense.apply(model)`` returns the defended model), both, or a two-stage *recipe* (distillation, denoiser; run by
:func:`advlab.training.two_stage.train_two_stage`). The contracts are in :mod:`advlab.defenses.base`.

Each defense class registers itself where it is defined, as attacks do::

    @register_defense("pgd_at", stochastic=False, paper="Madry et al. 2018 (arXiv:1706.06083)", summary="...")
    @dataclass(kw_only=True)
    class PGDAdversarialTraining(...): ...

Each entry's info says its ``kind`` ("objective" | "transform" | "both" | "recipe", derived from the class by
:func:`advlab.defenses.base.defense_kind`), whether it makes the model ``stochastic`` (evaluation then uses EOT and
repeated trials), the ``paper`` and a one-line ``summary``. ``create_defense(name, **settings)`` builds one; every
``describe()`` is ``{"name": registry name, **settings}`` and :func:`defense_from_card` rebuilds it from that dict.

Importing :mod:`advlab.defenses` (which any import of this module does first) imports every defense module, so
every defense is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from advlab.defenses.base import Defense, DefenseKind, TrainingObjective, defense_kind
from advlab.errors import InputError
from advlab.registry import Registry

DEFENSES: Registry[Defense] = Registry("defense")

DefenseClass = TypeVar("DefenseClass", bound=type)


def register_defense(
    name: str, *, stochastic: bool, paper: str = "", summary: str = "", **info: Any
) -> Callable[[DefenseClass], DefenseClass]:
    """``@register_defense("pgd_at", stochastic=False, paper=..., summary=...)`` on a defense class.

    The entry's ``kind`` comes from the class (:func:`~advlab.defenses.base.defense_kind`). A class that declares
    ``stochastic`` itself must declare the same value as the registration.
    """

    def decorate(cls: DefenseClass) -> DefenseClass:
        kind: DefenseKind = defense_kind(cls)
        declared = next((vars(base)["stochastic"] for base in cls.__mro__ if "stochastic" in vars(base)), None)
        if isinstance(declared, bool) and declared != stochastic:
            raise ValueError(f"defense {name!r}: {cls.__name__}.stochastic is {declared} but it is registered with "
                             f"stochastic={stochastic}")
        DEFENSES.register(name, kind=kind, stochastic=stochastic, paper=paper, summary=summary, **info)(cls)
        return cls

    return decorate


def create_defense(name: str, **settings: Any) -> Any:
    """Build a registered defense, e.g. ``create_defense("pgd_at", eps=0.3, steps=40, step_size=0.01)``.

    A setting the defense does not take (or a missing required one) is an :class:`~advlab.errors.InputError`
    naming the settings it accepts. The result is typed ``Any`` for callers that chose the name for its kind; see
    :func:`create_objective` for a checked, typed objective.
    """
    return DEFENSES.create(name, **settings)


def create_objective(name: str, **settings: Any) -> TrainingObjective:
    """Build a registered defense that is a training objective (kind ``objective`` or ``both``), for ``fit``."""
    kind = DEFENSES.entry(name).info["kind"]
    defense = DEFENSES.create(name, **settings)
    if kind not in ("objective", "both") or not isinstance(defense, TrainingObjective):
        raise InputError(f"defense {name!r} is a {kind}, not a training objective; objectives: "
                         f"{', '.join(e.name for e in DEFENSES if e.info['kind'] in ('objective', 'both'))}")
    return defense


def defense_from_card(card: Mapping[str, Any]) -> Any:
    """Rebuild a defense from its ``describe()`` dict (as stored in a checkpoint card)."""
    if "name" not in card:
        raise InputError("a defense card needs a 'name' entry (the registry name); got keys "
                         f"{sorted(card)}")
    settings = {key: value for key, value in card.items() if key != "name"}
    return create_defense(str(card["name"]), **settings)


def list_defenses() -> list[str]:
    return DEFENSES.names()
