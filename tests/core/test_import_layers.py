"""The import graph has layers: every advlab import points down, so there is no upward edge and no cycle.

Lazy imports inside functions count too (they are the ones that quietly grow cycles). A new module must be placed
in LAYERS; the README's "Layout" section lists the same order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import advlab

ROOT = Path(advlab.__file__).resolve().parent
# Lowest first. A module may import from its own layer's package and from any lower layer, never from above.
LAYERS: list[set[str]] = [
    {"__init__", "errors"},
    {"io", "registry", "modes", "seed", "precision", "compiling", "threads", "folder_lock", "outputs", "formatting",
     "cli_util", "progress"},
    {"data", "augment", "objectives"},
    {"distributed", "models"},
    {"attacks"},
    {"defenses"},
    {"loading"},
    {"training"},
    {"train"},
    {"evaluate"},
    {"certify", "report"},
    {"experiments", "demo"},
    {"cli"},
    {"__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def unit_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def imported_units(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "advlab":
                found.add((parts[1] if len(parts) > 1 else "__init__", node.lineno))
    return found


def test_every_module_has_a_layer() -> None:
    units = {unit_of(path) for path in ROOT.rglob("*.py")}
    assert units <= set(RANK), f"place these in LAYERS: {sorted(units - set(RANK))}"


def test_no_import_points_up() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        source = unit_of(path)
        for target, line in imported_units(path):
            if target != source and RANK[target] > RANK[source]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {target}")
            elif target != source and RANK[target] == RANK[source]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {target} of its own layer")
    assert not upward, "\n".join(upward)


def test_no_test_skips_when_an_advlab_module_is_missing() -> None:
    """A missing module of advlab's own must fail the suite, never skip it (``importorskip`` is for peers)."""
    tests = Path(__file__).resolve().parents[1]
    pattern = "importorskip(" + '"advlab'  # split so that this file does not match itself
    offenders = [str(path.relative_to(tests)) for path in tests.rglob("*.py")
                 if pattern in path.read_text(encoding="utf-8")]
    assert not offenders, offenders
