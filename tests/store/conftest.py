"""The owner's database for store tests: SQLite in a temporary folder, migrated like a real one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.store.db import Database, open_database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'standin.db'}")
    yield database
    database.close()
