"""A second pjsua2 endpoint, in a child process, calls standin: its scenario speech reaches standin, the
bot's sine reaches it when it should, and its hang-up mid-audio ends standin's side of the call."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sip.media import FRAME, RATE
from tests.sip.endpoint_kit import (
    Handled,
    Handler,
    loopback_options,
    require_pjsua2,
    rms,
    running,
)
from tests.sip.sipp import free_rtp_range

pytestmark = pytest.mark.slow

CALLER = Path(__file__).with_name("pjsua2_caller.py")
SINE_FROM, SINE_FRAMES = 50, 30  # the bot sends a 400 Hz sine from 1.0 s to 1.6 s of its playout
HANG_UP_AFTER_S = 3.0  # the caller hangs up 3 s into its 5.1 s recording


def envelope(x: np.ndarray, hop: int = 800) -> np.ndarray:
    k = len(x) // hop
    levels: np.ndarray = np.sqrt(np.mean(x[: k * hop].astype(np.float64).reshape(k, hop) ** 2, axis=1))
    return levels


def test_pjsua2_caller_is_heard_hears_the_bot_and_hangs_up(tmp_path: Path, shared: Path) -> None:
    require_pjsua2()
    wav = shared / "scenarios" / "quick_question.wav"
    if not wav.is_file():
        pytest.skip(f"{wav} is absent")
    handler = Handler(sine_from=SINE_FROM, sine_frames=SINE_FRAMES)
    returncode, output = asyncio.run(call_standin(handler, wav, tmp_path))
    assert returncode == 0, output
    result = json.loads((tmp_path / "result.json").read_text())
    received = np.frombuffer((tmp_path / "received.raw").read_bytes(), "<i2")
    assert len(handler.calls) == 1, output
    handled = handler.calls[0]
    call = handled.call
    assert call.caller_number == "+15550002222"
    assert (call.codec or "").startswith("G722"), call.codec  # preferred over the offer's PCMU/PCMA

    heard = check_standin_heard_the_wav(handled, result, wav)
    check_caller_heard_the_sine(handled, result, received)

    # The caller hung up mid-audio: standin's frames() ended, and the call with it.
    assert result["hung_up_at"] is not None and result["disconnected"]
    assert handled.ended and call.end_reason == "caller hung up"
    assert handled.ended_at is not None and handled.ended_at - result["hung_up_at"] < 2.0
    assert len(heard) < (HANG_UP_AFTER_S + 1.0) * RATE


async def call_standin(handler: Handler, wav: Path, out: Path) -> tuple[int | None, str]:
    async with running(loopback_options(), handler) as endpoint:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(CALLER), "--target", f"sip:standin@{endpoint.addresses['udp']}",
            "--wav", str(wav), "--out", str(out), "--hangup-after", str(HANG_UP_AFTER_S),
            "--rtp-port", str(free_rtp_range()),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            output, _ = await proc.communicate()
        if handler.calls:
            await asyncio.wait_for(handler.calls[0].call.wait_ended(), 5)
            for _ in range(50):  # the handler's loop ends right after
                if handler.calls[0].ended:
                    break
                await asyncio.sleep(0.02)
    return proc.returncode, output.decode(errors="replace")


def check_standin_heard_the_wav(handled: Handled, result: dict[str, Any], wav: Path) -> np.ndarray:
    """standin's audio follows the WAV's envelope, shifted by the line's delay; returns that audio."""
    import soundfile

    sent, rate = soundfile.read(wav, dtype="int16")
    assert rate == RATE
    heard = handled.audio()
    # Where the WAV's first sample sits in standin's audio (the caller may start playing a hair
    # before standin's first frame: pad).
    offset = round((result["play_started_at"] - handled.call.media_started_at) * RATE)
    if offset < 0:
        heard, offset = np.concatenate([np.zeros(-offset, np.int16), heard]), 0
    span = int(2.5 * RATE)  # the question (0.6 s - 2.14 s) and a little after
    ref = envelope(sent[:span])
    best = max(
        (float(np.corrcoef(ref, envelope(heard[offset + lag: offset + lag + span]))[0, 1]), lag / RATE)
        for lag in range(0, int(0.2 * RATE), 160))
    assert best[0] > 0.8, best
    speech = heard[offset + int(0.8 * RATE): offset + int(2.0 * RATE)]
    quiet = heard[offset: offset + int(0.4 * RATE)]
    assert rms(speech) > 300 and rms(speech) > 8 * rms(quiet), (rms(speech), rms(quiet))
    return heard


def check_caller_heard_the_sine(handled: Handled, result: dict[str, Any], received: np.ndarray) -> None:
    """The bot's sine reached the caller when standin sent it (monotonic clocks are machine-wide)."""
    frames = range(0, len(received) - FRAME + 1, FRAME)
    loud = np.array([rms(received[i:i + FRAME]) for i in frames]) > 2000
    assert loud.any(), "the caller never heard the bot's sine"
    first = int(np.argmax(loud))
    assert handled.sine_sent_at is not None
    delay = result["frame_times"][first] - handled.sine_sent_at
    assert -0.02 <= delay <= 0.1, delay
    assert abs(int(loud.sum()) - SINE_FRAMES) <= 3, int(loud.sum())
    tone = received[first * FRAME:(first + SINE_FRAMES - 2) * FRAME].astype(np.float64)
    peak_hz = np.argmax(np.abs(np.fft.rfft(tone))) * RATE / len(tone)
    assert abs(peak_hz - 400) < 15, peak_hz
