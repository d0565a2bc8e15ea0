"""The stochastic-feedforward preset: Table 1 recorded cell by cell, and the σ_N² choices read off the grid."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from advlab.experiments.presets import load_preset, names_paper_item
from advlab.experiments.steps import stochastic_feedforward as steps


def test_every_numeric_cell_of_table_1_is_recorded_once() -> None:
    preset = load_preset("stochastic-feedforward")
    table1 = [r for r in preset.reported if r.table == "Table 1"]
    # 5 rows x 5 columns minus the '_' / '*' / blank cells (LWA + BN on ImageNet: 3, adversarial at k = 0.5: 2)
    assert len(table1) == 20
    cifar = {(r.row, r.column): r for r in table1 if r.column.startswith("CIFAR-10")}
    imagenet = [r for r in table1 if r.column.startswith("ImageNet")]
    assert len(cifar) == 10 and len(imagenet) == 10
    assert cifar[("Standard training + Stochastic FF", "CIFAR-10, k = 0.5")].value == 0.781
    assert cifar[("Adversarial training + Stochastic FF", "CIFAR-10, k = 0.5")].value == 0.829
    # ImageNet and the cited LWA + BN row are recorded, never measured; every NIN cell is measured.
    assert all(r.not_measured for r in imagenet)
    assert all(bool(r.not_measured) == r.key.startswith("lwa_bn") for r in cifar.values())
    assert all(names_paper_item(r.table) for r in preset.reported)
    epsilon = next(r for r in preset.reported if r.key == "settings.var_floor")
    assert epsilon.value == 1e-20 and not epsilon.not_measured
    assert preset.scale_settings("quick")["var_floor"] == 1e-20


def split(accuracies: dict[tuple[float, float], float], n: int = 20) -> steps._Split:
    """A split whose stochastic logits at (σ², k) classify the first round(acc·n) of n images correctly."""
    y = torch.zeros(n, dtype=torch.long)
    out = steps._Split(y)
    for key, acc in accuracies.items():
        logits = torch.zeros(n, 3)
        correct = round(acc * n)
        logits[:correct, 0] = 1.0
        logits[correct:, 1] = 1.0
        out.stochastic[key] = logits
        out.standard[key[1]] = logits
    return out


def test_per_k_choice_uses_the_split_it_is_given_and_breaks_ties_to_the_smaller_variance() -> None:
    test = split({(0.001, 0.5): 0.50, (0.01, 0.5): 0.70, (0.001, 0.0): 0.90, (0.01, 0.0): 0.90})
    held_out = split({(0.001, 0.5): 0.60, (0.01, 0.5): 0.40, (0.001, 0.0): 0.80, (0.01, 0.0): 0.85})
    assert steps._best(test, [0.001, 0.01], 0.5) == (0.70, 0.01)
    assert steps._best(held_out, [0.001, 0.01], 0.5) == (0.60, 0.001)  # the honest choice differs
    assert steps._best(test, [0.001, 0.01], 0.0) == (0.90, 0.001)  # a tie: the smaller σ_N²


def test_single_variance_respects_the_clean_accuracy_budget() -> None:
    variances = [0.001, 0.01, 0.03]
    held_out = split({(0.001, 0.0): 0.90, (0.001, 0.5): 0.50, (0.01, 0.0): 0.85, (0.01, 0.5): 0.70,
                      (0.03, 0.0): 0.60, (0.03, 0.5): 0.80})
    held_out.standard[0.0] = held_out.stochastic[(0.001, 0.0)]  # standard network: 0.90 clean
    grid = steps._Grid(variances, [0.0, 0.5], test=held_out, held_out=held_out)
    ctx = SimpleNamespace(settings={"clean_loss_budget": 0.06})
    chosen, rows = steps._single_variance(ctx, grid)
    assert chosen == 0.01  # 0.03 is more robust but costs 30 points of clean accuracy
    assert dict((key, value) for key, _, value, _ in rows)["chosen_variance"] == 0.01
    ctx = SimpleNamespace(settings={"clean_loss_budget": 0.5})
    assert steps._single_variance(ctx, grid)[0] == 0.03


def test_each_scale_trains_in_its_precision_through_the_training_config() -> None:
    # bf16 training is TrainConfig.precision (its numerics are tested in tests/train/test_precision_training.py).
    from advlab.experiments import load_preset
    from advlab.experiments.steps.common import train_config

    preset = load_preset("stochastic-feedforward")
    for scale, expected in (("tiny", "bf16"), ("quick", "bf16"), ("medium", "auto"), ("full", "auto")):
        assert train_config(preset.scale_settings(scale), torch.device("cpu")).precision == expected


@pytest.mark.parametrize("k,expected", [(0.0, "clean_acc"), (0.5, "k0.5"), (8.0, "k8")])
def test_key_suffixes_match_the_reported_keys(k: float, expected: str) -> None:
    assert steps._kkey(k) == expected
