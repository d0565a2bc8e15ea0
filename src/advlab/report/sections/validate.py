"""Shape checks shared by the section normalisers (a payload that fails one is listed under "Other analyses")."""

from __future__ import annotations

from typing import Any


def square(matrix: Any, size: int | None = None) -> list[list[float]]:
    """``matrix`` as a list of rows; ValueError unless it is square (and ``size`` × ``size`` when given)."""
    rows = [list(row) for row in matrix]
    if not rows or any(len(row) != len(rows) for row in rows) or (size is not None and len(rows) != size):
        raise ValueError("expected a square matrix")
    return rows


def same_length(name: str, first: list[Any], other_name: str, other: list[Any]) -> None:
    """ValueError unless the two lists have the same length."""
    if len(first) != len(other):
        raise ValueError(f"{name} and {other_name} differ in length")
