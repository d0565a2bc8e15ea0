"""Attack suites as data: which registered attacks a cascade runs, with ε-relative defaults.

A suite is a tuple of :class:`AttackSpec`; nothing is built at import time. :func:`build_suite` turns a suite
into :class:`~advlab.evaluate.cascade.CascadeStage` objects for one ε and norm through the attack registry
(``create_attack``), so a suite never imports an attack module itself and an attack that is renamed fails
with the registry's "unknown attack ... did you mean" error.

ε-relative settings are multiples of ε: ``eps_relative={"step_size": 0.25}`` sets ``step_size = ε / 4``.
Defaults (documented here so the numbers in a card can be traced):

* ``quick``: FGSM; PGD with 20 steps of ε/4 (random start, CE), a cheap first look;
* ``standard``: AutoAttack's set (Croce & Hein 2020, arXiv:2003.01690): APGD-CE (100 steps), APGD-T with the
  DLR loss targeted at the 9 most likely wrong classes, Square (5000 queries);
* ``papers``: the attacks the lab's papers report: FGSM, PGD (40 steps of ε/10, Madry et al.), BIM (10 steps
  of ε/10, Kurakin et al.) and PGD on the C&W margin loss (40 steps of ε/10).

Settings a registered attack class does not have are dropped (e.g. no ``step_size`` on FGSM), so one spec
serves L∞ and L2 variants.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from advlab.attacks.base import Norm
from advlab.errors import InputError, UnknownNameError
from advlab.evaluate.cascade import CascadeStage
from advlab.evaluate.engine import Schedule


@dataclass(frozen=True)
class AttackSpec:
    """A suite entry: registry names per norm, fixed settings, ε-relative settings, targeted classes.

    Attributes:
        label: the name shown in tables ("APGD-CE").
        names: registry name per norm, e.g. ``{"linf": "pgd", "l2": "pgd_l2"}``.
        settings: fixed keyword settings (steps, loss, ...).
        eps_relative: settings given as multiples of ε (``{"step_size": 0.25}`` -> ε/4).
        target_classes: 0 untargeted; k > 0 targeted at the k most likely wrong classes (APGD-T).
    """

    label: str
    names: Mapping[str, str]
    settings: Mapping[str, Any] = field(default_factory=dict)
    eps_relative: Mapping[str, float] = field(default_factory=dict)
    target_classes: int = 0


SUITES: dict[str, tuple[AttackSpec, ...]] = {
    "quick": (
        AttackSpec("FGSM", {"linf": "fgsm", "l2": "fgm"}),
        AttackSpec("PGD-20", {"linf": "pgd", "l2": "pgd_l2"}, {"steps": 20}, {"step_size": 0.25}),
    ),
    "standard": (
        AttackSpec("APGD-CE", {"linf": "apgd_ce"}, {"steps": 100}),
        # APGD-T runs its own loop over the 9 most likely wrong classes (AutoAttack's recipe).
        AttackSpec("APGD-T", {"linf": "apgd_dlr_targeted"}, {"steps": 100, "target_classes": 9}),
        AttackSpec("Square", {"linf": "square"}, {"steps": 5000}),
    ),
    "papers": (
        AttackSpec("FGSM", {"linf": "fgsm", "l2": "fgm"}),
        AttackSpec("PGD-40", {"linf": "pgd", "l2": "pgd_l2"}, {"steps": 40}, {"step_size": 0.1}),
        AttackSpec("BIM-10", {"linf": "bim"}, {"steps": 10}, {"step_size": 0.1}),
        AttackSpec("PGD-CW", {"linf": "pgd", "l2": "pgd_l2"}, {"steps": 40, "loss": "margin"}, {"step_size": 0.1}),
    ),
}


#: How each suite schedules its attacks (:class:`~advlab.evaluate.engine.Schedule`): the quick and papers suites
#: run every attack on every point it has not fooled (each attack has its own curve, as the papers report them);
#: the standard suite runs each attack only on the points every earlier one left robust, as AutoAttack does.
SUITE_SCHEDULES: dict[str, Schedule] = {"quick": Schedule.EACH, "standard": Schedule.CASCADE, "papers": Schedule.EACH}


def build_attack(spec: AttackSpec, eps: float, norm: Norm | str = Norm.LINF) -> CascadeStage | None:
    """The spec's attack for ``eps``/``norm`` as a cascade stage; None when the spec has no attack for ``norm``."""
    from advlab.attacks.registry import ATTACKS

    norm = Norm(norm)
    name = spec.names.get(norm.value)
    if name is None:
        return None
    if name not in ATTACKS:
        import advlab.attacks  # noqa: F401 - importing the package registers every attack
    factory = ATTACKS.entry(name).factory
    settings = {"eps": eps, **spec.settings, **{key: factor * eps for key, factor in spec.eps_relative.items()}}
    if dataclasses.is_dataclass(factory):
        known = {f.name for f in dataclasses.fields(factory)}
        if "eps" not in known:  # unbounded attacks (C&W, DeepFool) take no radius
            settings.pop("eps")
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InputError(f"suite entry {spec.label!r} sets {unknown}, which {name!r} does not take")
    return CascadeStage(spec.label, ATTACKS.create(name, **settings), spec.target_classes)


def build_suite(suite: str | tuple[AttackSpec, ...], eps: float, norm: Norm | str = Norm.LINF) -> list[CascadeStage]:
    """Cascade stages of ``suite`` (a name in :data:`SUITES` or a tuple of specs) for radius ``eps``.

    Raises :class:`UnknownNameError` for an unknown suite or an attack that is not registered.
    """
    if isinstance(suite, str):
        if suite not in SUITES:
            raise UnknownNameError(f"unknown suite {suite!r}. Known: {', '.join(sorted(SUITES))}.")
        suite = SUITES[suite]
    try:
        norm = Norm(norm)
    except ValueError:
        raise InputError(f"unknown norm {norm!r}; use one of {', '.join(n.value for n in Norm)}") from None
    stages = [stage for spec in suite if (stage := build_attack(spec, eps, norm)) is not None]
    if not stages:
        raise InputError(f"the suite has no attack for the {norm.value} norm")
    return stages
