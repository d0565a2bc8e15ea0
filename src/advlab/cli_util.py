"""Small parsing helpers shared by the CLI commands (kept out of cli.py so they can be tested alone)."""

from __future__ import annotations

import ast
import re

from advlab.errors import InputError

_FRACTION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*$")


def parse_eps(text: str) -> float:
    """Parse an epsilon such as ``0.3``, ``8/255`` or ``2e-3`` into a float in [0, 1] pixel units."""
    match = _FRACTION.match(text)
    if not match and _FRACTION.match(text.strip().lstrip("-")):
        raise InputError(f"eps must be >= 0, got {text.strip()!r}")
    if not match:
        raise InputError(f"cannot read eps {text!r}: write a number like 0.03 or a fraction like 8/255")
    numerator, denominator = float(match.group(1)), float(match.group(2) or 1)
    if denominator == 0:
        raise InputError(f"eps {text!r} divides by zero")
    return numerator / denominator


def parse_eps_list(values: list[str]) -> list[float]:
    """Each item may itself hold several comma-separated values: ``--eps 1/255,2/255 --eps 4/255``."""
    return [parse_eps(part) for value in values for part in value.split(",") if part.strip()]


def parse_kwargs(pairs: list[str]) -> dict[str, object]:
    """``["width=2", "dropout=0.3", "name=foo"]`` -> ``{"width": 2, "dropout": 0.3, "name": "foo"}``.

    Values are read as Python literals (numbers, booleans, lists) with ``ast.literal_eval`` (never ``eval``);
    anything else stays a string.
    """
    kwargs: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not all(part.isidentifier() for part in key.split(".")) or key.count(".") > 1:
            raise InputError(f"cannot read option {pair!r}: write it as name=value, e.g. width=2")
        if _FRACTION.match(value) and "/" in value:
            kwargs[key] = parse_eps(value)  # 8/255 reads as the number it means
            continue
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def split_scoped_kwargs(kwargs: dict[str, object], names: list[str]) -> dict[str, dict[str, object]]:
    """``{"pni.locations": "W", "eps": 0.3}`` -> per-name settings; unscoped keys need exactly one name."""
    scoped: dict[str, dict[str, object]] = {}
    for key, value in kwargs.items():
        scope, dot, setting = key.rpartition(".")
        if not dot:
            if len(names) != 1:
                raise InputError(f"setting {key!r} is ambiguous with defenses {names}: write it as NAME.{key}=...")
            scope = names[0]
        if scope not in names:
            raise InputError(f"setting {key!r} names {scope!r}, which is not among the chosen defenses {names}")
        scoped.setdefault(scope, {})[setting] = value
    return scoped




def default_epsilons(image_shape: tuple[int, ...], norm: str = "linf") -> list[float]:
    """The usual budgets of the field when none are given: MNIST-sized grey images 0.1/0.2/0.3 (L∞) or
    1/2/3 (L2); colour images 2/255, 4/255, 8/255 (L∞) or 0.25/0.5/1.0 (L2)."""
    grey = image_shape[0] == 1
    if norm == "l2":
        return [1.0, 2.0, 3.0] if grey else [0.25, 0.5, 1.0]
    return [0.1, 0.2, 0.3] if grey else [2 / 255, 4 / 255, 8 / 255]


__all__ = ["default_epsilons", "parse_eps", "parse_eps_list", "parse_kwargs", "split_scoped_kwargs"]
