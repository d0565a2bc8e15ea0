"""Reproduction presets: one TOML file per paper, shipped in this package (``advlab/experiments/*.toml``).

A preset names the paper, the tables/figures it reproduces, the models, the training recipe, the attacks, the
**numbers the paper reports**, and the settings of each *scale* the experiment can run at::

    name = "fooling-noise"
    experiment = "fooling_noise"          # the registered experiment that runs it (advlab.experiments.steps)
    dataset = "mnist"
    summary = "..."
    notes = ["...", ...]                  # caveats: paper numbers left out, choices the paper does not state

    [paper]                               # title, authors, year; arxiv when the paper has an id
    [recipe]                              # free-form description of models / training / attacks (documentation)
    [settings]                            # defaults every scale starts from
    [scales.quick]                        # overrides per scale; each has a one-line "description" and, once
                                          # measured, a "duration" (shown by `advlab reproduce --list`)
    [scales.full]                         # "runs_here = false" + "limitation" when the paper's recipe needs a GPU

    [[reported]]                          # one entry per number the paper reports (table cell or text)
    key = "table1.mlp.val_acc"            # the key the experiment measures (ours) under; unique in the preset
    table = "Table 1"                     # the paper item: "Table N", "Fig. N", "§N text", "Eq. N", "App. X"
    row = "VALIDATION"                    # the paper's row and column labels, as printed
    column = "BP"
    value = 0.918                         # in ``unit`` (accuracy as a fraction: 91.8 % -> 0.918)
    std = 0.001                           # optional: the paper's ± in the same unit
    unit = "accuracy"                     # accuracy | alpha | l2 | params | success_rate | ...
    note = "..."                          # optional: how our measurement of it differs
    not_measured = "..."                  # only for numbers advlab never measures, with the reason (e.g. ImageNet)
    label = "..."                         # optional; defaults to "row — column"

Scales: ``quick`` (minutes on a 2-core CPU), ``full`` (the paper's recipe, or the largest that fits when the
paper's needs a GPU), and ``tiny`` (seconds; for tests only). Every result row is labelled with its scale.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport (a dependency there)
    import tomli as tomllib

from advlab.errors import InputError, UnknownNameError

SCALES = ("tiny", "quick", "medium", "full")
# A scale's words about itself, not settings: changing them changes no measured number.
SCALE_PROSE = ("description", "duration")

# What a measurement's or a reported number's ``table`` may say: a paper item, or "extension" for advlab's own
# rows beyond the paper (EOT, repeated trials, extra sanity checks).
PAPER_ITEM = re.compile(r"^(Table \d+|Fig\. \d+|§\d+|Eq\. \d+|App\. [A-Z]|Abstract)|^extension\b")


def names_paper_item(table: str) -> bool:
    """True when ``table`` names a paper item ("Table 2", "Fig. 3", "§5 text", ...) or starts with "extension"."""
    return bool(PAPER_ITEM.match(table))


_PACKAGE = "advlab.experiments"


@dataclass(frozen=True)
class ReportedNumber:
    """One number a paper reports: ``key`` links it to the measurement of the same key.

    ``row``/``column`` are the paper's labels as printed; ``std`` the paper's ± (same unit); ``not_measured`` says
    why advlab never measures this number (e.g. an ImageNet column, a baseline cited from other work).
    """

    key: str
    table: str
    label: str
    value: float
    unit: str = "accuracy"
    note: str = ""
    row: str = ""
    column: str = ""
    std: float | None = None
    not_measured: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "table": self.table, "row": self.row, "column": self.column, "label": self.label,
                "value": self.value, "std": self.std, "unit": self.unit, "note": self.note,
                "not_measured": self.not_measured}


@dataclass(frozen=True)
class Preset:
    """A parsed preset file (see the module docstring for the layout)."""

    name: str
    experiment: str
    dataset: str
    summary: str
    paper: dict[str, Any]
    recipe: dict[str, Any]
    settings: dict[str, Any]
    scales: dict[str, dict[str, Any]]
    reported: tuple[ReportedNumber, ...]
    notes: tuple[str, ...] = ()
    source: str = ""
    order: int = 100

    def scale_settings(self, scale: str) -> dict[str, Any]:
        """The ``[settings]`` defaults overridden by ``[scales.<scale>]`` (description and flags included)."""
        if scale not in self.scales:
            raise InputError(f"preset {self.name!r} has no scale {scale!r}; choose one of "
                             f"{', '.join(s for s in SCALES if s in self.scales)}")
        return {**self.settings, **self.scales[scale]}

    def citation(self) -> str:
        """"Authors (year), "Title", arXiv:id" in one line."""
        authors = ", ".join(self.paper.get("authors", []))
        arxiv = f", arXiv:{self.paper['arxiv']}" if self.paper.get("arxiv") else ""
        return f"{authors} ({self.paper.get('year', 'n.d.')}), \"{self.paper.get('title', '')}\"{arxiv}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "experiment": self.experiment, "dataset": self.dataset, "summary": self.summary,
                "paper": self.paper, "recipe": self.recipe, "notes": list(self.notes)}


def _require(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise InputError(f"{where}: missing the entry {key!r}; see advlab/experiments/presets.py for the layout")
    value = table[key]
    if not isinstance(value, kind):
        raise InputError(f"{where}: {key!r} must be {kind}, got {type(value).__name__}")
    return value


def parse_preset(text: str, source: str = "<string>") -> Preset:
    """Parse and validate one preset's TOML text; errors name the file and the entry to fix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML ({exc}); fix the file") from exc
    name = _require(data, "name", str, source)
    paper = _require(data, "paper", dict, source)
    for key in ("title", "authors", "year"):
        _require(paper, key, (str, list, int), f"{source} [paper]")
    scales = _require(data, "scales", dict, source)
    unknown = sorted(set(scales) - set(SCALES))
    if unknown:
        raise InputError(f"{source}: unknown scales {unknown}; use {', '.join(SCALES)}")
    for scale, values in scales.items():
        _require(values, "description", str, f"{source} [scales.{scale}]")
    reported = []
    for index, entry in enumerate(data.get("reported", [])):
        where = f"{source} [[reported]] #{index + 1}"
        value = _require(entry, "value", (int, float), where)
        if isinstance(value, bool) or not math.isfinite(value):
            raise InputError(f"{where}: value must be a finite number, got {value!r}")
        std = entry.get("std")
        if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float)) or not std >= 0):
            raise InputError(f"{where}: std must be a number >= 0, got {std!r}")
        row, column = str(entry.get("row", "")), str(entry.get("column", ""))
        label = entry.get("label") or " — ".join(part for part in (row, column) if part)
        if not label:
            raise InputError(f"{where}: give the paper's row and column (or a label)")
        reported.append(ReportedNumber(
            key=_require(entry, "key", str, where), table=_require(entry, "table", str, where), label=str(label),
            value=float(value), unit=entry.get("unit", "accuracy"), note=entry.get("note", ""), row=row,
            column=column, std=None if std is None else float(std),
            not_measured=str(entry.get("not_measured", ""))))
    keys = [r.key for r in reported]
    if len(keys) != len(set(keys)):
        raise InputError(f"{source}: a reported key appears twice: {sorted(k for k in keys if keys.count(k) > 1)}")
    return Preset(
        name=name, experiment=_require(data, "experiment", str, source), dataset=data.get("dataset", ""),
        summary=data.get("summary", ""), paper=paper, recipe=data.get("recipe", {}),
        settings=data.get("settings", {}), scales=scales, reported=tuple(reported),
        notes=tuple(data.get("notes", [])), source=source, order=int(data.get("order", 100)),
    )


def load_preset_file(path: str | Path) -> Preset:
    """Load a preset from any TOML file (e.g. a user's variant of a shipped preset)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"preset file {path} does not exist; pass the path of a .toml preset")
    return parse_preset(path.read_text(encoding="utf-8"), source=str(path))


def _shipped() -> dict[str, Preset]:
    presets = {}
    for item in resources.files(_PACKAGE).iterdir():
        if item.name.endswith(".toml"):
            preset = parse_preset(item.read_text(encoding="utf-8"), source=item.name)
            presets[preset.name] = preset
    return presets


def list_presets() -> list[Preset]:
    """Every preset shipped with advlab, in the project's order of priority."""
    return sorted(_shipped().values(), key=lambda p: (p.order, p.name))


def load_preset(name: str) -> Preset:
    """A shipped preset by name (e.g. ``"fooling-noise"``), or a path to a ``.toml`` preset file."""
    if name.endswith(".toml"):
        return load_preset_file(name)
    presets = _shipped()
    if name not in presets:
        raise UnknownNameError(f"unknown preset {name!r}; known presets: {', '.join(sorted(presets))} "
                               "(advlab reproduce --list)")
    return presets[name]

