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
    # Tests use tiny models, where a second intra-op thread only adds synchronisation (measured 6-15x slower
    # under load on the 2-core machines); one thread keeps the suite fast and its timings stable.
    torch.set_num_threads(1)
