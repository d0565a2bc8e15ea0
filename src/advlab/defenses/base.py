"""What a defense is, as typed contracts: a training objective, a model transform, both, or a two-stage recipe.

* :class:`~advlab.objectives.TrainingObjective` (defined with the objectives, below this package, so that
  ``advlab.objectives.CrossEntropy`` follows it too): ``objective(model, x, y) -> scalar loss`` and ``describe()``;
  the optional hooks ``on_epoch_start`` / ``on_batch_start`` of :class:`~advlab.objectives.HookedObjective` get
  no-op defaults from :class:`~advlab.objectives.ObjectiveBase`. ``fit(objective=...)`` takes one.
* :class:`ModelTransform`: ``apply(model) -> nn.Module`` (the defended model), ``describe()``, whether the result is
  ``stochastic`` (evaluation then uses EOT and repeated trials) and the parameter names it keeps out of weight
  decay (``no_weight_decay``, default none, from :class:`TransformBase`).
* :class:`TwoStageRecipe`: a defense trained in two stages with two networks (distillation: teacher then student;
  denoiser: classifier then a purifier in front of it). The stages are run by :mod:`advlab.training.two_stage`;
  the recipe itself only says how the deployed model is put together (:meth:`TwoStageRecipe.deployed_model`, used
  to rebuild it from a checkpoint card) and describes itself.

A class registered with :func:`advlab.defenses.registry.register_defense` gets its *kind* from these contracts
(:func:`defense_kind`): ``"recipe"``, ``"objective"``, ``"transform"`` or ``"both"`` (an objective that is also a
transform). Every ``describe()`` is ``{"name": registry name, **settings}``, so the registry rebuilds the defense
from a checkpoint card.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from torch import nn

from advlab.objectives import HookedObjective, ObjectiveBase, TrainingObjective

DefenseKind = Literal["objective", "transform", "both", "recipe"]
DEFENSE_KINDS: tuple[DefenseKind, ...] = ("objective", "transform", "both", "recipe")


@runtime_checkable
class ModelTransform(Protocol):
    """A defense that changes the model: ``apply(model)`` returns the defended model (e.g. PNI noise layers)."""

    @property
    def stochastic(self) -> bool:
        """True when the transformed model is random (evaluation then uses EOT and repeated trials)."""
        ...

    @property
    def no_weight_decay(self) -> tuple[str, ...]:
        """Parameter-name globs training keeps out of weight decay (e.g. PNI's noise scales)."""
        ...

    def apply(self, model: nn.Module) -> nn.Module: ...

    def describe(self) -> dict[str, Any]: ...


class TransformBase:
    """Defaults for :class:`ModelTransform`: a deterministic transform with nothing kept out of weight decay."""

    stochastic: ClassVar[bool] = False
    no_weight_decay: ClassVar[tuple[str, ...]] = ()


@runtime_checkable
class TwoStageRecipe(Protocol):
    """A two-network defense whose stages :func:`advlab.training.two_stage.train_two_stage` runs.

    ``deployed_model(model)`` is the deployed model's architecture around ``model`` (the first stage's network,
    freshly built), with any second network fresh too: what a checkpoint of the deployed model loads into.
    """

    @property
    def stochastic(self) -> bool: ...

    def deployed_model(self, model: nn.Module) -> nn.Module: ...

    def describe(self) -> dict[str, Any]: ...


#: Anything :func:`advlab.defenses.registry.create_defense` builds.
Defense = TrainingObjective | ModelTransform | TwoStageRecipe

# The members a class must define to be of each kind: the methods of the contracts above.
_OBJECTIVE_MEMBERS = ("__call__", "describe")
_TRANSFORM_MEMBERS = ("apply", "describe")
_RECIPE_MEMBERS = ("deployed_model", "describe")


def _defines(cls: type, members: tuple[str, ...]) -> bool:
    """True when ``cls`` (or a base other than ``object``) defines every name in ``members`` as a method."""
    def found(member: str) -> bool:
        return any(callable(vars(base).get(member)) for base in cls.__mro__ if base is not object)

    return all(found(member) for member in members)


def defense_kind(cls: type) -> DefenseKind:
    """The kind of a defense class, from the contracts it implements (see the module docstring).

    Raises TypeError for a class that implements none of them (a registration mistake, found at import).
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_defense decorates a class, got {cls!r}")
    if _defines(cls, _RECIPE_MEMBERS):
        return "recipe"
    objective, transform = _defines(cls, _OBJECTIVE_MEMBERS), _defines(cls, _TRANSFORM_MEMBERS)
    if objective and transform:
        return "both"
    if objective:
        return "objective"
    if transform:
        return "transform"
    raise TypeError(f"{cls.__name__} is no defense: it needs __call__(model, x, y) and describe() (a training "
                    "objective), apply(model) and describe() (a model transform), or deployed_model(model) and "
                    "describe() (a two-stage recipe)")


def implements_kind(defense: object, kind: DefenseKind) -> bool:
    """True when the instance ``defense`` follows the runtime contracts of ``kind`` (used by the contract tests)."""
    if kind == "recipe":
        return isinstance(defense, TwoStageRecipe)
    objective = isinstance(defense, HookedObjective)
    transform = isinstance(defense, ModelTransform)
    return {"objective": objective and not transform, "transform": transform and not objective,
            "both": objective and transform}[kind]


__all__ = ["DEFENSE_KINDS", "Defense", "DefenseKind", "HookedObjective", "ModelTransform", "ObjectiveBase",
           "TrainingObjective", "TransformBase", "TwoStageRecipe", "defense_kind", "implements_kind"]
