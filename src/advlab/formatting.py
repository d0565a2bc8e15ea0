"""How numbers and names are written in the report (shared by the HTML and the markdown, so they agree).

Accuracies are shares in [0, 1] in the cards and percentages with two decimals in the report ("91.73 %");
ε in [0, 1] pixel units is written as a fraction of 255 when it is one ("8/255"), else as a short decimal.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def percent(share: Any, std: Any = None, decimals: int = 2) -> str:
    """``0.9173`` -> ``"91.73 %"``; with a nonzero ``std`` -> ``"45.20 ± 1.30 %"``; None -> ``"—"``."""
    if not is_number(share):
        return MISSING
    if is_number(std) and std > 0:
        return f"{100 * share:.{decimals}f} ± {100 * std:.{decimals}f} %"
    return f"{100 * share:.{decimals}f} %"


def number(value: Any, digits: int = 4) -> str:
    """A measured value in ``digits`` significant digits; integers stay integers; booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not is_number(value):
        return MISSING if value is None else str(value)
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits or abs(value) < 10 ** -3:
        return f"{value:.{max(1, digits - 1)}e}"
    return f"{value:.{digits}g}"


def epsilon(eps: Any, norm: str | None = None) -> str:
    """ε for people: ``8/255`` when it is a whole number of 255ths (L∞ or unknown norm), else ``0.3``; None -> ∞."""
    if eps is None or (isinstance(eps, str) and eps == "inf"):
        return "∞"
    if not is_number(eps):
        return str(eps)
    if eps == 0:
        return "0"
    scaled = eps * 255
    short_decimal = abs(eps - round(eps, 3)) < 1e-12  # 0.2 stays 0.2 although it is also 51/255
    if (norm in (None, "linf") and eps > 0 and not short_decimal and abs(scaled - round(scaled)) < 1e-6
            and round(scaled) < 255):
        return f"{round(scaled)}/255"
    return f"{eps:.4g}"


NORM_NAMES = {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0"}


def norm_name(norm: Any) -> str:
    return NORM_NAMES.get(str(norm), str(norm)) if norm else ""
