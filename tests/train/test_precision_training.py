"""Training precision (issue 19): bf16 autocast trains to the accuracy of fp32, the card says what ran, and a
machine without native bf16 keeps fp32 under ``auto``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fit_helpers import TinyNet, stripes

from advlab.errors import InputError
from advlab.train import TrainConfig, evaluate, fit
from advlab.training.loop import training_precision


def _train(precision: str, out: Path) -> tuple[float, dict]:
    torch.manual_seed(0)
    config = TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=1e-2, precision=precision, seed=0)
    result = fit(TinyNet(), stripes(300), config=config, out_dir=out, quiet=True, device="cpu")
    return float(evaluate(result.model, stripes(200, seed=1))["acc"]), result.card


def test_bf16_training_reaches_fp32_accuracy_and_the_card_records_it(tmp_path: Path) -> None:
    fp32_acc, fp32_card = _train("fp32", tmp_path / "fp32")
    bf16_acc, bf16_card = _train("bf16", tmp_path / "bf16")
    assert fp32_card["precision"] == "fp32" and bf16_card["precision"] == "bf16"
    assert fp32_acc > 0.9 and abs(bf16_acc - fp32_acc) <= 0.05


def test_auto_follows_the_hardware_and_amp_stays_a_cuda_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    import advlab.precision as precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert training_precision(TrainConfig(precision="auto"), cpu) == "fp32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert training_precision(TrainConfig(precision="auto"), cpu) == "bf16"
    assert training_precision(TrainConfig(amp=True), cpu) == "fp32"  # amp: bf16 on CUDA only, as before
    with pytest.raises(InputError, match="precision"):
        TrainConfig(precision="fp16")
