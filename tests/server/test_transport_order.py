"""The Transport ordering rule (server/runtime.py): a caller frame reaches the runtime only after the loop
has run what the transport's pull queued before that frame arrived. Both transports read caller frames
through sip.media.InboundFrames and pull through sip.media.Outbound; here the rule is held against the
shared path alone, and against a live call on a SipCall whose clock thread got ahead of the loop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from server.audio import StereoWavWriter
from server.config import load
from server.core.conversation import Conversation
from server.jobs import JobRunner
from server.runtime import CallRuntime, Engines, LiveCall
from sip.media import FRAME, InboundFrames, Outbound, SipCall
from tests.fakes import FnJudge, LinesLlm, SpanStt, SpanVad, ToneTts

FRAME_BYTES = np.zeros(FRAME, np.int16).tobytes()


def test_a_frame_is_handed_over_after_what_was_queued_before_it_arrived() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        inbound = InboundFrames(loop, capacity=8)
        seen: list[str] = []
        for i in range(3):  # a clock thread three ticks ahead of a busy reader: results, then a frame
            loop.call_soon_threadsafe(seen.append, f"pulled {i}")
            inbound.push(FRAME_BYTES)
        inbound.close()
        i = 0
        while await inbound.get() is not None:
            seen.append(f"frame {i}")
            i += 1
        return seen

    seen = asyncio.run(scenario())
    for i in range(3):
        assert seen.index(f"pulled {i}") < seen.index(f"frame {i}"), seen


class _Watched(CallRuntime):
    """Counts, at each caller frame, how many of the bot's frames the runtime had been told about."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.played_frames = 0
        self.known_at_feed: list[int] = []

    def played(self, frame: np.ndarray) -> None:
        self.played_frames += 1
        super().played(frame)

    def feed(self, frame: np.ndarray, t: float) -> None:
        self.known_at_feed.append(self.played_frames)
        super().feed(frame, t)


def test_a_live_sip_call_hears_each_tick_after_knowing_what_it_played(tmp_path: Path) -> None:
    engines = Engines(SpanVad([]), SpanStt([]), FnJudge(lambda t: 0.9), LinesLlm(["Hello."]), ToneTts())
    config = load(None, {"call": {"greeting": "Hello there."}})
    ticks = 20

    def make(jobs: JobRunner) -> CallRuntime:
        return _Watched(Conversation(config.conversation()), engines, jobs,
                        recorder=StereoWavWriter(tmp_path / "call.wav"))

    async def scenario() -> _Watched:
        loop = asyncio.get_running_loop()
        call = SipCall("call-1", "+15550001111", "127.0.0.1:5060", loop=loop,
                       request_hangup=lambda call, reason: call.mark_ended(reason), buffer_frames=50)
        live = LiveCall(make)
        running = asyncio.create_task(live.run(call))
        await asyncio.sleep(0)  # the call has started, attached its pull and waits for a frame
        assert live.runtime is not None
        for _ in range(ticks // 2):  # pjmedia's clock, two ticks at a time while the loop is busy
            for _ in range(2):
                call.outbound()
                call.push(FRAME_BYTES)
            await asyncio.sleep(0)
        call.mark_ended("caller hung up")
        runtime = await asyncio.wait_for(running, 10)
        assert isinstance(runtime, _Watched)
        return runtime

    runtime = asyncio.run(scenario())
    assert len(runtime.known_at_feed) == ticks
    assert all(known >= i + 1 for i, known in enumerate(runtime.known_at_feed)), runtime.known_at_feed


def test_a_failing_pull_gives_silence_and_logs_only_its_type(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[np.ndarray, Outbound]:
        out = Outbound("call-1", asyncio.get_running_loop())

        def pull() -> np.ndarray:
            raise ValueError("the caller said 4929 1234")

        out.pull = pull
        frame = out.frame()
        await asyncio.sleep(0)  # the warning is logged on the loop
        return frame, out

    with caplog.at_level(logging.WARNING):
        frame, out = asyncio.run(scenario())
    assert len(frame) == FRAME and not frame.any() and (out.frames, out.errors) == (0, 1)
    assert "ValueError" in caplog.text and "4929" not in caplog.text
