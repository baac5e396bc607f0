"""The owner's database on both backends: a throwaway PostgreSQL cluster for the test session.

`database_url` is a fixture: SQLite in the test's temporary folder by default; parametrised with
`BACKENDS` (directly, with `both_backends`, or for a whole folder with `parametrize_backends` in its
conftest's `pytest_generate_tests`) it is, for "postgres", a fresh empty database of its own in a cluster
that the first such test starts: `initdb` into a temporary folder, the server listening only on a unix
socket inside it, fsync off, stopped and removed when the session ends. PostgreSQL refuses to run as root,
so under root the cluster belongs to the `postgres` user. The server's time zone is deliberately not UTC,
as a real server's often is not, so that a datetime read back in the session's zone shows.

A test asking for Postgres is skipped, with the reason, when psycopg or PostgreSQL's programs are missing
(`pip install "psycopg[binary]"`, `apt install postgresql`), or when running as root with no `postgres`
user; a cluster that is there but does not start is an error, with its log. (A pytest killed outright
cannot stop its cluster: `pg_ctl stop -D /tmp/standin-pg-*/data` does, as the postgres user under root.)
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

BACKENDS = ("sqlite", "postgres")
both_backends = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

SERVER_TIME_ZONE = "Asia/Kolkata"  # +05:30, no daylight saving: anything not converted to UTC shows
SUPERUSER = "postgres"
_SETTINGS = {  # a throwaway cluster: nothing needs to survive a crash
    "listen_addresses": "''", "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
    "max_connections": "40", "shared_buffers": "16MB", "timezone": f"'{SERVER_TIME_ZONE}'",
    "log_timezone": "'UTC'",
}


def postgres_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: on PATH, else the newest of Debian's
    /usr/lib/postgresql/<version>/bin (or the PGDG layout /usr/pgsql-<version>/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb") + glob.glob("/usr/pgsql-*/bin/initdb")

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name))

    return Path(max(candidates, key=version)).parent if candidates else None


def unavailable() -> str | None:
    """Why a Postgres cluster cannot be run here, or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return 'psycopg is not installed (pip install "psycopg[binary]")'
    bindir = postgres_bindir()
    if bindir is None or not all((bindir / p).is_file() for p in ("initdb", "pg_ctl", "postgres")):
        return "PostgreSQL's programs (initdb, pg_ctl) are not installed (apt install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return f"the tests run as root and there is no {SUPERUSER!r} user to run PostgreSQL as"
    return None


class PostgresCluster:
    """One initdb'd cluster in a temporary folder, its server reachable only through its unix socket."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # Not under pytest's basetemp: that is private to the user running the tests, and the server may
        # run as another one. The socket's path must stay short (about 100 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="standin-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self._names = itertools.count(1)
        self.running = False

    def _run(self, *args: str) -> None:
        """A PostgreSQL program, as the cluster's owner."""
        result = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.root, capture_output=True,
                                text=True, env={**os.environ, "LC_ALL": "C", "TZ": "UTC"}, check=False,
                                **self._user)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.is_file() else ""
            output = result.stdout + result.stderr
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{output}{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                  "--no-locale", "--no-sync", "--no-instructions")
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# standin's test cluster\n")
            conf.write(f"unix_socket_directories = '{self.root}'\n")
            conf.writelines(f"{key} = {value}\n" for key, value in _SETTINGS.items())
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120")
        self.running = True

    def stop(self) -> None:
        try:
            if self.running:
                self.running = False
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={quote(str(self.root), safe='')}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.root), user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self) -> str:
        name = f"standin_test_{next(self._names)}"
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a killed child's sessions too


class _Shared:
    """The session's cluster, once per process however many conftests import the fixtures."""

    cluster: PostgresCluster | None = None
    failed: str | None = None  # why it did not start: reported by every test that wants it

    def get(self, config: pytest.Config) -> PostgresCluster:
        """Started on first use and stopped when pytest ends. Skips the test when Postgres cannot run."""
        reason = unavailable()
        if reason is not None:
            pytest.skip(f"Postgres: {reason}")
        if self.failed is not None:
            pytest.fail(f"the test cluster did not start: {self.failed}", pytrace=False)
        if self.cluster is None:
            bindir = postgres_bindir()
            assert bindir is not None
            made = PostgresCluster(bindir)
            config.add_cleanup(made.stop)
            try:
                made.start()
            except Exception as exc:
                self.failed = str(exc)
                raise
            self.cluster = made
            config.add_cleanup(self.forget)
        return self.cluster

    def forget(self) -> None:
        self.cluster = None


_SHARED = _Shared()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database for one test: SQLite unless parametrised with "postgres" (see the module's text)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'standin.db'}"
        return
    assert backend == "postgres", backend
    pg = _SHARED.get(request.config)
    name = pg.create_database()
    try:
        yield pg.url(name)
    finally:
        with contextlib.suppress(Exception):  # the cluster is thrown away anyway
            pg.drop_database(name)


def parametrize_backends(metafunc: pytest.Metafunc) -> None:
    """For a conftest's `pytest_generate_tests`: every test there that uses `database_url` (through `db`,
    say) runs on each backend, unless it chose its backends itself."""
    chosen: set[str] = set()
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        chosen.update([n.strip() for n in names.split(",")] if isinstance(names, str) else names)
    if "database_url" in metafunc.fixturenames and "database_url" not in chosen:
        metafunc.parametrize("database_url", BACKENDS, indirect=True)
