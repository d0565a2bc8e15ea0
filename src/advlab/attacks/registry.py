"""The attack registry: every attack class registers under a short name used by the CLI, presets and tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from advlab.attacks.base import Attack
from advlab.registry import Registry

ATTACKS: Registry[Attack] = Registry("attack")

AttackClass = TypeVar("AttackClass", bound=Callable[..., Attack])


def register_attack(name: str, **info: Any) -> Callable[[AttackClass], AttackClass]:
    """``@register_attack("pgd", family="gradient", norm="linf")`` on an :class:`Attack` subclass."""
    register = ATTACKS.register(name, **info)

    def decorate(cls: AttackClass) -> AttackClass:
        register(cls)
        return cls

    return decorate


def create_attack(name: str, **settings: Any) -> Attack:
    """Build a registered attack with keyword settings, e.g. ``create_attack("pgd", eps=8/255, steps=10)``."""
    return ATTACKS.create(name, **settings)
