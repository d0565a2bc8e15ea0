"""Crash safety for real: SIGKILL an evaluation in a subprocess mid-run, rerun it, compare with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline_helpers import ForwardCounter
from safetensors.torch import save_file

from advlab.evaluate.pipeline import evaluate_model

SETTINGS = {"epsilons": [0.1, 0.2], "analyses": {"gradients", "examples", "statistics"}, "batch_size": 20,
            "analysis_points": 40, "check_points": 30, "seed": 3}

# The child builds the same MLP as pipeline_helpers.make_mlp, loads the parent's weights and evaluates it with a
# progress callback that sleeps after every finished batch, so the parent can kill it in the middle.
CHILD = """
import sys, time, torch
from torch import nn
from safetensors.torch import load_file
from advlab.data.sources import load_dataset
from advlab.evaluate.pipeline import evaluate_model
torch.set_num_threads(1)
weights, out_dir = sys.argv[1], sys.argv[2]
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
model.load_state_dict(load_file(weights))
model.eval()
data = load_dataset("mnist-sample", "test").subset(120, seed=0)
evaluate_model(model, {"label": "tiny mlp"}, data, out_dir=out_dir, progress=lambda *_: time.sleep(0.15),
               epsilons=[0.1, 0.2], analyses={"gradients", "examples", "statistics"}, batch_size=20,
               analysis_points=40, check_points=30, seed=3)
"""


def finished_batches(state_dir: Path) -> int:
    """Records in the batch-level state files written so far (0 while none exists)."""
    total = 0
    for path in state_dir.glob("*.json"):
        try:
            total += len(json.loads(path.read_text()).get("records", {}))
        except (OSError, json.JSONDecodeError):  # cannot happen with atomic writes, but never fail the poll
            pass
    return total


def without_times(card) -> dict:
    return card.to_dict() | {"timestamp": "", "duration_s": 0.0}


def test_killed_evaluation_resumes_to_the_same_card(tiny_mlp, test_points, tmp_path) -> None:
    weights = tmp_path / "mlp.safetensors"
    save_file({key: value.contiguous() for key, value in tiny_mlp.state_dict().items()}, str(weights))
    killed = tmp_path / "killed"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(weights), str(killed)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while finished_batches(killed / "state") < 3:  # of the 6 batches (both ε and both attacks each)
            assert child.poll() is None, child.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the child made no progress in 120 s"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (killed / "card.json").exists(), "the child finished before it was killed"
    done_before = finished_batches(killed / "state")

    counter = ForwardCounter(tiny_mlp)
    try:
        resumed = evaluate_model(tiny_mlp, {"label": "tiny mlp"}, test_points, out_dir=killed, **SETTINGS)
        resumed_calls, counter.calls = counter.calls, 0
        fresh = evaluate_model(tiny_mlp, {"label": "tiny mlp"}, test_points, out_dir=tmp_path / "fresh", **SETTINGS)
        fresh_calls = counter.calls
    finally:
        counter.close()

    assert done_before >= 3
    assert without_times(resumed) == without_times(fresh)
    assert (killed / "card.json").exists()
    # The resumed run skipped the batches the child had finished (fewer forward passes than a fresh run).
    assert resumed_calls < fresh_calls, (resumed_calls, fresh_calls)
