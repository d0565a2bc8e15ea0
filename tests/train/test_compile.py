"""``TrainConfig(compile=True)`` / ``advlab train --compile``: the same training through torch.compile, and one clear
error where the CPU backend has no C++ compiler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fit_helpers import TinyNet, stripes

from advlab.errors import InputError
from advlab.train import TrainConfig, evaluate, fit


def test_compile_without_a_cpp_compiler_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    config = TrainConfig(epochs=1, batch_size=32, compile=True)
    with pytest.raises(InputError, match="C\\+\\+ compiler"):
        fit(TinyNet(), stripes(64), config=config, quiet=True, device="cpu")
    with pytest.raises(InputError, match="compile"):
        TrainConfig(compile="yes")  # type: ignore[arg-type]


@pytest.mark.slow
def test_compiled_training_reaches_the_accuracy_of_eager_training(tmp_path: Path) -> None:
    import shutil

    if not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        pytest.fail("this test needs a C++ compiler (torch.compile's CPU backend builds its kernels with it)")
    accuracy = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        config = TrainConfig(epochs=2, batch_size=32, optimizer="adam", lr=1e-2, seed=0, compile=compiled)
        result = fit(TinyNet(), stripes(300), config=config, out_dir=tmp_path / str(compiled), quiet=True,
                     device="cpu")
        assert result.card["train"]["compile"] is compiled
        accuracy[compiled] = float(evaluate(result.model, stripes(200, seed=1))["acc"])
    assert accuracy[False] > 0.9 and abs(accuracy[True] - accuracy[False]) <= 0.05
