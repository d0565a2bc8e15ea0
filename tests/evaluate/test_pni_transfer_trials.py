"""transfer_matrix over repeated trials (mean ± std per cell), as Table 5 of Rakin, He, Fan 2019 reports it."""

from __future__ import annotations

import pytest
import torch

from advlab.attacks import PGD
from advlab.defenses.noise import InputNoise
from advlab.errors import InputError
from advlab.evaluate import transfer_matrix


def test_trials_of_deterministic_models_repeat_the_single_matrix(trained, trained_other, test_xy) -> None:
    data = (test_xy[0][:64], test_xy[1][:64])
    attack = PGD(eps=0.1, step_size=0.025, steps=5, random_start=False)
    models = {"a": trained, "b": trained_other}
    single = transfer_matrix(models, data, attack)
    repeated = transfer_matrix(models, data, attack, trials=3)
    torch.testing.assert_close(repeated.accuracy, single.accuracy)
    assert repeated.trials == 3 and float(repeated.accuracy_std.abs().max()) == 0.0
    assert repeated.to_dict()["accuracy_std"] == [[0.0, 0.0], [0.0, 0.0]]


def test_a_randomized_target_gets_a_spread_and_the_first_trial_keeps_its_seeds(trained, trained_other,
                                                                               test_xy) -> None:
    data = (test_xy[0][:64], test_xy[1][:64])
    noisy = InputNoise(trained_other, kind="gaussian", scale=0.4)
    attack = PGD(eps=0.1, step_size=0.025, steps=5, random_start=False)
    one = transfer_matrix({"a": trained, "b": noisy}, data, attack, seed=3)
    again = transfer_matrix({"a": trained, "b": noisy}, data, attack, seed=3)
    torch.testing.assert_close(one.accuracy, again.accuracy)  # seeded: the same draws
    five = transfer_matrix({"a": trained, "b": noisy}, data, attack, seed=3, trials=5)
    assert float(five.accuracy_std[0, 1]) > 0  # a ⇒ noisy b: the target's noise differs per trial
    assert float(five.accuracy_std[0, 0]) == 0  # a ⇒ a: nothing random
    with pytest.raises(InputError, match="trials"):
        transfer_matrix({"a": trained}, data, attack, trials=0)
