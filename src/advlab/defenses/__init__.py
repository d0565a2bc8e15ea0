"""Defenses of the five papers: training objectives, model transforms and two-stage recipes, behind one registry.

``create_defense(name, **settings)`` builds one; each entry's info says its ``kind`` (``objective``,
``transform``, ``both`` or ``recipe``, derived from the class: see :mod:`advlab.defenses.base`) and whether it makes
the model ``stochastic`` (evaluation then uses EOT and trials).

Importing this package imports every module in it, which registers every defense in
:data:`advlab.defenses.registry.DEFENSES`: a new defense is a class with ``@register_defense`` in its module.
"""

import importlib
import pkgutil

from advlab.defenses.base import (
    DefenseKind,
    HookedObjective,
    ModelTransform,
    ObjectiveBase,
    TrainingObjective,
    TransformBase,
    TwoStageRecipe,
)
from advlab.defenses.registry import (
    DEFENSES,
    create_defense,
    create_objective,
    defense_from_card,
    list_defenses,
    register_defense,
)

__all__ = ["DEFENSES", "DefenseKind", "HookedObjective", "ModelTransform", "ObjectiveBase", "TrainingObjective",
           "TransformBase", "TwoStageRecipe", "create_defense", "create_objective", "defense_from_card",
           "list_defenses", "register_defense"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
