"""Train a model from the user's own module, then evaluate its checkpoint (issue 15, item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

USER_MODULE = '''
from torch import nn


def make_model(hidden: int = 32):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
'''


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "advlab", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_user_factory_is_recorded_in_the_card_and_its_checkpoint_evaluates(tmp_path: Path) -> None:
    (tmp_path / "mymodel.py").write_text(USER_MODULE)
    trained = _run(["train", "--model", "mymodel:make_model", "--model-arg", "hidden=16", "--dataset",
                    "mnist-sample", "--subset", "256", "--epochs", "1", "--quiet", "--device", "cpu", "--out",
                    "run"], tmp_path)
    assert trained.returncode == 0, trained.stderr
    card = json.loads((tmp_path / "run" / "last.json").read_text())
    assert card["model"]["name"] == "mymodel:make_model" and card["model"]["args"] == {"hidden": 16}
    evaluated = _run(["evaluate", "--weights", "run/last.safetensors", "--dataset", "mnist-sample", "--subset",
                      "64", "--eps", "0.1", "--no-checks", "--quiet", "--device", "cpu", "--out", "eval"], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads((tmp_path / "eval" / "card.json").read_text())
    assert result["model"]["model"]["name"] == "mymodel:make_model"
