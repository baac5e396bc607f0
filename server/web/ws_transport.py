"""A browser's call audio over a websocket: `WebSocketCall`, a server.runtime.Transport.

The protocol (call.js is the client):

- The client's first message is text, `{"type": "start", "rate": 16000}`; then the server answers the
  call and says `{"type": "ready", "call_id": ..., "rate": 16000, "frame": 320}`.
- Audio, both ways: binary messages of little-endian int16 mono PCM at 16 kHz. The server sends one
  20 ms frame (640 bytes) per message, paced in real time; the client may send any whole number of
  samples up to `MAX_AUDIO_BYTES` per message (they are re-chunked into 20 ms frames). Audio sent
  before "ready" is dropped.
- Control, client to server: `{"type": "hangup"}`, `{"type": "dtmf", "digit": "5"}`.
  Server to client: `{"type": "hangup", "reason": ...}` when the bot ends the call (after its goodbye
  went out), `{"type": "ended", ...}` once the call is stored, `{"type": "error", "message": ...}`.
- Close codes: 1000 the call is over; 1003 a message that breaks the protocol (the reason says which);
  1008 not signed in (see server/web/auth.py); 1009 a message too big; 1011 the server failed;
  1013 no test call possible now.

Threads: the loop receives and sends; `attach` starts a pacing thread that calls the runtime's `pull`
every 20 ms on a monotonic schedule (no drift; late ticks catch up) from the first caller frame on, so
the caller's frames and the bot's frames start on one clock, and hands each frame to the loop to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from sip.media import FRAME, FRAME_BYTES, RATE, InboundFrames, Outbound

log = logging.getLogger(__name__)

FRAME_S = FRAME / RATE
MAX_AUDIO_BYTES = 16000  # 0.5 s in one message
MAX_TEXT_CHARS = 1024
DTMF_DIGITS = frozenset("0123456789*#ABCD")

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_ERROR = 1011
CLOSE_TRY_LATER = 1013


class ProtocolError(Exception):
    """The client broke the protocol; the socket closes with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WebSocketCall:
    """One browser test call; satisfies server.runtime.Transport.

    Run `handshake()`, then `start()` (the receiving and sending tasks), hand the object to the call
    runtime, and `finish()` it when the call is over: it sends "ended" and closes the socket.
    `frames()` ends when the browser hangs up, closes the socket, breaks the protocol or sends no audio
    for `idle_timeout_s`.
    """

    def __init__(self, websocket: WebSocket, *, caller_number: str = "browser", buffer_frames: int = 50,
                 outbound_frames: int = 50, idle_timeout_s: float = 10.0,
                 first_audio_timeout_s: float = 30.0, handshake_timeout_s: float = 10.0) -> None:
        self.call_id = f"browser-{secrets.token_hex(4)}"
        self.caller_number = caller_number
        self.source = "browser"  # how the stored call is labelled
        client = websocket.client
        self.remote_address = f"{client.host}:{client.port}" if client else ""
        self.on_dtmf: Callable[[str], object] | None = None
        self.end_reason: str | None = None
        self.close_code = CLOSE_NORMAL
        self.close_reason = ""
        self.frames_out = 0
        self.frames_out_dropped = 0  # the client read too slowly: outbound frames dropped, oldest first
        self.frames_skipped = 0  # caller audio sent before "ready"
        self.idle_timeout_s = idle_timeout_s
        self.first_audio_timeout_s = first_audio_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self._ws = websocket
        self._buffer_frames = buffer_frames
        self._outbound_frames = outbound_frames
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbound: InboundFrames | None = None
        self._partial = bytearray()  # caller bytes short of a whole frame
        self._out: deque[bytes | str | None] = deque()  # None: the end, nothing is sent after it
        self._out_frames = 0  # bytes items in _out
        self._out_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._outbound = Outbound(self.call_id)
        self._attached = False
        self._audio_started = threading.Event()  # the first caller frame after "ready": the clock starts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reading = False

    # ------------------------------------------------------------------ lifecycle (the loop's thread)

    async def handshake(self) -> None:
        """Wait for the client's "start"; raises ProtocolError for anything else."""
        try:
            message = await asyncio.wait_for(self._ws.receive(), self.handshake_timeout_s)
        except TimeoutError:
            raise ProtocolError(CLOSE_PROTOCOL, "no start message") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("text") is None:
            raise ProtocolError(CLOSE_PROTOCOL, "the first message must be the start message (text)")
        start = _control(message["text"])
        if start.get("type") != "start":
            raise ProtocolError(CLOSE_PROTOCOL, "the first message must be {\"type\": \"start\", ...}")
        if start.get("rate", RATE) != RATE:
            raise ProtocolError(CLOSE_PROTOCOL, f"unsupported rate {start.get('rate')!r}: send {RATE} Hz")

    def start(self) -> None:
        self._loop = self._outbound.loop = asyncio.get_running_loop()
        self._inbound = InboundFrames(self._loop, self._buffer_frames)
        self._tasks = [asyncio.create_task(self._receive(), name=f"{self.call_id} receive"),
                       asyncio.create_task(self._send(), name=f"{self.call_id} send")]

    async def finish(self, message: dict[str, Any] | None = None) -> None:
        """The call is over: stop pulling, send what is queued (then `message`), close the socket."""
        self._end("call finished")
        await self._stop_pulling()
        if message is not None:
            self._queue(json.dumps(message))
        self._queue(None)
        sender = self._tasks[1] if len(self._tasks) > 1 else None
        if sender is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(sender), 5.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.close(self.close_code, self.close_reason or self.end_reason or "")

    async def close(self, code: int, reason: str) -> None:
        if WebSocketState.DISCONNECTED not in (self._ws.application_state, self._ws.client_state):
            with contextlib.suppress(Exception):
                await self._ws.close(code, _reason(reason))

    def abort(self) -> None:
        """Whatever happened: no more pulls, no more frames (safe to call more than once)."""
        self._end("call aborted")
        for task in self._tasks:
            task.cancel()

    def fail(self, code: int, reason: str) -> None:
        """End the call with this close code (the first one set wins)."""
        if self.close_code == CLOSE_NORMAL and code != CLOSE_NORMAL:
            self.close_code, self.close_reason = code, reason
        self._end(reason)

    # ------------------------------------------------------------------ Transport

    async def frames(self) -> AsyncIterator[np.ndarray]:
        if self._reading or self._inbound is None:
            raise RuntimeError(f"{self.call_id}: frames() has one reader, after start()")
        self._reading = True
        while (pcm := await self._inbound.get()) is not None:
            yield np.frombuffer(pcm, dtype="<i2").astype(np.int16)

    def attach(self, pull: Callable[[], np.ndarray]) -> None:
        self._outbound.pull = pull
        if self._attached:
            return
        self._attached = True
        self._queue(json.dumps({"type": "ready", "call_id": self.call_id, "rate": RATE, "frame": FRAME}))
        self._thread = threading.Thread(target=self._pace, name=f"{self.call_id} pull", daemon=True)
        self._thread.start()

    async def hang_up(self, reason: str) -> None:
        """The bot ends the call: its goodbye has been pulled; it goes out, then the hangup notice."""
        if self.end_reason is not None:
            return
        await self._stop_pulling()
        self._queue(json.dumps({"type": "hangup", "reason": reason}))
        self._end(reason)

    # ------------------------------------------------------------------ state

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    @property
    def pull_errors(self) -> int:
        return self._outbound.errors

    @property
    def frames_in(self) -> int:
        return self._inbound.pushed if self._inbound is not None else 0

    @property
    def frames_dropped(self) -> int:
        return self._inbound.dropped if self._inbound is not None else 0

    def _end(self, reason: str) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        if self._inbound is not None:
            self._inbound.close()
        self._stop.set()
        self._audio_started.set()  # wakes the pacing thread if it still waits for the first frame

    async def _stop_pulling(self) -> None:
        self._stop.set()
        self._audio_started.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, 2.0)

    # ------------------------------------------------------------------ receiving

    async def _receive(self) -> None:
        try:
            while self.end_reason is None:
                timeout = self.idle_timeout_s if self.frames_in else self.first_audio_timeout_s
                try:
                    message = await asyncio.wait_for(self._ws.receive(), timeout)
                except TimeoutError:
                    self._end(f"no audio from the browser for {timeout:g} s")
                    return
                if message["type"] == "websocket.disconnect":
                    self._end("caller hung up")
                    return
                if (data := message.get("bytes")) is not None:
                    self._audio(data)
                elif (text := message.get("text")) is not None:
                    self._command(_control(text))
        except ProtocolError as exc:
            log.warning("%s: closing, the browser broke the protocol: %s", self.call_id, exc.reason)
            self.fail(exc.code, exc.reason)
        except WebSocketDisconnect:
            self._end("caller hung up")
        except Exception:
            log.exception("%s: receiving failed", self.call_id)
            self.fail(CLOSE_ERROR, "server error")

    def _audio(self, data: bytes) -> None:
        if len(data) > MAX_AUDIO_BYTES:
            raise ProtocolError(CLOSE_TOO_BIG, f"audio messages hold at most {MAX_AUDIO_BYTES} bytes")
        if len(data) % 2:
            raise ProtocolError(CLOSE_PROTOCOL, f"audio must be whole int16 samples; got {len(data)} bytes")
        assert self._inbound is not None
        if not self._attached:
            self.frames_skipped += len(data) // FRAME_BYTES
            return
        buf = self._partial
        buf += data
        whole = len(buf) // FRAME_BYTES * FRAME_BYTES
        for i in range(0, whole, FRAME_BYTES):
            self._inbound.push(bytes(buf[i:i + FRAME_BYTES]))
        del buf[:whole]
        if whole:
            self._audio_started.set()

    def _command(self, command: dict[str, Any]) -> None:
        kind = command.get("type")
        if kind == "hangup":
            self._end("caller hung up")
        elif kind == "dtmf":
            digit = command.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise ProtocolError(CLOSE_PROTOCOL, "dtmf digit must be one of 0-9 * # A-D")
            if self.on_dtmf is not None:
                self.on_dtmf(digit)
        elif kind == "start":
            raise ProtocolError(CLOSE_PROTOCOL, "the call has already started")
        else:
            raise ProtocolError(CLOSE_PROTOCOL, f"unknown message type {str(kind)[:40]!r}")

    # ------------------------------------------------------------------ sending

    def _queue(self, item: bytes | str | None) -> None:
        """On the loop: queue a frame or a text message (None: nothing after this)."""
        if isinstance(item, bytes):
            if self._out_frames >= self._outbound_frames:  # the client reads too slowly
                for i, x in enumerate(self._out):
                    if isinstance(x, bytes):
                        del self._out[i]
                        self._out_frames -= 1
                        self.frames_out_dropped += 1
                        break
            self._out_frames += 1
        self._out.append(item)
        self._out_ready.set()

    async def _send(self) -> None:
        try:
            while True:
                await self._out_ready.wait()
                self._out_ready.clear()
                while self._out:
                    item = self._out.popleft()
                    if item is None:
                        return
                    if isinstance(item, bytes):
                        self._out_frames -= 1
                        await self._ws.send_bytes(item)
                        self.frames_out += 1
                    else:
                        await self._ws.send_text(item)
        except Exception as exc:  # the socket is gone
            log.debug("%s: sending stopped: %r", self.call_id, exc)
            self._end("caller hung up")

    # ------------------------------------------------------------------ the pacing thread

    def _pace(self) -> None:
        self._audio_started.wait()
        loop = self._loop
        assert loop is not None
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            frame = self._outbound.frame().astype("<i2", copy=False)
            try:
                loop.call_soon_threadsafe(self._queue, frame.tobytes())
            except RuntimeError:  # the loop is closed
                return
            n += 1
            delay = start + n * FRAME_S - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)


def _control(text: str) -> dict[str, Any]:
    if len(text) > MAX_TEXT_CHARS:
        raise ProtocolError(CLOSE_TOO_BIG, f"control messages hold at most {MAX_TEXT_CHARS} characters")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ProtocolError(CLOSE_PROTOCOL, "control messages must be JSON objects") from None
    if not isinstance(value, dict):
        raise ProtocolError(CLOSE_PROTOCOL, "control messages must be JSON objects")
    return value


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = text.encode()[:123]
    return data.decode(errors="ignore")
