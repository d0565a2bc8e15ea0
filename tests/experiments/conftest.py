"""Fixtures for the reproduction presets' tests: a test-only preset on the bundled MNIST sample."""

from __future__ import annotations

from pathlib import Path

import pytest

# A test-only preset: the fooling-noise experiment on the bundled MNIST sample (no data folder needed), the BP net
# (MLP) only, one epoch, with one "paper" number so the Δ column is exercised. The value is a fixture, not a paper's
# number.
TINY_PRESET = """
name = "test-tiny"
experiment = "fooling_noise"
dataset = "mnist-sample"
summary = "test-only preset"
notes = ["test fixture"]

[paper]
title = "A test fixture"
authors = ["Nobody"]
year = 2024

[settings]
models = ["mlp"]
optimizer = "adam"
lr = 0.001
batch_size = 64
epochs = 1
alpha = 0.5
n_validation = 2000
paper_eps = { mlp = 0.3 }
adv_train_eps = { mlp = 0.1 }
table5_std = { mlp = 0.3 }
fgsm_eps = [0.1, 0.3]
noise_stds = [0.0, 0.5]
seed = 0

[scales.tiny]
description = "test-only: 300 training images of the bundled sample, 1 epoch; 200 training + 200 validation images"
n_train = 300
n_eval = 200
n_test = 200

[scales.full]
description = "not runnable (test of the refusal)"
runs_here = false
limitation = "a test preset that never runs at full scale"

[[reported]]
key = "table1.mlp.val_acc"
table = "Table 1"
row = "VALIDATION"
column = "BP"
label = "BP validation accuracy"
value = 0.5

[[reported]]
key = "table9.never_measured"
table = "Table 9"
row = "a row"
column = "a column"
label = "a number no experiment measures"
value = 0.25
"""


@pytest.fixture()
def tiny_preset_path(tmp_path: Path) -> Path:
    path = tmp_path / "test_tiny.toml"
    path.write_text(TINY_PRESET, encoding="utf-8")
    return path
