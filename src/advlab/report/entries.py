"""The models of a report: one :class:`ModelEntry` per card, with a unique label and a fixed color.

The color of a model is the same in every figure and in the tables' swatches, so a reader can follow one model
through the report. The palette is Okabe & Ito's (2008), distinguishable with the common color-vision deficiencies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advlab.errors import InputError
from advlab.evaluate.card import EvaluationCard, load_card
from advlab.report.analyses import Analysis, normalise

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C6D1F", "#000000")

CardLike = EvaluationCard | Mapping[str, Any] | str | Path


@dataclass(frozen=True)
class ModelEntry:
    """One evaluated model: ``label`` (unique in the report), ``color`` (hex), its card and normalised analyses."""

    index: int
    label: str
    color: str
    card: EvaluationCard
    analyses: tuple[Analysis, ...] = field(default_factory=tuple)

    @property
    def attack(self) -> dict[str, Any]:
        """The attack of the card's robustness curve ({} when the card has no curve)."""
        return self.card.attacks[0] if self.card.results and self.card.attacks else {}

    @property
    def randomized(self) -> bool:
        return bool(self.card.trials.get("randomized"))

    @property
    def trials(self) -> int:
        return int(self.card.trials.get("count") or 1)


def as_card(card: CardLike, index: int) -> EvaluationCard:
    """An EvaluationCard from a card, a card dict (validated) or a path to a card file."""
    if isinstance(card, EvaluationCard):
        return card
    if isinstance(card, (str, Path)):
        return load_card(card)
    if isinstance(card, Mapping):
        return EvaluationCard.from_dict(dict(card), f"card {index + 1}")
    raise InputError(f"card {index + 1} is a {type(card).__name__}; pass EvaluationCard objects, card dicts "
                     "or paths to card files")


def model_label(card: EvaluationCard, index: int) -> str:
    """A short name for the model: the card's ``label`` or ``name``, else architecture (+ defense), else 'model i'."""
    model = card.model
    for key in ("label", "name"):
        if isinstance(model.get(key), str) and model[key]:
            return model[key]
    inner = model.get("model")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        label = inner["name"]
        defense = model.get("defense") or model.get("objective")
        if isinstance(defense, dict):
            defense = defense.get("name")
        return f"{label} + {defense}" if isinstance(defense, str) and defense else label
    return f"model {index + 1}"


def make_entries(cards: Sequence[CardLike]) -> list[ModelEntry]:
    """Entries in the order given; repeated labels get ' (2)', ' (3)', ...; colors cycle the palette."""
    if not cards:
        raise InputError("pass at least one evaluation card to build a report")
    entries: list[ModelEntry] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(cards):
        card = as_card(raw, index)
        label = model_label(card, index)
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} ({seen[label]})"
        analyses = tuple(normalise(name, payload) for name, payload in card.analyses.items())
        entries.append(ModelEntry(index, label, PALETTE[index % len(PALETTE)], card, analyses))
    return entries
