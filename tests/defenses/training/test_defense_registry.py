"""The defense registry: every name builds, declares its kind, and round-trips through its card."""

from __future__ import annotations

import json

import pytest
import torch
from training_defense_utils import TinyCNN

from advlab.defenses.registry import DEFENSES, create_defense, defense_from_card, list_defenses
from advlab.errors import InputError, UnknownNameError

OWN = ("fgsm_mixed", "pgd_at", "fast_fgsm", "n_fgsm", "random_sign_training", "per_epoch_adversarial",
       "gaussian_augmentation", "distillation", "input_noise", "mc_dropout", "denoiser")
# Settings without a default (the noise scale) or that exercise a non-default value.
SETTINGS = {"random_sign_training": {"scale": 0.3}, "gaussian_augmentation": {"scale": 0.1},
            "pgd_at": {"eps": 0.3, "steps": 40, "step_size": 0.01, "labels": "predicted", "clean_weight": 0.5},
            "distillation": {"temperature": 4.0, "teacher_temperature": 1.0}}


def test_every_required_name_is_registered_with_kind_and_randomness() -> None:
    names = set(list_defenses())
    assert set(OWN) | {"pni", "stochastic"} <= names
    for entry in DEFENSES:
        assert entry.info["kind"] in ("objective", "transform", "both", "recipe"), entry.name
        assert isinstance(entry.info["stochastic"], bool), entry.name
    assert DEFENSES.entry("input_noise").info["stochastic"] is True
    assert DEFENSES.entry("pgd_at").info["kind"] == "objective"
    assert {DEFENSES.entry(n).info["kind"] for n in ("distillation", "denoiser")} == {"recipe"}
    assert DEFENSES.entry("mc_dropout").info["kind"] == "transform"


@pytest.mark.parametrize("name", sorted(set(OWN) | {"pni", "stochastic"}))
def test_each_defense_round_trips_through_its_json_card(name: str) -> None:
    defense = create_defense(name, **SETTINGS.get(name, {}))
    card = json.loads(json.dumps(defense.describe()))  # as written to and read from a checkpoint card
    rebuilt = defense_from_card(card)
    assert type(rebuilt) is type(defense)
    assert rebuilt.describe() == defense.describe()
    assert bool(getattr(defense, "stochastic", False)) == DEFENSES.entry(name).info["stochastic"]
    for key, value in SETTINGS.get(name, {}).items():
        assert card[key] == value


def test_transforms_wrap_a_model_and_objectives_are_callable() -> None:
    torch.manual_seed(0)
    model = TinyCNN(dropout=0.3)
    x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
    for name in ("input_noise", "mc_dropout"):
        wrapped = create_defense(name).apply(model)
        assert wrapped(x).shape == (4, 10) and wrapped.stochastic is True
    loss = create_defense("gaussian_augmentation", scale=0.1)(model, x, y)
    assert loss.dim() == 0


def test_bad_names_and_settings_say_what_to_do() -> None:
    with pytest.raises(UnknownNameError, match="pgd_at"):
        create_defense("pgd-at")
    with pytest.raises(InputError, match=r"pgd_at.*unexpected keyword"):
        create_defense("pgd_at", epsilon=0.3)
    with pytest.raises(InputError, match="scale"):
        create_defense("random_sign_training")
    with pytest.raises(InputError, match="name"):
        defense_from_card({"eps": 0.3})
