"""Every registered defense's kind is derived from its class and matches the contract its instances follow; a wrong
setting name is one InputError that names the accepted settings."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import advlab.defenses
from advlab.defenses.base import (
    DEFENSE_KINDS,
    HookedObjective,
    ModelTransform,
    TrainingObjective,
    TwoStageRecipe,
    defense_kind,
    implements_kind,
)
from advlab.defenses.registry import DEFENSES, create_defense, create_objective, register_defense
from advlab.errors import InputError

# Settings a defense cannot do without.
REQUIRED: dict[str, dict[str, Any]] = {"gaussian_augmentation": {"scale": 0.1}, "random_sign_training": {"scale": 0.1}}


@pytest.mark.parametrize("name", DEFENSES.names())
def test_the_registered_kind_is_the_contract_the_class_and_its_instances_follow(name: str) -> None:
    entry = DEFENSES.entry(name)
    kind = entry.info["kind"]
    assert kind in DEFENSE_KINDS
    assert isinstance(entry.factory, type), f"{name} is registered at its class, not through a wrapper"
    assert defense_kind(entry.factory) == kind
    defense = create_defense(name, **REQUIRED.get(name, {}))
    assert type(defense) is entry.factory
    assert implements_kind(defense, kind), f"{name}: registered as {kind}"
    if kind in ("objective", "both"):
        assert isinstance(defense, TrainingObjective) and isinstance(defense, HookedObjective)
    if kind in ("transform", "both"):
        assert isinstance(defense, ModelTransform)
        assert defense.stochastic is entry.info["stochastic"]
    if kind == "recipe":
        assert isinstance(defense, TwoStageRecipe) and not isinstance(defense, ModelTransform)
    assert defense.describe()["name"] == entry.info.get("alias_of", name)


@pytest.mark.parametrize("name", DEFENSES.names())
def test_a_wrong_setting_name_is_one_input_error_naming_the_settings(name: str) -> None:
    with pytest.raises(InputError, match=rf"defense '{name}'.*epsilonn.*settings are:") as caught:
        create_defense(name, epsilonn=0.3, **REQUIRED.get(name, {}))
    first_setting = next(iter(create_defense(name, **REQUIRED.get(name, {})).describe().keys() - {"name"}), None)
    if first_setting is not None:
        assert first_setting in str(caught.value)


def test_importing_the_registry_alone_registers_every_defense() -> None:
    """As ``advlab.attacks`` does: no defense is missing because its module was not imported yet."""
    code = "from advlab.defenses.registry import DEFENSES; print(' '.join(DEFENSES.names()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.stdout.split() == DEFENSES.names()
    modules = {info.name for info in pkgutil.iter_modules(advlab.defenses.__path__)}
    assert {DEFENSES.entry(name).factory.__module__.rsplit(".", 1)[-1] for name in DEFENSES.names()} <= modules


def test_kinds_are_derived_from_methods_and_a_non_defense_is_refused() -> None:
    class Objective:
        def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.zeros(())

        def describe(self) -> dict[str, Any]:
            return {"name": "o"}

    class Transform:
        stochastic: ClassVar[bool] = False

        def apply(self, model: nn.Module) -> nn.Module:
            return model

        def describe(self) -> dict[str, Any]:
            return {"name": "t"}

    class Both(Objective, Transform):
        pass

    class Recipe:
        def deployed_model(self, model: nn.Module) -> nn.Module:
            return model

        def describe(self) -> dict[str, Any]:
            return {"name": "r"}

    assert [defense_kind(c) for c in (Objective, Transform, Both, Recipe)] == ["objective", "transform", "both",
                                                                                "recipe"]
    with pytest.raises(TypeError, match="is no defense"):
        defense_kind(type("Nothing", (), {"describe": lambda self: {}}))


def test_a_class_that_contradicts_its_registered_randomness_is_refused() -> None:
    with pytest.raises(ValueError, match="stochastic"):
        @register_defense("test_contradiction", stochastic=False)
        @dataclass(frozen=True)
        class Noisy:
            stochastic: ClassVar[bool] = True

            def apply(self, model: nn.Module) -> nn.Module:
                return model

            def describe(self) -> dict[str, Any]:
                return {"name": "test_contradiction"}
    assert "test_contradiction" not in DEFENSES


def test_create_objective_refuses_a_transform() -> None:
    assert create_objective("pgd_at", eps=0.1).describe()["eps"] == 0.1
    with pytest.raises(InputError, match="not a training objective"):
        create_objective("pni")
