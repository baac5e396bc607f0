"""Fixtures of the deployment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.doctor import network
from tests.deploy.doctor_box import Box, make_box


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Box:
    """A box set up right. pjsua2 counts as built (test_doctor.py checks that finding on its own)."""
    for name in ("STANDIN_NOTIFY_URLS", "STANDIN_API_TOKENS", "STANDIN_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(network, "has_pjsua2", lambda: True)
    return make_box(tmp_path)
