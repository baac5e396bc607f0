"""One SIP call's audio as the call runtime sees it: `SipCall`, plus its pure parts.

Audio crosses three threads. pjmedia's clock thread hands each 20 ms caller frame to `SipCall.push`
(bytes into a bounded buffer: the oldest frame is dropped and counted when the reader lags) and asks
`SipCall.outbound` for the bot's next frame (which calls the runtime's `pull`). The asyncio loop reads
the caller's frames through `frames()`, normalising their level there, off the clock thread. The SIP
thread (see endpoint.py) ends the call; `hang_up` asks it to. Nothing here imports pjsua2.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

import numpy as np

log = logging.getLogger(__name__)

RATE = 16000  # the call rate: the bridge resamples every codec to it
FRAME = 320  # samples in 20 ms
FRAME_BYTES = FRAME * 2
SILENCE = np.zeros(FRAME, np.int16)
SILENCE_BYTES = SILENCE.tobytes()


class LevelNormalizer:
    """A slow automatic gain control for the caller's voice, one 20 ms int16 frame at a time.

    It tracks the level of frames louder than `gate_dbfs` (speech, not line noise): quickly up
    (`attack_s`) and slowly down (`release_s`), so the estimate follows the loud parts of speech. The
    gain moves toward `target_dbfs - level` by at most `rise_db_per_s` up or `fall_db_per_s` down, within
    [min_gain_db, max_gain_db]. Quiet frames leave level and gain alone, so pauses are not pumped up. The
    gain ramps across each frame (no zipper noise) and is cut at once where a frame would clip.
    """

    def __init__(self, *, target_dbfs: float = -26.0, max_gain_db: float = 20.0, min_gain_db: float = -10.0,
                 gate_dbfs: float = -50.0, attack_s: float = 0.05, release_s: float = 1.5,
                 rise_db_per_s: float = 6.0, fall_db_per_s: float = 12.0,
                 frame_s: float = FRAME / RATE) -> None:
        if not min_gain_db <= 0.0 <= max_gain_db:
            raise ValueError("the gain bounds must include 0 dB")
        self.target_dbfs = target_dbfs
        self.max_gain_db = max_gain_db
        self.min_gain_db = min_gain_db
        self.gate_dbfs = gate_dbfs
        self._attack = 1.0 - math.exp(-frame_s / attack_s)
        self._release = 1.0 - math.exp(-frame_s / release_s)
        self._rise = rise_db_per_s * frame_s
        self._fall = fall_db_per_s * frame_s
        self.level_dbfs: float | None = None  # the tracked speech level
        self.gain_db = 0.0

    def process(self, frame: np.ndarray) -> np.ndarray:
        x = np.asarray(frame, dtype=np.int16).astype(np.float32)
        if x.size == 0:
            return np.zeros(0, np.int16)
        power = float(np.mean(x * x)) / (32768.0 * 32768.0)
        frame_dbfs = 10.0 * math.log10(power) if power > 0 else -120.0
        start = self.gain_db
        if frame_dbfs > self.gate_dbfs:
            if self.level_dbfs is None:
                self.level_dbfs = frame_dbfs
            else:
                k = self._attack if frame_dbfs > self.level_dbfs else self._release
                self.level_dbfs += k * (frame_dbfs - self.level_dbfs)
            wanted = min(max(self.target_dbfs - self.level_dbfs, self.min_gain_db), self.max_gain_db)
            self.gain_db += min(max(wanted - self.gain_db, -self._fall), self._rise)
        end = self.gain_db
        peak = float(np.max(np.abs(x)))
        if peak > 0:
            ceiling = 20.0 * math.log10(32000.0 / peak)  # the most gain unclipped (> -0.3 dB)
            if end > ceiling:
                end = self.gain_db = ceiling
            start = min(start, ceiling)
        if start == end == 0.0:
            return np.asarray(frame, dtype=np.int16).copy()
        ramp = np.linspace(start, end, x.size, dtype=np.float32)
        y = x * np.power(np.float32(10.0), ramp / np.float32(20.0))
        out: np.ndarray = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        return out


class InboundFrames:
    """A bounded frame buffer from any thread to one asyncio reader: the caller's half of every
    transport's audio path.

    When the reader lags `capacity` frames behind, the oldest frame's audio is dropped (and counted),
    but its place is kept: the reader gets a silent frame for it, so a reader that counts frames as its
    clock (the call runtime does) stays on time while memory stays bounded.

    The reader gets a frame only after the loop has run every callback queued on it before the frame was
    pushed (the ordering rule of server.runtime.Transport): a clock thread that queues the results of a
    tick's pull and then pushes that tick's caller frame has them handled first.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int) -> None:
        self._loop = loop
        self._capacity = capacity
        self._frames: deque[bytes] = deque()
        self._lost = 0  # dropped frames still owed to the reader, as silence, before `_frames`
        self._lock = threading.Lock()  # held for a few deque operations only
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.pushed = 0
        self.dropped = 0

    def push(self, pcm: bytes) -> None:
        """Any thread; never waits on anything but a few-instruction lock."""
        with self._lock:
            if len(self._frames) >= self._capacity:
                self._frames.popleft()
                self._lost += 1
                self.dropped += 1
            self._frames.append(pcm)
            self.pushed += 1
        self._notify()

    def clear(self) -> int:
        """Forget every frame not yet read (neither delivered nor owed); returns how many."""
        with self._lock:
            n = len(self._frames) + self._lost
            self._frames.clear()
            self._lost = 0
        return n

    def close(self) -> None:
        """No more frames will come; the reader gets what is buffered, then the end."""
        self._closed = True
        self._notify()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Frames waiting for the reader (a measure of how far behind it is)."""
        return len(self._frames) + self._lost

    def _notify(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is reading any more
                self._loop.call_soon_threadsafe(_wake, waiter)

    def _take(self) -> bytes | None:
        with self._lock:
            if self._lost:
                self._lost -= 1
                return SILENCE_BYTES
            return self._frames.popleft() if self._frames else None

    async def get(self) -> bytes | None:
        """The next frame, or None once closed and drained (on the loop's thread)."""
        while True:
            if (pcm := self._take()) is not None:
                # Whatever was queued before this frame's push is in the loop's ready queue now: one
                # pass of the loop runs it. A frame that was already waiting needs this as much as one
                # that woke us, since the reader may have been busy while both were queued.
                await asyncio.sleep(0)
                return pcm
            if self._closed:
                return None
            waiter = self._loop.create_future()
            self._waiter = waiter
            if self._frames or self._lost or self._closed:  # a push raced us, maybe not seeing the waiter
                self._waiter = None
                continue
            await waiter


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Outbound:
    """The bot's half of every transport's audio path: the runtime's `pull`, called from a clock thread,
    always giving one 20 ms int16 frame. Before `attach`, and whenever pull raises or breaks its
    contract, the line gets silence; the first failure is logged (its type only) on the loop."""

    def __init__(self, call_id: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.call_id = call_id
        self.loop = loop  # where the failure is logged; none yet: not logged
        self.pull: Callable[[], np.ndarray] | None = None
        self.frames = 0  # frames pull gave
        self.errors = 0

    def frame(self) -> np.ndarray:
        """The next frame; never raises, never blocks (unless pull does)."""
        pull = self.pull
        if pull is None:
            return SILENCE
        try:
            x = np.asarray(pull())
            if x.dtype != np.int16 or x.ndim != 1:
                raise TypeError(f"pull() must return 1-D int16 samples, got {x.dtype} {x.shape}")
            if len(x) != FRAME:
                x = np.concatenate([x[:FRAME], SILENCE[: max(0, FRAME - len(x))]])
            self.frames += 1
            return np.ascontiguousarray(x)
        except Exception as exc:
            self.errors += 1
            if self.errors == 1 and self.loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    self.loop.call_soon_threadsafe(log.warning, "%s: pull() failed (%s), sending silence",
                                                   self.call_id, type(exc).__name__)
            return SILENCE


class SipCall:
    """One answered SIP call; satisfies server.runtime.Transport.

    `frames()` yields the caller's audio (20 ms int16 frames at 16 kHz, level-normalised) and ends when
    the call ends for any reason; `attach(pull)` makes every outbound frame come from `pull()` (silence
    until then, and whenever pull raises); `hang_up(reason)` sends BYE and waits for the end. DTMF digits
    (RFC 2833) go to `on_dtmf(digit)` when set (on the loop) and always to the `dtmf` queue.

    One clock: from the first pull on, the bridge's every tick makes exactly one pull and delivers
    exactly one caller frame (a frame whose audio was dropped for a lagging reader comes as silence), so
    counting frames and counting pulls give the same time. Caller frames from before the first pull that
    were not read by then are skipped (`frames_skipped`).
    """

    def __init__(self, call_id: str, caller_number: str, remote_address: str, *,
                 loop: asyncio.AbstractEventLoop, request_hangup: Callable[[SipCall, str], None],
                 buffer_frames: int = 50, normalizer: LevelNormalizer | None = None) -> None:
        self.call_id = call_id
        self.caller_number = caller_number
        self.remote_address = remote_address
        self.local_rtp: str | None = None  # set when media is up
        self.codec: str | None = None
        self.started_at = time.monotonic()  # the INVITE's arrival
        # monotonic arrival time of the first frame frames() yields (of the timeline attach() starts)
        self.media_started_at: float | None = None
        self.end_reason: str | None = None
        self.on_dtmf: Callable[[str], object] | None = None
        self.dtmf: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
        # the caller's RTP as pjmedia saw it, refreshed every second while the call is up (see
        # sip.library.rx_stats): packets, lost, jitter, and the jitter buffer's delay, drops and underruns
        self.rx_stats: dict[str, float] = {}
        self._loop = loop
        self._request_hangup = request_hangup
        self._inbound = InboundFrames(loop, buffer_frames)
        self._normalizer = normalizer
        self._outbound = Outbound(call_id, loop)
        self._aligned = False  # pull() has been called: from now on one caller frame per pull
        self.frames_skipped = 0  # caller frames before the first pull, never delivered
        self._reading = False
        self._ended: asyncio.Event | None = None

    # ------------------------------------------------------------------ Transport

    async def frames(self) -> AsyncIterator[np.ndarray]:
        if self._reading:
            raise RuntimeError(f"{self.call_id}: frames() has one reader")
        self._reading = True
        while (pcm := await self._inbound.get()) is not None:  # after this tick's pull results
            x = np.frombuffer(pcm, dtype="<i2").astype(np.int16)
            if len(x) != FRAME:
                x = np.resize(x, FRAME) if len(x) else SILENCE.copy()
            yield self._normalizer.process(x) if self._normalizer is not None else x

    def attach(self, pull: Callable[[], np.ndarray]) -> None:
        self._outbound.pull = pull
        if not self._aligned:  # unread frames from before: skipped (until the first pull, push skips too)
            self.frames_skipped += self._inbound.clear()
            self.media_started_at = None

    async def hang_up(self, reason: str, timeout_s: float = 5.0) -> None:
        if self.end_reason is None:
            self._request_hangup(self, reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended_event().wait(), timeout_s)

    # ------------------------------------------------------------------ state

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    @property
    def frames_out(self) -> int:
        return self._outbound.frames

    @property
    def pull_errors(self) -> int:
        return self._outbound.errors

    @property
    def frames_in(self) -> int:
        return self._inbound.pushed

    @property
    def frames_dropped(self) -> int:
        return self._inbound.dropped

    @property
    def frames_pending(self) -> int:
        return self._inbound.pending

    async def wait_ended(self) -> str:
        await self._ended_event().wait()
        return self.end_reason or ""

    def _ended_event(self) -> asyncio.Event:
        if self._ended is None:
            self._ended = asyncio.Event()
            if self.end_reason is not None:
                self._ended.set()
        return self._ended

    # ------------------------------------------------------------------ from the endpoint's threads

    def push(self, pcm: bytes) -> None:
        """pjmedia's clock thread: one caller frame (after `outbound` in the same bridge tick)."""
        if self._outbound.pull is not None and not self._aligned:  # attach() came mid-tick
            self.frames_skipped += 1
            return
        if self.media_started_at is None:
            self.media_started_at = time.monotonic()
        self._inbound.push(pcm)

    def outbound(self) -> np.ndarray:
        """pjmedia's clock thread: the bot's next frame. Never raises, never blocks (unless pull does)."""
        if self._outbound.pull is None:
            return SILENCE
        if not self._aligned:  # the first pull: frames still unread from before attach() are dropped
            self._aligned = True
            self.frames_skipped += self._inbound.clear()
            self.media_started_at = None
        return self._outbound.frame()

    def dtmf_received(self, digit: str) -> None:
        """Any thread: an RFC 2833 digit."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._deliver_dtmf, digit)

    def _deliver_dtmf(self, digit: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # nobody reads the queue: keep the first 64
            self.dtmf.put_nowait(digit)
        if self.on_dtmf is not None:
            try:
                self.on_dtmf(digit)
            except Exception:
                log.exception("%s: on_dtmf failed", self.call_id)

    def mark_ended(self, reason: str) -> None:
        """The SIP thread: the call is over (BYE either way, CANCEL, shutdown); frames() ends."""
        if self.end_reason is not None:
            return
        self.end_reason = reason
        self._inbound.close()
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(lambda: self._ended_event().set())
