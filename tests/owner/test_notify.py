"""Notifications: real apprise against a local HTTP server, retries on an injected clock, crash safety
with a real process killed by SIGKILL, and secrets kept out of labels, errors and logs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from server.config import NotifyConfig
from server.notify import (
    ENV,
    NotifyError,
    Outbox,
    backoff_s,
    channel,
    configured_channels,
    mask_url,
    send_test,
)
from server.store.db import Database, open_database
from server.store.schema import Call, Delivery, Message, utcnow

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("s3cretpass", "t0kenvalue", "qu3rysecret")
WORDS = "the boiler in via Roma is leaking"


class Hook:
    """A webhook on 127.0.0.1 answering with the scripted status codes (then 200), counting requests."""

    def __init__(self, codes: list[int], hold_first: bool = False) -> None:
        self.codes = list(codes)
        self.requests: list[dict[str, object]] = []
        self.received = threading.Event()
        self.release = threading.Event()
        self.hold_first = hold_first
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.requests.append({"path": self.path, "body": body})
                hook.received.set()
                if hook.hold_first and len(hook.requests) == 1:
                    hook.release.wait(30)
                code = hook.codes.pop(0) if hook.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://user:s3cretpass@127.0.0.1:{self.server.server_port}/hook/t0kenvalue?-k=qu3rysecret"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:  # SQLite, and Postgres (tests/owner/conftest.py)
    database = open_database(database_url)
    yield database
    database.close()


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    made: list[Hook] = []
    yield made
    for hook in made:
        hook.close()


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def take_message(db: Database, outbox: Outbox, urgency: str = "normal") -> int:
    with db.session() as session:
        call = Call(uid=f"call-{time.monotonic_ns()}", caller_number="+393331234567")
        message = Message(call=call, caller_name="Anna Rossi", callback_number="+393331234567", text=WORDS,
                          urgency=urgency)
        session.add(message)
        outbox.enqueue(session, message)
        return message.id


def deliveries(db: Database) -> list[Delivery]:
    with db.session() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_a_channel_that_fails_twice_then_recovers_delivers_exactly_once(
        db: Database, hooks: list[Hook], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook = Hook([500, 500])
    hooks.append(hook)
    clock = Clock()
    outbox = Outbox(db, NotifyConfig(first_retry_s=30, max_retry_s=3600), channels=[channel(hook.url)],
                    clock=clock)
    take_message(db, outbox, urgency="high")

    async def attempts() -> None:
        assert await outbox.run_due() == 30  # the first attempt failed; the next is due in 30 s
        [delivery] = deliveries(db)
        assert (delivery.state, delivery.attempts) == ("pending", 1)
        assert delivery.due_at == clock.now + timedelta(seconds=30)
        assert "500" in delivery.last_error
        clock.advance(29)
        await outbox.run_due()
        assert len(hook.requests) == 1  # not due yet
        clock.advance(1)
        assert await outbox.run_due() == 60  # failed again: the wait doubles
        assert len(hook.requests) == 2
        clock.advance(60)
        await outbox.run_due()
        clock.advance(86400)
        assert await outbox.run_due() == outbox.poll_s  # nothing left to do
    asyncio.run(attempts())

    assert len(hook.requests) == 3 and hook.codes == []  # exactly one 200
    [delivery] = deliveries(db)
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 3, "")
    assert delivery.sent_at == clock.now - timedelta(seconds=86400)
    body = hook.requests[-1]["body"]
    assert isinstance(body, dict)
    assert body["title"] == "URGENT: Call from Anna Rossi" and body["type"] == "warning"
    assert WORDS in body["message"] and "Call back: +393331234567" in body["message"]
    for secret in SECRETS:
        assert secret not in delivery.label and secret not in caplog.text
    assert WORDS not in caplog.text and "3331234567" not in caplog.text
    assert "failed (attempt 1), retrying in 30 s" in caplog.text


def test_backoff_doubles_up_to_its_cap_and_gives_up_after_max_attempts(
        db: Database, hooks: list[Hook]) -> None:
    config = NotifyConfig(first_retry_s=10, max_retry_s=50, max_attempts=3)
    assert [backoff_s(config, n) for n in range(1, 6)] == [10, 20, 40, 50, 50]
    hook = Hook([500] * 10)
    hooks.append(hook)
    clock = Clock()
    outbox = Outbox(db, config, channels=[channel(hook.url)], clock=clock)
    take_message(db, outbox)

    async def attempts() -> None:
        for _ in range(5):
            await outbox.run_due()
            clock.advance(3600)
    asyncio.run(attempts())
    [delivery] = deliveries(db)
    assert (delivery.state, delivery.attempts, len(hook.requests)) == ("failed", 3, 3)


def test_the_worker_sends_when_woken(db: Database, hooks: list[Hook]) -> None:
    hook = Hook([])
    hooks.append(hook)
    outbox = Outbox(db, NotifyConfig(), channels=[channel(hook.url)], poll_s=3600)

    async def run() -> None:
        await outbox.start()
        await asyncio.to_thread(take_message, db, outbox)
        outbox.wake()
        for _ in range(400):
            if deliveries(db)[0].state == "sent":
                break
            await asyncio.sleep(0.05)
        await outbox.stop()
    asyncio.run(run())
    assert deliveries(db)[0].state == "sent" and len(hook.requests) == 1


def test_enqueue_makes_one_delivery_per_channel_once(db: Database, hooks: list[Hook]) -> None:
    first, second = Hook([]), Hook([])
    hooks += [first, second]
    outbox = Outbox(db, NotifyConfig(), channels=[channel(first.url), channel(second.url)])
    message_id = take_message(db, outbox)
    with db.session() as session:
        message = session.get(Message, message_id)
        assert outbox.enqueue(session, message) == []  # type: ignore[arg-type]
    assert {d.channel for d in deliveries(db)} == {channel(first.url).id, channel(second.url).id}

    only_first = Outbox(db, NotifyConfig(), channels=[channel(first.url)])  # the second URL was removed
    asyncio.run(only_first.run_due())
    states = {d.channel: (d.state, d.last_error) for d in deliveries(db)}
    assert states[channel(first.url).id] == ("sent", "")
    assert states[channel(second.url).id] == ("failed", "its channel is no longer configured")
    assert len(second.requests) == 0


CHILD = """
import asyncio, sys, time
from server.config import NotifyConfig
from server.notify import Outbox, channel
from server.store.db import open_database
from server.store.schema import Call, Message

db_url, url, mode = sys.argv[1:]
db = open_database(db_url)
outbox = Outbox(db, NotifyConfig(), channels=[channel(url)], timeout_s=60)
with db.session() as session:
    message = Message(call=Call(uid="killed"), caller_name="Anna", text="call me back")
    session.add(message)
    outbox.enqueue(session, message)
print("committed", flush=True)
if mode == "send":
    asyncio.run(outbox.run_due())
time.sleep(120)
"""


@pytest.mark.parametrize("mode", ["committed", "send"])
def test_a_message_survives_a_process_killed_after_its_commit(
        mode: str, tmp_path: Path, db: Database, hooks: list[Hook]) -> None:
    """Killed before sending: sent at the next start. Killed mid-send: sent again once the claim's lease
    runs out (the channel saw the first request, so it may get the message twice: at least once)."""
    hook = Hook([], hold_first=mode == "send")
    hooks.append(hook)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db.engine.url), hook.url, mode], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "committed"
        if mode == "send":
            assert hook.received.wait(60), "the child never sent"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    [delivery] = deliveries(db)
    assert delivery.state == ("sending" if mode == "send" else "pending")

    clock = Clock()
    clock.now = max(clock.now, delivery.due_at + timedelta(seconds=1))  # past the dead claim's lease
    restarted = Outbox(db, NotifyConfig(), channels=[channel(hook.url)], clock=clock)
    asyncio.run(restarted.run_due())
    [delivery] = deliveries(db)
    assert delivery.state == "sent"
    assert len(hook.requests) == (2 if mode == "send" else 1)
    assert delivery.attempts == len(hook.requests)


# --------------------------------------------------------------------------- channels and secrets


def test_channels_come_from_the_config_the_environment_and_a_file(tmp_path: Path, hooks: list[Hook]) -> None:
    urls_file = tmp_path / "notify-urls"
    urls_file.write_text("# the owner's phone\njson://127.0.0.1:9/a\n\nntfy://my-secret-topic\n")
    config = NotifyConfig(urls=("json://127.0.0.1:9/a",), urls_file=str(urls_file))
    found = configured_channels(config, {ENV: "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/1,\n"
                                              "form://127.0.0.1:9/b"})
    assert [c.url for c in found] == ["json://127.0.0.1:9/a", "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/1",
                                      "form://127.0.0.1:9/b", "ntfy://my-secret-topic"]
    assert len({c.id for c in found}) == 4
    assert "my-secret-topic" not in repr(found) and "AAHdq" not in repr(found)  # the URL is kept out of repr

    urls_file.write_text("json://127.0.0.1:9/a\nnosuchservice://user:hunter22@x/\n")
    shown = r"nosuchservice://\*\*\*\*@\*\*\*\*/…"
    with pytest.raises(NotifyError, match=f"notify-urls line 2: {shown}") as error:
        configured_channels(config, {})
    assert "hunter22" not in str(error.value)
    with pytest.raises(NotifyError, match="cannot read"):
        configured_channels(NotifyConfig(urls_file=str(tmp_path / "missing")), {})


@pytest.mark.parametrize(("url", "shown"), [
    ("json://user:s3cretpass@127.0.0.1:8080/hook/t0kenvalue?-k=qu3rysecret", "json://****@127.0.0.1:8080/…"),
    ("tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12315544/", "tgram://****/…"),
    ("ntfy://ntfy.sh/my-secret-topic", "ntfy://ntfy.sh/…"),
    ("ntfys://my-secret-topic", "ntfys://****"),
    ("mailtos://me:app-password@gmail.com", "mailtos://****@gmail.com"),
    ("not a url", "****"),
])
def test_labels_mask_secrets(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert channel(url).label == f"{shown} #{channel(url).id[:6]}"


def test_send_test_reports_each_url(hooks: list[Hook]) -> None:
    good, bad = Hook([]), Hook([500])
    hooks += [good, bad]
    checks = send_test([good.url, channel(bad.url.replace("/hook/", "/other/"))], timeout_s=30)
    assert [c.ok for c in checks] == [True, False]
    assert "500" in checks[1].error
    for check in checks:
        assert all(secret not in check.label + check.error for secret in SECRETS)
    assert good.requests[0]["body"]["title"] == "standin test"  # type: ignore[index]


def test_a_screened_calls_message_is_kept_but_not_sent_unless_asked(db: Database, hooks: list[Hook]) -> None:
    hook = Hook([])
    hooks.append(hook)
    for screened, expected in ((False, 0), (True, 1)):
        outbox = Outbox(db, NotifyConfig(screened=screened), channels=[channel(hook.url)])
        with db.session() as session:
            call = Call(uid=f"call-{time.monotonic_ns()}", ended_reason="screened: recording")
            message = Message(call=call, text="Congratulations, you have been selected.")
            session.add(message)
            assert len(outbox.enqueue(session, message)) == expected
    assert len(deliveries(db)) == 1  # the message of the first is kept, with no delivery


def test_a_call_the_owner_took_is_kept_but_not_sent_unless_asked(db: Database, hooks: list[Hook]) -> None:
    hook = Hook([])
    hooks.append(hook)
    rings = ({"trigger": "keypad", "outcome": "accepted"}, {"trigger": "keypad", "outcome": "no answer"},
             None)
    for taken, ring, expected in ((False, rings[0], 0), (True, rings[0], 1), (False, rings[1], 1),
                                  (False, rings[2], 1)):
        outbox = Outbox(db, NotifyConfig(taken=taken), channels=[channel(hook.url)])
        with db.session() as session:
            call = Call(uid=f"call-{time.monotonic_ns()}", ended_reason="caller hung up", ring_through=ring)
            message = Message(call=call, text="Put through; we spoke about the boiler.")
            session.add(message)
            assert len(outbox.enqueue(session, message)) == expected
    assert len(deliveries(db)) == 3
