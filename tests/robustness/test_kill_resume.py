"""Never lose work: a real ``advlab train`` killed with SIGKILL after its first epoch resumes to the weights of an
uninterrupted run, bit for bit (CPU)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from advlab.models.checkpoint import load_tensors

TRAIN = [sys.executable, "-m", "advlab", "train", "--model", "mlp", "--dataset", "mnist-sample", "--n", "2000",
         "--epochs", "3", "--quiet", "--device", "cpu"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_tensors(run_dir / "last.safetensors")


def _kill_after_first_epoch(out: Path, env: dict[str, str]) -> int:
    """Start the run, SIGKILL it as soon as epoch 1's training state exists; returns the epochs it completed."""
    process = subprocess.Popen([*TRAIN, "--out", str(out)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    state = out / "train_state.json"
    deadline = time.monotonic() + 240
    try:
        while not state.is_file():
            if process.poll() is not None:
                pytest.fail(f"the run ended before its first checkpoint: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint after 240 s")
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return int(json.loads(state.read_text())["epochs_completed"])


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path: Path, cli_env: dict[str, str]) -> None:
    killed = tmp_path / "killed"
    epochs_done = _kill_after_first_epoch(killed, cli_env)
    assert 1 <= epochs_done < 3
    # Whatever was on disk at the kill is complete: every visible file parses (atomic writes, hidden temps only).
    for card in killed.glob("*.json"):
        json.loads(card.read_text())
    assert _weights(killed)  # loads and checks its card's sha256

    resumed = subprocess.run([*TRAIN, "--out", str(killed), "--resume"], env=cli_env, check=False, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    full = subprocess.run([*TRAIN, "--out", str(tmp_path / "full")], env=cli_env, check=False, capture_output=True,
                          text=True, timeout=300)
    assert full.returncode == 0, full.stderr[-2000:]

    want, got = _weights(tmp_path / "full"), _weights(killed)
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), f"{name} differs from the uninterrupted run"
    history = json.loads((killed / "last.json").read_text())["metrics"]
    reference = json.loads((tmp_path / "full" / "last.json").read_text())["metrics"]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in reference]
    assert [r["test_acc"] for r in history] == [r["test_acc"] for r in reference]
