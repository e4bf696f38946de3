"""Fixtures for the DPM guest tools tests; the fake guest is in fakeguest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.guest_tools.fakeguest import FakeGuest


@pytest.fixture
def guest(tmp_path: Path) -> FakeGuest:
    root = tmp_path / "root"
    root.mkdir()
    return FakeGuest(root)
