"""Two evaluations into one --out (issue 15, item 1): the second is refused, and no state of another evaluation
is ever read as this one's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advlab.errors import InputError
from advlab.folder_lock import LOCK_NAME, exclusive_folder

EVALUATE = [sys.executable, "-m", "advlab", "evaluate", "--model", "mlp", "--dataset", "mnist-sample",
            "--subset", "256", "--eps", "0.1", "--quiet", "--device", "cpu"]


# The first evaluation: a real evaluate_model in its own process, slowed per batch so that it is still running
# (and holding its folder) when the second one starts, however fast the machine is.
FIRST = """
import sys, time
from torch import nn
from advlab.data.sources import load_dataset
from advlab.evaluate.pipeline import evaluate_model
model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
data = load_dataset("mnist-sample", "test").subset(64, seed=0)
evaluate_model(model, {"label": "first"}, data, out_dir=sys.argv[1], epsilons=[0.1], batch_size=8,
               progress=lambda *_: time.sleep(0.5))
"""


def test_a_second_evaluation_into_a_busy_out_is_refused_with_one_line(tmp_path: Path,
                                                                      cli_env: dict[str, str]) -> None:
    out = tmp_path / "shared"
    first = subprocess.Popen([sys.executable, "-c", FIRST, str(out)], env=cli_env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_NAME).is_file():
            if first.poll() is not None:
                pytest.fail(f"the first evaluation ended before taking its lock: {first.stderr.read().decode()}")
            assert time.monotonic() < deadline, "the first evaluation never took its lock"
            time.sleep(0.02)
        second = subprocess.run([*EVALUATE, "--out", str(out)], env=cli_env,
                                capture_output=True, text=True, timeout=300)
        still_running = first.poll() is None
    finally:
        first.kill()
        first.communicate()
    assert still_running, "the first evaluation ended before the second was refused: the test proves nothing"
    assert second.returncode == 2, second.stderr
    assert "in use by another advlab evaluation" in second.stderr and "Traceback" not in second.stderr


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename,
                                                  "what": "evaluation"}))
    with exclusive_folder(tmp_path, "evaluation"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_live_lock_is_refused_and_left_in_place(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename,
                                                      "what": "evaluation"}))
        with pytest.raises(InputError, match=f"pid {holder.pid}"):
            with exclusive_folder(tmp_path, "evaluation"):
                pass
        assert (tmp_path / LOCK_NAME).exists()
    finally:
        holder.kill()
        holder.wait()
