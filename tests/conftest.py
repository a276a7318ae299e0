"""Fixtures shared by several test files. Plain helpers (references, tiny configs, stand-in
trials) live in ``tests/helpers.py``."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """The test machine's two cores are shared: one intra-op thread avoids oversubscription
    that makes small problems ten times slower. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
