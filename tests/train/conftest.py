"""Fixtures for the training-loop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The tests train kilobyte-sized models: a second intra-op thread only adds synchronization, and on a
    # loaded 2-core machine its spin-waits made these tests ~10x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
