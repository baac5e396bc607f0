"""The browser call's websocket, driven by a Python client against the real app on uvicorn: a scenario's
caller audio goes in in real time, the bot's voice comes back on the call's clock; without the owner's
session, or from another site, there is no call."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from tests.web.call_server import LEAD_S, CallServer, make_config, shifted_scenario

FRAME = 320
SPEECH_RMS = 300.0  # int16; espeak's speech is far louder, the silence between words far quieter


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CallServer, np.ndarray]]:
    from tests.conftest import SHARED

    scenarios = SHARED / "scenarios"
    if not (scenarios / "quick_question.wav").is_file():
        pytest.skip(f"the shared scenarios are not at {scenarios}")
    tmp = tmp_path_factory.mktemp("ws-call")
    _, tsv, audio = shifted_scenario(scenarios, "quick_question", tmp)
    srv = CallServer(make_config(tmp, tsv)).start()
    yield srv, audio
    srv.stop()


def ws_url(srv: CallServer) -> str:
    return f"ws://127.0.0.1:{srv.port}/ws/call"


async def open_call(srv: CallServer, **headers: str) -> ClientConnection:
    h = {"Cookie": srv.session_cookie(), "Origin": srv.origin} | headers
    return await connect(ws_url(srv), additional_headers={k: v for k, v in h.items() if v})


async def ready(ws: ClientConnection) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "start", "rate": 16000}))
    while True:
        message = await asyncio.wait_for(ws.recv(), 60)
        if isinstance(message, str):
            event = json.loads(message)
            assert isinstance(event, dict)
            return event


async def talk(ws: ClientConnection, audio: np.ndarray) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Send `audio` in real time, in uneven pieces (the server re-chunks them), while keeping every
    bot frame and control message that comes back; then hang up and read to the close."""
    frames: list[np.ndarray] = []
    controls: list[dict[str, Any]] = []

    async def receive() -> None:
        async for message in ws:
            if isinstance(message, bytes):
                assert len(message) == FRAME * 2
                frames.append(np.frombuffer(message, "<i2"))
            else:
                controls.append(json.loads(message))

    reader = asyncio.create_task(receive())
    pieces = [240, 400, 320, 160, 480]  # samples: 15, 25, 20, 10, 30 ms
    sent, i, start = 0, 0, time.monotonic()
    try:
        while sent < len(audio) and not reader.done():
            n = pieces[i % len(pieces)]
            await ws.send(audio[sent:sent + n].astype("<i2").tobytes())
            sent, i = sent + n, i + 1
            await asyncio.sleep(max(0.0, start + sent / 16000 - time.monotonic()))
        if not reader.done():
            await ws.send(json.dumps({"type": "hangup"}))
    except ConnectionClosedOK:
        pass  # the bot hung up first; its close can land between the reader's last message and a send
    await asyncio.wait_for(reader, 60)
    return frames, controls


def voiced(frames: list[np.ndarray]) -> np.ndarray:
    """The call times (s) of the bot frames that hold speech."""
    rms = np.array([np.sqrt(np.mean(f.astype(np.float64) ** 2)) for f in frames])
    return np.flatnonzero(rms > SPEECH_RMS) * FRAME / 16000


def test_a_call_over_the_websocket_answers_the_caller(server: tuple[CallServer, np.ndarray]) -> None:
    srv, audio = server
    before = len(srv.summaries())

    async def call() -> tuple[dict[str, Any], list[np.ndarray], list[dict[str, Any]], int, str]:
        ws = await open_call(srv)
        hello = await ready(ws)
        frames, controls = await talk(ws, audio)
        return hello, frames, controls, ws.close_code or 0, ws.close_reason or ""

    hello, frames, controls, code, _ = asyncio.run(call())
    assert hello["type"] == "ready" and hello["call_id"].startswith("browser-")
    assert hello["rate"] == 16000 and hello["frame"] == FRAME
    assert code == 1000
    ended = [c for c in controls if c["type"] == "ended"]
    assert ended and ended[0]["call_id"] == hello["call_id"] and ended[0]["reason"] == "caller hung up"

    phrase_start, phrase_end = LEAD_S + 0.6, LEAD_S + 2.139  # "Hi, is Marco there?"
    speech = voiced(frames)
    greeting = speech[speech < phrase_start]
    assert len(greeting) and greeting[0] < 0.5, "the greeting did not come back at the start of the call"
    assert not np.any((speech > phrase_start + 0.2) & (speech < phrase_end)), \
        "the bot spoke over the caller"
    reply = speech[speech > phrase_end]
    assert len(reply), "no reply came back"
    # after the question, in the caller's silence (a generous bound: the engines share a busy machine)
    assert reply[0] < phrase_end + 5.0, f"the reply started {reply[0] - phrase_end:.2f} s after the question"

    assert len(srv.summaries()) == before + 1
    summary = srv.summary(hello["call_id"])
    assert summary["caller_number"] == "browser"
    assert [f["text"] for f in summary["caller_fragments"]] == ["Hi, is Marco there?"]
    starts = [b["start_s"] for b in summary["bot_turns"] if b["start_s"] is not None]
    assert any(phrase_end < s < phrase_end + 5.0 for s in starts)
    assert abs(starts[-1] - reply[0]) < 0.2  # the stored call and the audio that came back agree


def test_no_call_without_the_owners_session(server: tuple[CallServer, np.ndarray]) -> None:
    srv, _ = server
    before = len(srv.summaries())

    async def refused(**headers: str) -> int:
        with pytest.raises(InvalidStatus) as info:
            await open_call(srv, **headers)
        return info.value.response.status_code

    assert asyncio.run(refused(Cookie="")) == 403
    assert asyncio.run(refused(Cookie="standin_session=1.2.3.4")) == 403
    assert asyncio.run(refused(Origin="http://evil.example")) == 403
    assert asyncio.run(refused(Origin="")) == 403
    assert len(srv.summaries()) == before


@pytest.mark.parametrize(("message", "code", "reason"), [
    (b"\x01\x02\x03", 1003, "whole int16 samples"),
    (b"\x00" * 20000, 1009, "at most"),
    ('{"type": "shout"}', 1003, "unknown message type"),
    ("not json", 1003, "JSON"),
    ('{"type": "dtmf", "digit": "x"}', 1003, "dtmf digit"),
    ('{"type": "start", "rate": 16000}', 1003, "already started"),
])
def test_a_broken_message_ends_the_call_with_a_clear_close(server: tuple[CallServer, np.ndarray],
                                                          message: bytes | str, code: int,
                                                          reason: str) -> None:
    srv, _ = server

    async def call() -> ConnectionClosed:
        ws = await open_call(srv)
        assert (await ready(ws))["type"] == "ready"
        await ws.send(np.zeros(FRAME * 10, "<i2").tobytes())
        await ws.send(message)
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await asyncio.wait_for(ws.recv(), 60)
        return info.value

    closed = asyncio.run(call())
    assert closed.rcvd is not None
    assert closed.rcvd.code == code and reason in closed.rcvd.reason


def test_the_first_message_must_be_start(server: tuple[CallServer, np.ndarray]) -> None:
    srv, _ = server
    before = len(srv.summaries())

    async def call() -> ConnectionClosed:
        ws = await open_call(srv)
        await ws.send(np.zeros(FRAME, "<i2").tobytes())
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 60)
        return info.value

    closed = asyncio.run(call())
    assert closed.rcvd is not None and closed.rcvd.code == 1003 and "start" in closed.rcvd.reason
    assert len(srv.summaries()) == before  # nothing was answered


def test_the_bot_hangs_up_after_its_goodbye(server: tuple[CallServer, np.ndarray]) -> None:
    """A caller who says nothing: the bot screens the call as silent and says goodbye, the goodbye comes
    back whole, then the hangup notice, then a normal close."""
    srv, _ = server
    silence_s = srv.config.call.silence_timeout_s

    async def call() -> tuple[str, list[np.ndarray], list[dict[str, Any]], int]:
        ws = await open_call(srv)
        call_id = (await ready(ws))["call_id"]
        frames, controls = await talk(ws, np.zeros(int((silence_s + 12) * 16000), np.int16))
        return call_id, frames, controls, ws.close_code or 0

    call_id, frames, controls, code = asyncio.run(call())
    kinds = [c["type"] for c in controls]
    assert kinds[:2] == ["hangup", "ended"], kinds
    assert controls[0]["reason"] == "screened: silent" and code == 1000
    summary = srv.summary(call_id)
    assert summary["ended"] == "screened: silent"
    goodbye = summary["bot_turns"][-1]
    assert goodbye["kind"] == "goodbye" and goodbye["text_heard"] == goodbye["text_intended"]
    assert len(frames) * FRAME / 16000 >= goodbye["end_s"]  # every frame of it came back before the close
    speech = voiced(frames)
    assert np.any((speech > goodbye["start_s"]) & (speech < goodbye["start_s"] + 0.5))
    assert speech[-1] > goodbye["end_s"] - 0.5


def test_one_test_call_at_a_time(server: tuple[CallServer, np.ndarray]) -> None:
    srv, _ = server

    async def calls() -> tuple[int, str]:
        first = await open_call(srv)
        assert (await ready(first))["type"] == "ready"
        second = await open_call(srv)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(second.recv(), 60)
        await first.send(json.dumps({"type": "hangup"}))
        async for _ in first:
            pass
        assert info.value.rcvd is not None
        return info.value.rcvd.code, info.value.rcvd.reason

    assert asyncio.run(calls()) == (1013, "another test call is running")


def test_without_standin_serve_there_is_no_test_call(tmp_path: Path) -> None:
    """A dashboard run on its own: the page says so and the socket refuses, politely."""
    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from server.store.db import open_database
    from server.web.app import create_app
    from server.web.auth import set_password
    from server.web.context import WebContext
    from tests.web.call_server import PASSWORD

    config = make_config(tmp_path, tmp_path / "unused.tsv")
    set_password(config.web.password_file, PASSWORD)
    db = open_database(config.storage.database)
    try:
        with TestClient(create_app(WebContext(config, db)), base_url="http://testserver") as client:
            assert client.get("/call", follow_redirects=False).status_code == 303  # to the login page
            client.post("/login", data={"password": PASSWORD})
            page = client.get("/call")
            assert page.status_code == 200 and 'data-available="false"' in page.text
            assert "standin serve" in page.text
            with client.websocket_connect("/ws/call", headers={"Origin": "http://testserver"}) as ws, \
                    pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 1013
    finally:
        db.close()
