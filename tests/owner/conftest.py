"""The owner's tests run on each database backend: SQLite, and a throwaway PostgreSQL
(tests/store/postgres.py) when one can run here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.store.db import Database, open_database
from tests.store.postgres import database_url, parametrize_backends

__all__ = ["database_url"]  # a fixture for the tests here


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_backends(metafunc)  # every test here that uses `db` or `database_url` runs on both


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.close()
