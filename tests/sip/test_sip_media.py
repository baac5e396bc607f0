"""sip/media.py without pjsua2: the level normaliser, the bounded frame buffer, and SipCall as the
runtime's Transport, with a thread standing in for pjmedia's clock thread."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sip.media import FRAME, SILENCE, InboundFrames, LevelNormalizer, SipCall

RATE = 16000


def dbfs(x: np.ndarray) -> float:
    power = float(np.mean(x.astype(np.float64) ** 2)) / 32768.0**2
    return 10 * math.log10(power) if power > 0 else -120.0


def speech_like(level_dbfs: float, seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Noise at `level_dbfs`, syllable-modulated (4 Hz), in 20 ms frames."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE) // FRAME * FRAME
    t = np.arange(n) / RATE
    x = rng.standard_normal(n) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    x *= 32768 * 10 ** (level_dbfs / 20) / np.sqrt(np.mean(x**2))
    return list(np.clip(x, -32768, 32767).astype(np.int16).reshape(-1, FRAME))


def run(agc: LevelNormalizer, frames: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([agc.process(f) for f in frames])


# ---------------------------------------------------------------------------- LevelNormalizer


def test_quiet_caller_is_raised_to_the_target_slowly() -> None:
    agc = LevelNormalizer(target_dbfs=-26, max_gain_db=20)
    frames = speech_like(-40, 6.0)
    first = run(agc, frames[:25])  # 0.5 s
    assert agc.gain_db <= 6.0 * 0.5 + 0.01  # rises at most 6 dB/s
    assert dbfs(first) < -36
    out = run(agc, frames[25:])
    assert agc.level_dbfs is not None and agc.level_dbfs + agc.gain_db == pytest.approx(-26, abs=0.5)
    assert dbfs(out[-RATE:]) == pytest.approx(-26, abs=4.0)  # the level tracks the louder syllables


def test_gain_is_bounded_both_ways() -> None:
    quiet = LevelNormalizer(max_gain_db=12)
    run(quiet, speech_like(-49, 10.0))
    assert quiet.gain_db == pytest.approx(12, abs=0.01)
    loud = LevelNormalizer(min_gain_db=-6)
    out = run(loud, speech_like(-8, 5.0))
    assert loud.gain_db == pytest.approx(-6, abs=0.5)
    assert dbfs(out[-RATE:]) == pytest.approx(-14, abs=1.5)


def test_line_noise_and_pauses_are_not_pumped_up() -> None:
    agc = LevelNormalizer(gate_dbfs=-50)
    noise = speech_like(-62, 3.0)
    out = run(agc, noise)
    assert agc.gain_db == 0.0 and np.array_equal(out, np.concatenate(noise))
    run(agc, speech_like(-40, 4.0))
    held = agc.gain_db
    assert held > 10
    run(agc, speech_like(-65, 2.0, seed=1))  # a pause: the gain stays where speech left it
    assert agc.gain_db == held


def test_loud_peaks_never_wrap_and_shape_is_kept() -> None:
    agc = LevelNormalizer(max_gain_db=20)
    run(agc, speech_like(-45, 5.0))
    assert agc.gain_db > 15
    t = np.arange(FRAME) / RATE
    sine = (30000 * np.sin(2 * np.pi * 400 * t)).astype(np.int16)
    out = agc.process(sine)
    assert out.dtype == np.int16 and len(out) == FRAME
    assert np.abs(out.astype(np.int32)).max() <= 32767
    assert np.corrcoef(out, sine)[0, 1] > 0.99  # scaled down, not clipped into a square or wrapped
    assert agc.process(np.zeros(0, np.int16)).size == 0


# ---------------------------------------------------------------------------- InboundFrames


def test_inbound_frames_cross_threads_in_order_and_keep_time_when_full() -> None:
    async def scenario() -> tuple[list[bytes], int, int]:
        loop = asyncio.get_running_loop()
        buf = InboundFrames(loop, capacity=4)
        for i in range(6):  # nobody reads yet: the audio of 0 and 1 is dropped, their places kept
            buf.push(bytes([i]))
        assert buf.pending == 6

        def later() -> None:
            time.sleep(0.05)
            buf.push(b"\x06")
            buf.close()

        thread = threading.Thread(target=later)
        got = [await buf.get() for _ in range(6)]
        thread.start()
        got.append(await asyncio.wait_for(buf.get(), 2))  # woken by the other thread
        end = await asyncio.wait_for(buf.get(), 2)
        thread.join()
        assert end is None
        return [g for g in got if g is not None], buf.pushed, buf.dropped

    got, pushed, dropped = asyncio.run(scenario())
    silence = bytes(FRAME * 2)
    assert got == [silence, silence, b"\x02", b"\x03", b"\x04", b"\x05", b"\x06"]
    assert (pushed, dropped) == (7, 2)


def test_frames_before_attach_are_skipped_so_pulls_and_frames_count_alike() -> None:
    async def scenario() -> tuple[list[int], int]:
        call = make_call(asyncio.get_running_loop(), [])
        for i in range(3):  # answered, nobody attached yet
            call.outbound()
            call.push(np.full(FRAME, i, "<i2").tobytes())
        call.attach(lambda: SILENCE)
        call.push(np.full(FRAME, 3, "<i2").tobytes())  # attach landed mid-tick: no pull for this one
        for i in range(4, 7):  # from here one pull, one frame
            call.outbound()
            call.push(np.full(FRAME, i, "<i2").tobytes())
        call.mark_ended("caller hung up")
        return [int(f[0]) async for f in call.frames()], call.frames_skipped

    values, skipped = asyncio.run(scenario())
    assert values == [4, 5, 6] and skipped == 4


# ---------------------------------------------------------------------------- SipCall


def make_call(loop: asyncio.AbstractEventLoop, hangups: list[str], normalize: bool = False,
              end_on_hangup: bool = True) -> SipCall:
    def request_hangup(call: SipCall, reason: str) -> None:  # as the SIP thread would, a bit later
        hangups.append(reason)
        if end_on_hangup:
            threading.Timer(0.02, call.mark_ended, args=(f"hung up: {reason}",)).start()

    return SipCall("call-1", "+15550001111", "127.0.0.1:5060", loop=loop, request_hangup=request_hangup,
                   buffer_frames=8, normalizer=LevelNormalizer() if normalize else None)


def test_outbound_frames_come_from_pull_and_never_fail() -> None:
    async def scenario() -> None:
        call = make_call(asyncio.get_running_loop(), [])
        assert not call.outbound().any()  # silence before attach
        frame = np.full(FRAME, 1234, np.int16)
        def fails() -> np.ndarray:
            raise ZeroDivisionError("division by zero")

        results: list[Callable[[], np.ndarray]] = [
            lambda: frame, lambda: frame[:100], lambda: np.concatenate([frame, frame]),
            lambda: np.ones(FRAME, np.float32), fails]
        out = []
        for pull in results:
            call.attach(pull)
            out.append(call.outbound())
        assert np.array_equal(out[0], frame)
        assert len(out[1]) == FRAME and out[1][:100].tolist() == [1234] * 100 and not out[1][100:].any()
        assert np.array_equal(out[2], frame)
        assert not out[3].any() and not out[4].any()  # a float frame, an exception: silence
        assert (call.frames_out, call.pull_errors) == (3, 2)
        await asyncio.sleep(0.01)  # the warning is logged on the loop

    asyncio.run(scenario())


def test_frames_end_with_the_call_and_dtmf_arrives_on_the_loop() -> None:
    async def scenario() -> tuple[list[np.ndarray], list[str], list[str], str]:
        loop = asyncio.get_running_loop()
        call = make_call(loop, [])
        seen: list[str] = []
        call.on_dtmf = seen.append

        def clock() -> None:  # pjmedia's clock thread: 10 frames, a digit, then the caller's BYE
            for i in range(10):
                call.push(np.full(FRAME, i, "<i2").tobytes())
                time.sleep(0.002)
            call.dtmf_received("5")
            time.sleep(0.01)
            call.mark_ended("caller hung up")

        thread = threading.Thread(target=clock)
        thread.start()
        frames = [f async for f in call.frames()]
        thread.join()
        with pytest.raises(RuntimeError, match="one reader"):
            await anext(call.frames())
        await asyncio.sleep(0.01)
        digits = [call.dtmf.get_nowait() for _ in range(call.dtmf.qsize())]
        return frames, digits, seen, await asyncio.wait_for(call.wait_ended(), 1)

    frames, digits, seen, reason = asyncio.run(scenario())
    assert reason == "caller hung up"
    assert all(f.dtype == np.int16 and len(f) == FRAME for f in frames)
    # 10 pushed into a buffer of 8: what was read in time plus the newest 8 are there, in order
    values = [int(f[0]) for f in frames]
    assert values == sorted(values) and values[-1] == 9 and len(values) >= 8
    assert digits == ["5"] and seen == ["5"]


def test_hang_up_asks_the_sip_thread_once_and_waits_for_the_end() -> None:
    async def scenario() -> tuple[list[str], str | None, float]:
        hangups: list[str] = []
        call = make_call(asyncio.get_running_loop(), hangups)
        await asyncio.wait_for(call.hang_up("goodbye"), 2)
        await call.hang_up("again")  # already over: nothing more is asked
        stuck = make_call(asyncio.get_running_loop(), [], end_on_hangup=False)
        t0 = time.monotonic()
        await stuck.hang_up("nobody answers", timeout_s=0.1)  # bounded even if the end never comes
        return hangups, call.end_reason, time.monotonic() - t0

    hangups, reason, waited = asyncio.run(scenario())
    assert hangups == ["goodbye"] and reason == "hung up: goodbye"
    assert waited < 1.0


def test_sip_call_runs_a_live_call_as_its_transport(tmp_path: Path) -> None:
    """The real runtime on a SipCall whose frames come from a thread, as from pjmedia's clock."""
    from server.config import load
    from server.core.conversation import Conversation
    from server.jobs import JobRunner
    from server.runtime import CallRuntime, Engines, LiveCall
    from tests.fakes import FnJudge, LinesLlm, SpanStt, SpanVad, ToneTts

    engines = Engines(SpanVad([(0.5, 1.5)]), SpanStt([(0.5, 1.5, "Is Marco there?")]), FnJudge(lambda t: 0.9),
                      LinesLlm(["He is out, can I take a message?"]), ToneTts(word_s=0.1, gap_s=0.02))
    config = load(None, {"call": {"greeting": "", "silence_timeout_s": 2.0}})

    def make(jobs: JobRunner) -> CallRuntime:
        return CallRuntime(Conversation(config.conversation()), engines, jobs)

    async def scenario() -> tuple[CallRuntime, list[str], np.ndarray]:
        hangups: list[str] = []
        call = make_call(asyncio.get_running_loop(), hangups, normalize=True)
        bot: list[np.ndarray] = []
        stop = threading.Event()
        ticks: list[float] = []

        def clock() -> None:
            # Each tick as pjmedia's bridge does it: the bot's frame is pulled, then the caller's frame
            # is delivered (a silent line; VAD is scripted). The next tick comes once the loop has taken
            # the frame, faster than real time.
            while not stop.is_set() and not call.ended:
                bot.append(call.outbound())
                call.push(bytes(FRAME * 2))
                ticks.append(time.monotonic())
                deadline = time.monotonic() + 1.0
                while call.frames_pending and time.monotonic() < deadline and not stop.is_set():
                    time.sleep(0.0005)
                time.sleep(0.002)

        thread = threading.Thread(target=clock)
        thread.start()
        try:
            runtime = await asyncio.wait_for(LiveCall(make).run(call), 30)
        finally:
            stop.set()
            thread.join()
        return runtime, hangups, np.concatenate(bot)

    runtime, hangups, bot = asyncio.run(scenario())
    assert runtime.core.report()["bot_turns"][0]["text_heard"] == "He is out, can I take a message?"
    assert len(hangups) == 1  # the runtime ended the call (silence) through hang_up
    assert np.abs(bot).max() > 1000  # the reply was pulled onto the line
