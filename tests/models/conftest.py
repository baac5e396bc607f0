"""Fixtures of the model-manager tests: a models folder and a file server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.models.model_server import FileServer, serve_files


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serve_files() as srv:
        yield srv


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"
