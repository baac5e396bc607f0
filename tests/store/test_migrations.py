"""The migrations on each backend: an empty database migrated to the newest revision has exactly the
models' schema (what `alembic check` compares), the way down and up again works, an old database keeps
its rows through an upgrade, and on Postgres two standins starting together on one database both open it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, insert, inspect, select, table, text

from server.store.db import MIGRATIONS, Database, head_revision, open_database
from server.store.schema import Base, Call, UtcDateTime
from tests.store.postgres import postgres_only

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare(database_url: str) -> Iterator[Database]:
    """The database, connected but not migrated."""
    database = open_database(database_url, migrate=False)
    yield database
    database.close()


def migrate(db: Database, verb: str, revision: str) -> None:
    with db.engine.begin() as conn:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        getattr(command, verb)(config, revision)


def differences(db: Database) -> list[Any]:
    """What autogenerate would put in a new migration, compared as migrations/env.py configures it."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return list(compare_metadata(context, Base.metadata))


def tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_an_empty_database_migrates_to_the_models_schema_and_back(bare: Database) -> None:
    assert tables(bare) == set() and bare.revision() is None
    migrate(bare, "upgrade", "head")
    assert bare.revision() == head_revision()
    assert tables(bare) == {*Base.metadata.tables, "alembic_version"}
    assert differences(bare) == []

    migrate(bare, "downgrade", "base")
    assert tables(bare) == {"alembic_version"} and bare.revision() is None
    migrate(bare, "upgrade", "head")
    assert differences(bare) == []


def test_opening_an_old_database_upgrades_it_and_keeps_its_rows(bare: Database, database_url: str) -> None:
    migrate(bare, "upgrade", "0001")
    started = datetime(2026, 1, 2, 23, 30, tzinfo=UTC)
    calls_0001 = table("calls", column("started_at", UtcDateTime()), *(column(name) for name in (
        "uid", "source", "caller_number", "caller_name", "profile", "language", "state", "ended_reason",
        "error", "folder")))
    with bare.engine.begin() as conn:  # a call as 0001 stored it: no node column yet
        conn.execute(insert(calls_0001).values(
            uid="20260102-233000-call-1", source="sip", caller_number="+393331234567", caller_name="",
            profile="", language="en", started_at=started, state="live",
            ended_reason="", error="", folder=""))

    db = open_database(database_url)
    try:
        assert db.revision() == head_revision()
        with db.session() as s:
            call = s.scalars(select(Call)).one()
            assert (call.uid, call.node, call.state, call.started_at) == (
                "20260102-233000-call-1", "", "live", started)
            assert call.started_at.tzinfo == UTC
        assert differences(db) == []
    finally:
        db.close()


PAUSED = """
import sys
from sqlalchemy import Engine, event
from server.store.db import open_database

def pause(conn, cursor, statement, *args):
    if statement.lstrip().startswith("CREATE TABLE calls"):
        print("migrating", flush=True)
        sys.stdin.readline()

event.listen(Engine, "before_cursor_execute", pause)
open_database(sys.argv[1]).close()
print("migrated", flush=True)
"""


def lock_waits(db: Database) -> int:
    """How many sessions of this database wait for a lock."""
    with db.engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND wait_event_type = 'Lock'")) or 0


@postgres_only
def test_two_standins_starting_together_on_one_database_both_open_it(
        bare: Database, database_url: str) -> None:
    """The first migrates (held half-way here); the second waits for it and then has nothing to do."""
    first = subprocess.Popen([sys.executable, "-c", PAUSED, database_url], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second: list[Any] = []
    try:
        assert first.stdin is not None and first.stdout is not None
        assert first.stdout.readline().strip() == "migrating", first.stderr.read() if first.stderr else ""

        def start_second() -> None:
            try:
                second.append(open_database(database_url))
            except Exception as exc:
                second.append(exc)

        opener = threading.Thread(target=start_second, daemon=True)
        opener.start()
        for _ in range(1200):  # until the second waits for the first (or is done): readiness, not timing
            if lock_waits(bare) or not opener.is_alive():
                break
            time.sleep(0.05)
        first.stdin.write("go\n")
        first.stdin.flush()
        output, errors = first.communicate(timeout=120)
        opener.join(120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0 and output.strip() == "migrated", errors
    [opened] = second
    assert isinstance(opened, Database), opened
    try:
        assert opened.revision() == head_revision() and differences(opened) == []
    finally:
        opened.close()


@postgres_only
def test_a_plain_postgresql_url_uses_psycopg_3(database_url: str) -> None:
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    db = open_database(plain)
    try:
        assert db.engine.dialect.driver == "psycopg"
        assert db.revision() == head_revision()
    finally:
        db.close()
