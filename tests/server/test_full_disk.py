"""A full disk under `[storage] calls_dir` never costs a call its message, and never leaves a call answered
and dropped without a trace.

The calls folder is a real 4 MiB tmpfs (mounted for the test: root only) that the test fills while a
call runs; the database is on the ordinary disk. The call in progress goes on without its files and
leaves its message; while the folder is full, a new call is turned away before it is answered (what
the SIP endpoint asks `DiskGuard.admit` for), listed, and the owner is told through the outbox; a call
answered anyway (the dashboard's test call asks no one) takes its message in memory. The call's files
on their own are tested on /dev/full, which answers every write with ENOSPC and needs no root.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from server.audio import read_audio
from server.callfiles import CallFiles
from server.core.conversation import Conversation
from server.engines import build_engines
from server.notify import Outbox, channel
from server.owner import Owner
from server.serve import answer
from server.store.db import Database, open_database
from server.store.disk import DiskGuard
from server.store.schema import Call, Message
from tests.server.disk_kit import fill, small_disk
from tests.server.owner_kit import Inbox, WavTransport, scenario_config

FILES_LOG = "server.callfiles"


@pytest.fixture
def disk_dir(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk") as where:
        yield where


class FillingTransport(WavTransport):
    """The caller of `WavTransport`, and the disk filling up `fill_at_s` into the call."""

    def __init__(self, audio: np.ndarray, disk: Path, fill_at_s: float, **kwargs: Any) -> None:
        super().__init__(audio, **kwargs)
        self.disk, self.fill_at = disk, round(fill_at_s / 0.02)

    async def frames(self) -> AsyncIterator[np.ndarray]:
        k = 0
        async for frame in super().frames():
            if k == self.fill_at:
                fill(self.disk)
            k += 1
            yield frame


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'standin.db'}")
    yield database
    database.close()


def file_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == FILES_LOG and r.levelno == logging.WARNING]


SAID = ["I need three things.", "The quote.", "The invoice.",
        "And the delivery date. Can you pass that along?"]


def test_a_call_goes_on_when_the_disk_fills_and_new_calls_are_refused_with_the_owner_told(
        shared: Path, tmp_path: Path, disk_dir: Path, db: Database,
        caplog: pytest.LogCaptureFixture) -> None:
    calls_dir = disk_dir / "calls"
    config = scenario_config(shared, "three_things", tmp_path)
    inbox = Inbox()
    outbox = Outbox(db, config.notify, channels=[channel(inbox.url)], timeout_s=10)
    owner = Owner(config, db, build_engines(config), calls_dir=calls_dir, outbox=outbox)
    disk = DiskGuard(calls_dir, min_free_bytes=256 * 1024, on_refuse=owner.call_refused)
    caller = read_audio(shared / "scenarios" / "three_things.wav")
    transport = FillingTransport(caller, disk_dir, fill_at_s=1.0)

    async def scenario() -> tuple[dict[str, Any], list[str | None]]:
        await outbox.start()
        owner.start()
        try:
            assert await asyncio.to_thread(disk.check) is None and disk.admit() is None
            with caplog.at_level(logging.WARNING):
                summary = await answer(transport, owner.engines, config, calls_dir, owner=owner, disk=disk)
            await asyncio.to_thread(disk.check)
            refused = [disk.admit(), disk.admit()]  # the next two calls, as the SIP endpoint asks
            await asyncio.to_thread(owner.flush, 60)
            for _ in range(600):  # the call's message and the notice, each sent once
                if len(inbox.posts) >= 2:
                    break
                await asyncio.sleep(0.05)
            return summary, refused
        finally:
            await asyncio.to_thread(owner.stop)
            await outbox.stop()

    try:
        summary, refused = asyncio.run(scenario())
    finally:
        inbox.close()

    # the call in progress went on to its natural end, with every word the caller said
    assert summary["error"] is None and summary["ended"] == "caller hung up" and transport.hung_up is None
    assert summary["duration_s"] >= len(caller) / 16000
    assert [f["text"] for f in summary["caller_fragments"]] == SAID
    assert len(file_warnings(caplog)) == 1  # one warning, not one a write
    [folder] = list(calls_dir.iterdir())
    assert not (folder / "summary.json").exists()
    # new calls are turned away while the folder is full; they are listed, and the owner is told once
    assert refused == ["calls folder disk full"] * 2
    assert stored(db) == {
        "ended": (SAID, " ".join(SAID), "normal"),
        "refused": ([], "notice", "high"),
        "refused, no message": ([], None, None),
    }
    assert len(inbox.posts) == 2 and any("turned a call away" in post["message"] for post in inbox.posts)
    notice = next(post["message"] for post in inbox.posts if "turned a call away" in post["message"])
    assert str(calls_dir) in notice and "is full" in notice and "[storage] calls_dir" in notice


def stored(db: Database) -> dict[str, tuple[list[str], str | None, str | None]]:
    """Each stored call by its state: the caller's words, its message's text (a notice: "notice") and
    urgency."""
    found = {}
    with db.session() as s:
        for call in s.scalars(select(Call).order_by(Call.id)):
            message = call.message
            text = message.text if message is not None else None
            if text is not None and message is not None and message.source == "standin":
                text = "notice"
            key = call.state if call.state not in found else f"{call.state}, no message"
            found[key] = ([f.text for f in call.fragments], text,
                          message.urgency if message is not None else None)
        assert all(c.ended_reason == "turned away: calls folder disk full"
                   for c in s.scalars(select(Call).where(Call.state == "refused")))
    return found


def test_a_call_answered_on_a_full_disk_takes_its_message_in_memory(
        shared: Path, tmp_path: Path, disk_dir: Path, db: Database,
        caplog: pytest.LogCaptureFixture) -> None:
    calls_dir = disk_dir / "calls"
    calls_dir.mkdir()
    fill(disk_dir)
    config = scenario_config(shared, "quick_question", tmp_path)
    owner = Owner(config, db, build_engines(config), calls_dir=calls_dir)
    disk = DiskGuard(calls_dir, min_free_bytes=256 * 1024)
    transport = WavTransport(read_audio(shared / "scenarios" / "quick_question.wav"))

    async def scenario() -> dict[str, Any]:
        owner.start()
        try:
            with caplog.at_level(logging.WARNING):
                summary = await answer(transport, owner.engines, config, calls_dir, owner=owner, disk=disk)
            await asyncio.to_thread(owner.flush, 60)
            return summary
        finally:
            await asyncio.to_thread(owner.stop)

    summary = asyncio.run(scenario())
    assert summary["error"] is None and summary["bot_turns"][0]["kind"] == "greeting"
    assert len(file_warnings(caplog)) == 1
    assert disk.problem is not None and disk.admit() == "calls folder disk full"
    with db.session() as s:
        call = s.scalars(select(Call)).one()
        assert call.state == "ended" and [f.text for f in call.fragments] == ["Hi, is Marco there?"]
        assert s.scalars(select(Message)).one().text == "Hi, is Marco there?"


def test_the_calls_files_give_up_a_write_that_fails_and_report_it_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "call"
    folder.mkdir()
    for name in ("trace.jsonl", "call.wav"):
        (folder / name).symlink_to("/dev/full")  # every write: ENOSPC
    errors: list[OSError] = []
    with caplog.at_level(logging.WARNING):
        files = CallFiles(folder, keep_going=True, on_write_error=errors.append)
        for i in range(2000):  # more than the trace's buffer holds
            files.trace.latency("stt_ms", 150.0, i * 0.02)
        files.trace.close()
        summary = files.finish(Conversation(), {"error": None})
    assert [e.errno for e in errors] == [errno.ENOSPC] and len(file_warnings(caplog)) == 1
    assert summary["error"] is None and json.loads((folder / "summary.json").read_text())["error"] is None

    with pytest.raises(OSError) as raised:  # simulate's files: the failure is the answer
        CallFiles(folder)
    assert raised.value.errno == errno.ENOSPC



def test_the_guard_refuses_while_the_folder_is_full_or_read_only_or_a_write_failed(disk_dir: Path) -> None:
    calls_dir = disk_dir / "calls"
    refusals: list[Any] = []
    disk = DiskGuard(calls_dir, min_free_bytes=256 * 1024, on_refuse=refusals.append)
    assert disk.check() is None and disk.admit() is None

    filler = fill(disk_dir)
    assert disk.admit() is None  # not known until a check or a write says so
    assert disk.check() is not None and disk.admit() == disk.admit() == "calls folder disk full"
    assert [r.first for r in refusals] == [True, False]
    filler.unlink()
    assert disk.check() is None and disk.admit() is None

    # a write failed although statvfs shows room (quota, a file too large): refused until a write works
    disk.write_failed(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert disk.admit() == "calls folder disk full" and refusals[-1].first
    assert disk.check() is None and disk.admit() is None
    assert not list(calls_dir.iterdir())  # the probe cleans up after itself

    subprocess.run(["mount", "-o", "remount,ro", str(disk_dir)], check=True)
    problem = disk.check()
    assert problem is not None and problem.reason == "calls folder not writable"
    assert str(calls_dir) in problem.advice and "writable" in problem.advice
