"""Fixtures for the robustness tests: distributed runs on loopback, killed runs, hostile files, fuzzing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The spawned worker processes import the helper modules of this folder by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def loopback_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep gloo on the loopback interface (no traffic leaves the machine) and drop torchrun variables the
    parent may carry, so only the workers' own settings count."""
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    if Path("/sys/class/net/lo").exists():
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for ``python -m advlab`` subprocesses: one torch thread, no torchrun variables."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", COLUMNS="200")
    return env
