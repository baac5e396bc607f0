"""The echo gate on real speech: the bot's voice coming back is recognised; a caller is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from server.audio import read_audio, to_float
from server.echo import EchoGate, EchoOptions

W = 512


def run(gate: EchoGate, bot: np.ndarray, mic: np.ndarray) -> list[bool]:
    """Feed 20 ms of bot audio and the matching caller windows, as the runtime does."""
    verdicts = []
    pending = 0
    for i in range(0, len(bot) - 320, 320):
        gate.played(bot[i:i + 320])
        while pending + W <= i + 320:
            verdicts.append(gate.is_echo(to_float(mic[pending:pending + W]), pending + W))
            pending += W
    return verdicts


def echo_of(bot: np.ndarray, delay_ms: int, gain_db: float) -> np.ndarray:
    d = delay_ms * 16
    out = np.zeros_like(bot, dtype=np.float32)
    out[d:] = bot[:-d] * 10 ** (gain_db / 20)
    return out


def voiced(x: np.ndarray) -> np.ndarray:
    """Which windows of `x` carry sound worth judging."""
    frames = to_float(x[: len(x) // W * W]).reshape(-1, W)
    loud: np.ndarray = np.sqrt(np.mean(frames**2, axis=1)) > 0.003
    return loud


def test_the_bots_own_voice_coming_back_is_echo(shared: Path) -> None:
    bot = read_audio(shared / "audio" / "speech" / "jfk.wav")
    mic = echo_of(bot, 150, -12).astype(np.int16)
    verdicts = np.array(run(EchoGate(EchoOptions()), bot, mic))
    loud = voiced(mic)[: len(verdicts)]
    assert verdicts[loud].mean() > 0.95


def test_a_caller_on_a_clean_line_is_never_echo(shared: Path) -> None:
    bot = read_audio(shared / "audio" / "speech" / "jfk.wav")
    caller = read_audio(shared / "audio" / "speech" / "quilter.wav")
    mic = np.zeros_like(bot)
    mic[: len(caller)] = caller
    verdicts = np.array(run(EchoGate(EchoOptions()), bot, mic))
    assert not verdicts[voiced(mic)[: len(verdicts)]].any()


def test_a_caller_talking_over_the_echo_gets_through(shared: Path) -> None:
    bot = read_audio(shared / "audio" / "speech" / "jfk.wav")
    caller = read_audio(shared / "audio" / "speech" / "quilter.wav").astype(np.float32)
    mic = echo_of(bot, 150, -12)
    at = 3 * 16000  # the echo path is learnt in the first seconds, then the caller speaks too
    mic[at:at + len(caller)] += caller * 2
    verdicts = np.array(run(EchoGate(EchoOptions()), bot, mic.clip(-32768, 32767).astype(np.int16)))
    windows = np.arange(len(verdicts)) * W
    talking = (windows >= at) & (windows < at + len(caller)) & voiced(caller_padded(caller, at, len(mic)))[
        : len(verdicts)]
    assert verdicts[talking].mean() < 0.2


def caller_padded(caller: np.ndarray, at: int, length: int) -> np.ndarray:
    out = np.zeros(length, np.int16)
    out[at:at + len(caller)] = caller.clip(-32768, 32767).astype(np.int16)
    return out


def test_nothing_is_echo_while_the_bot_is_silent() -> None:
    gate = EchoGate(EchoOptions())
    noise = (np.random.default_rng(1).normal(0, 3000, 16000)).astype(np.int16)
    assert not any(run(gate, np.zeros(16000, np.int16), noise))


def test_echo_is_found_through_a_changing_gain_and_a_delay_that_moves(shared: Path) -> None:
    bot = read_audio(shared / "audio" / "speech" / "jfk.wav")
    half = len(bot) // 2
    mic = np.concatenate([echo_of(bot, 150, -15)[:half], echo_of(bot, 160, -15)[half:]])
    mic *= np.linspace(1.0, 2.5, len(mic), dtype=np.float32)  # a level normaliser at work
    verdicts = np.array(run(EchoGate(EchoOptions()), bot, mic.astype(np.int16)))
    loud = voiced(mic.astype(np.int16))[: len(verdicts)]
    assert verdicts[loud].mean() > 0.9


def slipping_echo(bot: np.ndarray, delays_ms: list[int], every_s: float, gain_db: float) -> np.ndarray:
    """The echo of `bot` with a path delay that jumps to the next of `delays_ms` every `every_s`."""
    step = int(every_s * 16000)
    mic = np.zeros_like(bot, dtype=np.float32)
    for k, at in enumerate(range(0, len(bot), step)):
        mic[at:at + step] = echo_of(bot, delays_ms[k % len(delays_ms)], gain_db)[at:at + step]
    return mic


def longest_run(flags: np.ndarray) -> int:
    best = run_ = 0
    for f in flags:
        run_ = run_ + 1 if f else 0
        best = max(best, run_)
    return best


def test_an_echo_path_that_slips_by_whole_frames_stays_echo(shared: Path) -> None:
    # A loaded phone or bridge whose clock catches up moves the echo by a frame (20 ms) now and then, back
    # and forth; two windows in a row taken for the caller would make the bot stop for its own voice.
    bot = read_audio(shared / "audio" / "speech" / "jfk.wav")
    mic = slipping_echo(bot, [148, 168, 148, 158], 0.7, -12).astype(np.int16)
    verdicts = np.array(run(EchoGate(EchoOptions()), bot, mic))
    loud = voiced(mic)[: len(verdicts)]
    missed = loud & ~verdicts
    assert verdicts[loud].mean() > 0.97, verdicts[loud].mean()
    assert longest_run(missed) <= 1, np.flatnonzero(missed) * W / 16000


def test_the_faint_line_noise_right_after_the_echo_is_its_tail(shared: Path) -> None:
    # The echo stops mid-word; what follows is line noise just above digital silence (-68 dBFS). The VAD
    # may still hear the echo it just had for a window or two: those windows are the echo's tail.
    bot = read_audio(shared / "audio" / "speech" / "jfk.wav")
    mic = echo_of(bot, 150, -12)
    frames = to_float(mic[: len(mic) // W * W].astype(np.int16)).reshape(-1, W)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > -32)  # the echo of a stressed syllable, 36 dB above the noise
    cut = int(loud[len(loud) // 2]) * W + W
    noise = np.random.default_rng(7).normal(0, 13.0, len(mic) - cut)
    mic[cut:] = noise
    verdicts = run(EchoGate(EchoOptions()), bot, mic.astype(np.int16))
    after = verdicts[cut // W: cut // W + 6]
    assert verdicts[cut // W - 1], "the last window before the cut is echo"
    assert after[:3] == [True, True, True], after
    assert not any(after[4:]), after  # then it is the caller's line again
