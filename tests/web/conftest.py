"""The dashboard on a temp database (SQLite; Postgres too for tests marked `both_backends`) with realistic
calls, messages, deliveries, contacts."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.config import Config, StorageConfig, WebConfig
from server.store.db import Database, open_database
from server.store.schema import (
    BotTurn,
    Call,
    Contact,
    ContactNumber,
    Decision,
    Delivery,
    Fragment,
    Message,
    Profile,
    TurnLatency,
)
from server.web.app import create_app
from server.web.auth import hash_password
from server.web.context import WebContext, not_running
from server.web.serving import dashboard
from tests.store.postgres import database_url

__all__ = ["database_url"]  # a fixture: SQLite, or Postgres for the tests marked `both_backends`

PASSWORD = "correct horse battery"
TOKEN = "api-token-0123456789abcdef"
BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture(autouse=True)
def _no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STANDIN_API_TOKENS", raising=False)
    monkeypatch.delenv("STANDIN_WEB_PASSWORD_HASH", raising=False)


@pytest.fixture
def config(tmp_path: Path, password_hash: str, database_url: str) -> Config:
    (tmp_path / "web-password").write_text(password_hash + "\n")
    web = WebConfig(api_tokens=(TOKEN,), password_file=str(tmp_path / "web-password"),
                    secret_file=str(tmp_path / "web-secret"), login_attempts=3, login_window_s=60.0)
    storage = StorageConfig(calls_dir=str(tmp_path / "calls"), database=database_url)
    return Config(web=web, storage=storage)


@pytest.fixture
def db(config: Config) -> Iterator[Database]:
    database = open_database(config.storage.database)
    yield database
    database.close()


@dataclass
class Site:
    """A TestClient on the app, with the helpers every test wants."""

    client: TestClient
    context: WebContext
    csrf: str = ""

    def login(self, password: str = PASSWORD) -> str:
        response = self.client.post("/login", data={"password": password, "next": "/messages"},
                                    follow_redirects=False)
        assert response.status_code == 303, response.text
        self.csrf = csrf_of(self.client.get("/messages").text)
        return self.csrf

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def make_site(config: Config, db: Database, **context: Any) -> Site:
    ctx = WebContext(config=config, db=db, **context)
    return Site(TestClient(create_app(ctx), base_url="http://testserver"), ctx)


@pytest.fixture
def site(config: Config, db: Database) -> Iterator[Site]:
    made = make_site(config, db)
    with made.client:
        yield made


@pytest.fixture
def owner(site: Site) -> Site:
    site.login()
    return site


@contextlib.contextmanager
def live_server(config: Config, db: Database) -> Iterator[str]:
    """The app as `standin serve` serves it (`serving.dashboard`: uvicorn on its own event loop, here in
    a thread), on a free port of 127.0.0.1; its address."""
    ready: queue.Queue[str | BaseException] = queue.Queue()
    stop: list[Callable[[], object]] = []

    async def serve() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        stop.append(lambda: loop.call_soon_threadsafe(done.set))
        try:
            async with dashboard(with_web(config, listen="127.0.0.1:0"), db, status=not_running,
                                 start_browser_call=None) as address:
                ready.put(address or "")
                await done.wait()
        except Exception as exc:
            ready.put(exc)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="live-dashboard", daemon=True)
    thread.start()
    address = ready.get(timeout=60)
    if isinstance(address, BaseException):
        raise address
    try:
        yield address
    finally:
        stop[0]()
        thread.join(30)


@pytest.fixture
def live(config: Config, db: Database) -> Iterator[str]:
    with live_server(config, db) as address:
        yield address


# --------------------------------------------------------------------------- realistic rows


def add_call(db: Database, n: int, *, urgency: str | None = "normal", done: bool = False,
             state: str = "ended", folder: str = "", cut_off: bool = True,
             deliveries: tuple[str, ...] = ("sent",),
             caller_name: str = "", caller_number: str = "") -> int:
    """A call like standin stores them: greeting, the caller's fragments, a reply cut off by the caller,
    a goodbye, the judge's decisions, two reply waterfalls, a message and its deliveries."""
    start = BASE + timedelta(minutes=10 * n)
    name = caller_name or f"Caller {n}"
    number = caller_number or f"+3906555{n:04d}"
    with db.session() as s:
        call = Call(uid=f"20261120-{n:04d}-call", source="sip", caller_number=number, caller_name=name,
                    profile="default", language="en", started_at=start,
                    ended_at=start + timedelta(seconds=42),
                    duration_s=42.0, state=state, ended_reason="caller hung up", folder=folder)
        call.fragments = [
            Fragment(start_s=3.1, end_s=5.0, text="Hi, this is Anna from the garage."),
            Fragment(start_s=9.2, end_s=12.4, text="Wait, it is about your car, it is ready."),
            Fragment(start_s=14.0, end_s=16.5, text=f"Call me back on {number}, thanks."),
        ]
        call.bot_turns = [
            BotTurn(kind="greeting", start_s=0.2, end_s=2.8, cut_off=False,
                    intended="Hello, you have reached Marco's phone.",
                    heard="Hello, you have reached Marco's phone."),
            BotTurn(kind="reply", start_s=5.6, end_s=9.3,
                    intended="Thank you Anna. The delivery is confirmed for Tuesday, at three o'clock.",
                    heard="Thank you Anna. The delivery is confirmed for Tuesday, at" if cut_off else
                    "Thank you Anna. The delivery is confirmed for Tuesday, at three o'clock.",
                    cut_off=cut_off),
            BotTurn(kind="goodbye", start_s=17.1, end_s=19.0, intended="I will pass it on. Goodbye!",
                    heard="I will pass it on. Goodbye!", cut_off=False),
        ]
        call.decisions = [Decision(at_s=5.2, verdict="COMPLETE", by="judge", p_complete=0.91),
                          Decision(at_s=12.8, verdict="WAIT", by="judge", p_complete=0.22),
                          Decision(at_s=16.7, verdict="COMPLETE", by="question", p_complete=None)]
        call.latencies = [
            TurnLatency(caller_end_s=5.0, stt_ms=120.0, judge_ms=18.0, llm_first_token_ms=95.0,
                        llm_first_clause_ms=140.0, tts_first_audio_ms=70.0, first_audio_s=5.6),
            TurnLatency(caller_end_s=16.5, stt_ms=150.0, judge_ms=None, llm_first_token_ms=110.0,
                        llm_first_clause_ms=None, tts_first_audio_ms=85.0, first_audio_s=17.1),
        ]
        s.add(call)
        s.flush()
        if urgency is not None:
            message = Message(call_id=call.id, created_at=start + timedelta(seconds=45), caller_name=name,
                              callback_number=number, text=f"Anna from the garage: the car is ready ({n}).",
                              urgency=urgency, language="en", source="llm", transcript="...", done=done,
                              done_at=start + timedelta(hours=1) if done else None)
            message.deliveries = [Delivery(channel=f"ch{i}", label=f"ntfy://***/{i}", state=state_,
                                           attempts=48 if state_ == "failed" else 1,
                                           last_error="HTTP 503" if state_ == "failed" else "")
                                  for i, state_ in enumerate(deliveries)]
            s.add(message)
        return call.id


def add_contacts(db: Database) -> dict[str, int]:
    with db.session() as s:
        family = Profile(name="family", greeting="Ciao!", manner="warm", language="it",
                         silence_timeout_s=20.0, backchannels=True, end_on_sales=False, blocked=False)
        sales = Profile(name="sales", greeting="", manner="brief", language="", silence_timeout_s=None,
                        backchannels=False, end_on_sales=True, blocked=False)
        mum = Contact(name="Mum", profile=family, notes="Calls on Sundays", source="manual", uid="",
                      numbers=[ContactNumber(number="+390611112222")])
        s.add_all([family, sales, mum])
        s.flush()
        return {"family": family.id, "sales": sales.id, "mum": mum.id}


def with_web(config: Config, **changes: Any) -> Config:
    return replace(config, web=replace(config.web, **changes))
