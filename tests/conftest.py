"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """The real datasets beside the project (``../shared/data``), or ``$ADVLAB_TEST_DATA``."""
    return Path(os.environ.get("ADVLAB_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} is absent")
    return root


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    # Two cores shared by the whole suite: one intra-op thread keeps tests from oversubscribing.
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
