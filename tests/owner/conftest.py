"""The owner's tests run on each database backend, as the store's do (tests/store/conftest.py)."""

from tests.store.conftest import database_url, db, pytest_generate_tests

__all__ = ["database_url", "db", "pytest_generate_tests"]
