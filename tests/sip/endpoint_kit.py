"""Running a SipEndpoint in a test: options on loopback, a recording call handler, start/stop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tests.sip.sipp import free_port, free_rtp_range

try:
    from sip.endpoint import SipEndpoint, load_pjsua2
    from sip.library import SipUnavailable
    from sip.media import FRAME, RATE, SipCall
    from sip.options import SipOptions
except ImportError as exc:  # pragma: no cover - a broken checkout
    raise RuntimeError(f"sip/ does not import: {exc}") from exc


def require_pjsua2() -> None:
    try:
        load_pjsua2()
    except SipUnavailable as exc:
        pytest.skip(str(exc))


def loopback_options(**overrides: Any) -> SipOptions:
    values: dict[str, Any] = {"listen": f"127.0.0.1:{free_port()}", "transports": ("udp",),
                              "rtp_port_start": free_rtp_range(), "rtp_port_count": 20}
    values.update(overrides)
    return SipOptions(**values)


def tone(freq: float, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(FRAME) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


@dataclass
class Handled:
    """What the handler saw of one call."""

    call: SipCall
    delivered_at: float
    frames: list[np.ndarray] = field(default_factory=list)
    pulls: int = 0
    sine_sent_at: float | None = None
    ended: bool = False
    ended_at: float | None = None  # monotonic time frames() ended

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.int16)


class Handler:
    """on_call for SipEndpoint: attaches a pull that sends silence, then (from frame `sine_from`)
    `sine_frames` frames of a 400 Hz sine; reads every frame until the call ends."""

    def __init__(self, sine_from: int = 0, sine_frames: int = 10**9,
                 hang_up_after: int | None = None) -> None:
        self.calls: list[Handled] = []
        self.delivered = asyncio.Event()
        self.sine_from = sine_from
        self.sine_frames = sine_frames
        self.hang_up_after = hang_up_after

    async def __call__(self, call: SipCall) -> None:
        handled = Handled(call, time.monotonic())
        self.calls.append(handled)
        self.delivered.set()
        sine = tone(400)
        silence = np.zeros(FRAME, np.int16)

        def pull() -> np.ndarray:
            i = handled.pulls
            handled.pulls += 1
            if self.sine_from <= i < self.sine_from + self.sine_frames:
                if handled.sine_sent_at is None:
                    handled.sine_sent_at = time.monotonic()
                return sine
            return silence

        call.attach(pull)
        async for frame in call.frames():
            handled.frames.append(frame)
            if self.hang_up_after is not None and len(handled.frames) >= self.hang_up_after:
                await call.hang_up("test is done")
        handled.ended = True
        handled.ended_at = time.monotonic()


@contextlib.asynccontextmanager
async def running(options: SipOptions, handler: Handler | None = None) -> AsyncIterator[SipEndpoint]:
    endpoint = SipEndpoint(options, handler or Handler(), loop=asyncio.get_running_loop())
    endpoint.start()
    try:
        yield endpoint
    finally:
        await asyncio.to_thread(endpoint.stop)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


def window_rms(x: np.ndarray, seconds: float = 0.1) -> np.ndarray:
    n = int(RATE * seconds)
    k = len(x) // n
    windows: np.ndarray = np.sqrt(np.mean(x[: k * n].astype(np.float64).reshape(k, n) ** 2, axis=1))
    return windows
