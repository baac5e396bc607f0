"""Shared test helpers: where the shared recordings live, and skipping cleanly when they don't."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "scenarios").is_dir():
        pytest.skip(f"the shared recordings are not at {SHARED} (they sit beside the checkout)")
    return SHARED
