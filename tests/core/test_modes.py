"""``restored_modes`` hands every submodule's train/eval flag back, also when the code inside raises."""

from __future__ import annotations

import pytest
from torch import nn

from advlab.modes import restored_modes


def test_each_submodule_gets_its_own_flag_back_after_an_error() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4)).eval()
    model[1].train()  # mixed modes, as MC-dropout leaves a model
    before = [module.training for module in model.modules()]
    with pytest.raises(RuntimeError, match="inside"), restored_modes(model):
        model.train()
        raise RuntimeError("failure inside")
    assert [module.training for module in model.modules()] == before == [False, False, True, False]
