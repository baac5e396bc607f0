"""A live call on the asyncio runtime: frames arrive from a transport, engines run in worker threads,
bot audio is pulled from another thread, as a SIP media port would."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np

from server.audio import StereoWavWriter
from server.config import load
from server.core.conversation import Conversation
from server.jobs import Failed, JobRunner, ThreadedJobs
from server.runtime import CallRuntime, Engines, LiveCall
from tests.fakes import FakeClock, FnJudge, LinesLlm, SpanStt, SpanVad, ToneTts


class LoopbackTransport:
    """Feeds `seconds` of caller frames at `speed` times real time; pulls bot frames from a thread."""

    def __init__(self, seconds: float, speed: float = 4.0) -> None:
        self.frames_total = int(seconds / 0.02)
        self.speed = speed
        self.bot: list[np.ndarray] = []
        self.hung_up: str | None = None
        self._pull: Callable[[], np.ndarray] | None = None
        self._puller: threading.Thread | None = None

    def attach(self, pull: Callable[[], np.ndarray]) -> None:
        self._pull = pull

    async def frames(self) -> AsyncIterator[np.ndarray]:
        for _ in range(self.frames_total):
            await asyncio.sleep(0.02 / self.speed)
            assert self._pull is not None
            self.bot.append(await asyncio.to_thread(self._pull))
            yield np.zeros(320, np.int16)

    async def hang_up(self, reason: str) -> None:
        self.hung_up = reason


def test_a_live_call_answers_and_hangs_up(tmp_path: Path) -> None:
    phrases = [(0.5, 1.5, "Is Marco there?")]
    engines = Engines(SpanVad([(0.5, 1.5)]), SpanStt(phrases), FnJudge(lambda t: 0.9),
                      LinesLlm(["He is out, can I take a message?"]), ToneTts(word_s=0.1, gap_s=0.02))
    config = load(None, {"call": {"greeting": "", "silence_timeout_s": 2.0}})

    def make(jobs: JobRunner) -> CallRuntime:
        return CallRuntime(Conversation(config.conversation()), engines, jobs,
                           recorder=StereoWavWriter(tmp_path / "call.wav"))

    transport = LoopbackTransport(seconds=8.0)
    runtime = asyncio.run(LiveCall(make).run(transport))
    report = runtime.core.report()
    kinds = [b["kind"] for b in report["bot_turns"]]
    assert kinds[:1] == ["reply"]
    assert report["bot_turns"][0]["text_heard"] == "He is out, can I take a message?"
    assert transport.hung_up is not None and report["ended"] == "silence"
    bot = np.concatenate(transport.bot)
    assert np.abs(bot).max() > 1000  # the reply reached the line


def test_a_stalled_engine_is_abandoned_and_its_worker_replaced() -> None:
    clock = FakeClock()

    async def scenario() -> list[tuple[int, object]]:
        got: list[tuple[int, object]] = []
        fresh = asyncio.Event()

        def deliver(job: int, item: object, t: float, elapsed: float) -> None:
            got.append((job, item))
            if item == "fresh":
                fresh.set()

        jobs = ThreadedJobs(asyncio.get_running_loop(), deliver, lambda: 0.0, engine_clock=clock)
        release, done = threading.Event(), threading.Event()

        def stuck() -> Iterator[str]:
            try:
                release.wait(5)
                yield "late"
            finally:
                done.set()

        jobs.submit(1, "stt", stuck, timeout_s=0.1, t=0.0)
        jobs.check()
        assert got == []  # not silent long enough yet
        clock.advance(0.1)
        jobs.check()
        jobs.submit(2, "stt", lambda: iter(["fresh"]), timeout_s=1.0, t=0.0)
        await asyncio.wait_for(fresh.wait(), 5)  # served by a new worker while the old one is stuck
        release.set()
        await asyncio.to_thread(done.wait, 5)
        await asyncio.sleep(0)  # anything the stuck job still sent would land now
        jobs.close()
        return got

    got = asyncio.run(scenario())
    job, failed = got[0]
    assert job == 1 and isinstance(failed, Failed) and "gave nothing" in failed.error
    assert (2, "fresh") in got
    assert not any(item == "late" for _, item in got)
