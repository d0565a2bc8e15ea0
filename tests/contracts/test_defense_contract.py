"""The defense contract, for every registered defense: it trains from ``advlab train`` (a few batches), its
checkpoint loads back into the same function, and its card rebuilds the same defense."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from advlab.cli import app
from advlab.defenses.registry import DEFENSES, create_defense, defense_from_card
from advlab.loading import load_model

# Settings a defense cannot do without, and the model it needs (MC dropout needs dropout layers).
REQUIRED = {"gaussian_augmentation": ["scale=0.1"], "random_sign_training": ["scale=0.1"]}
MODEL = {"mc_dropout": "mnist_cnn"}


@pytest.mark.parametrize("name", DEFENSES.names())
def test_each_defense_trains_from_the_cli_and_round_trips_through_its_card(name: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--threads", "1", "train", "--model", MODEL.get(name, "mnist_small"), "--dataset", "mnist-sample",
            "--n", "64", "--batch-size", "32", "--epochs", "1", "--quiet", "--device", "cpu", "--defense", name,
            "--out", str(out)]
    for setting in REQUIRED.get(name, []):
        args += ["--defense-arg", setting]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{name}: {result.output}\n{result.exception!r}"
    card = json.loads((out / "last.json").read_text())
    recorded = DEFENSES.entry(name).info.get("alias_of", name)  # an alias's card records the full name
    (described,) = [entry for entry in card["defenses"] if entry["name"] == recorded]
    assert defense_from_card(described).describe() == described
    assert create_defense(name, **{k: v for k, v in described.items() if k != "name"}).describe() == described

    loaded = load_model(None, out / "last.safetensors").model
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        logits = loaded(x)
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    if not DEFENSES.entry(name).info["stochastic"]:
        again = load_model(None, out / "last.safetensors").model
        with torch.no_grad():
            torch.testing.assert_close(again(x), logits)
