"""Plain-JSON descriptions of attacks and settings, for state-file keys and result cards.

Numbers stay numbers. JSON has no infinity or NaN, so a non-finite float setting (e.g. an unbounded C&W
``kappa``) is written as the string ``"inf"``/``"-inf"``/``"nan"``; measured results never take that path
(they use ``null`` for "no value", e.g. the mean norm when no attack succeeded).
"""

from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any

import torch

from advlab.attacks.base import EXECUTION_ONLY, Attack


def to_jsonable(value: Any) -> Any:
    """Convert settings/results to JSON types: dataclasses -> dicts, tensors -> lists, enums -> values."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, torch.Generator):
        return "torch.Generator"  # its state is not a setting; the evaluation's seed governs randomness
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"class": type(value).__name__, **fields}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    return repr(value)


def registry_name(attack: Attack) -> str | None:
    """The name ``attack``'s class is registered under in ``ATTACKS``, or None for an unregistered class."""
    from advlab.attacks.registry import ATTACKS

    for entry in ATTACKS:
        if entry.factory is type(attack):
            return entry.name
    return None


def describe_attack(attack: Attack, label: str | None = None) -> dict[str, Any]:
    """``{"name", "class", "norm", "settings"}`` of an attack instance; ``settings`` is ``dataclasses.asdict``-like."""
    settings = to_jsonable(attack)
    settings.pop("class", None)
    for setting in EXECUTION_ONLY:  # how fast it ran, not what it computed: a resumed run may change them
        settings.pop(setting, None)
    name = registry_name(attack)
    return {
        "name": label or name or type(attack).__name__,
        "registry_name": name,
        "class": f"{type(attack).__module__}.{type(attack).__qualname__}",
        "norm": attack.norm.value,
        "settings": settings,
    }
