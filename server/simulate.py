"""`standin simulate`: a whole call on a recorded caller, on a virtual clock, faster than real time.

The caller's recording is fed in 20 ms frames; every engine call takes the call time it measured (or the
latency the config injects) before its result lands; timers fire at their exact times. When the
recording ends the caller stays silent until the bot is done, then hangs up. The call writes the same
files as a live one: call.wav, trace.jsonl and summary.json (with the engines that served it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server import audio
from server.callfiles import CallFiles
from server.config import Config
from server.core.conversation import Conversation
from server.jobs import VirtualJobs
from server.provenance import provenance_json
from server.runtime import CallRuntime, Engines, RuntimeOptions
from server.trace import Trace

log = logging.getLogger(__name__)

FRAME_S = audio.FRAME / audio.CALL_RATE


@dataclass(frozen=True, slots=True)
class SimulationResult:
    summary: dict[str, Any]
    out_dir: Path


def simulate(caller: np.ndarray | Iterable[np.ndarray], engines: Engines, config: Config, out_dir: Path,
             meta: dict[str, Any] | None = None, *,
             observe: Callable[[Trace], Trace] | None = None,
             engine_clock: Callable[[], float] = time.monotonic) -> SimulationResult:
    """Run one call on `caller` (int16 mono at 16 kHz: one array, or blocks of any size as they are
    read, e.g. `server.audio.AudioReader.blocks()`, so a long recording is never held whole) and write
    its files into `out_dir`. `observe` may wrap the call's trace to watch the call as it runs (as a
    live call's `CallLog` does). `engine_clock` measures the engines' compute time and their stalls."""
    latency = {k: v / 1000 for k, v in config.simulate.latency_ms.items()}
    jobs = VirtualJobs(latency, engine_clock=engine_clock)
    files = CallFiles(out_dir, engines=provenance_json(engines))
    if observe is not None:
        files.trace = observe(files.trace)
    runtime = CallRuntime(Conversation(config.conversation()), engines, jobs,
                          options=RuntimeOptions(language=config.language, hints=config.stt.hints,
                                                 context=config.context(), timeouts_s=config.timeouts(),
                                                 echo=config.echo, prime_reply="off"),
                          trace=files.trace, recorder=files.recorder)
    echo = EchoPath(**config.simulate.echo) if config.simulate.echo else None
    hangup_after = config.simulate.hangup_after_s
    frames = _Frames(caller)
    limit = float("inf")  # until the recording's end is known
    silence = np.zeros(audio.FRAME, np.int16)
    error: str | None = None
    prime = getattr(engines.llm, "prime", None)
    if prime is not None:  # a live call does this while its greeting plays: here, off the virtual clock
        prime(runtime.options.context)
    try:
        runtime.start(0.0)
        k = 0
        idle_since: float | None = None
        previous: np.ndarray | None = None
        while runtime.hangup is None:
            t = k * FRAME_S
            _run_until(runtime, jobs, t)
            if previous is not None:
                runtime.feed(echo.add(previous) if echo else previous, t)
            bot = runtime.pull(t)
            if echo:
                echo.played(bot)
            previous = frames.next()
            if len(previous) < audio.FRAME:
                limit = frames.total / audio.CALL_RATE + config.call.max_duration_s + 30.0
                previous = np.concatenate([previous, silence[len(previous):]])
                if runtime.idle() and not jobs.pending():
                    idle_since = t if idle_since is None else idle_since
                    if t - idle_since >= hangup_after:
                        runtime.caller_hung_up(t)
                else:
                    idle_since = None
            if t > limit:
                raise RuntimeError(f"the simulated call did not end within {limit:.0f}s of call time")
            k += 1
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        runtime.close()
        summary = files.finish(runtime.core, meta={**(meta or {}), "error": error,
                                                   "duration_s": round(runtime.now, 3)},
                               timings=runtime.timings)
    return SimulationResult(summary, out_dir)


class _Frames:
    """The caller's audio, 20 ms at a time, from an array or from blocks of any size: a frame short of
    20 ms at the end, then empty frames."""

    def __init__(self, caller: np.ndarray | Iterable[np.ndarray]) -> None:
        self._blocks: Iterator[np.ndarray] = iter([caller] if isinstance(caller, np.ndarray) else caller)
        self._block = np.zeros(0, np.int16)
        self._at = 0
        self.total = 0  # samples handed out

    def next(self) -> np.ndarray:
        parts: list[np.ndarray] = []
        want = audio.FRAME
        while want:
            if self._at == len(self._block):
                block = next(self._blocks, None)
                if block is None:
                    break
                self._block, self._at = block, 0
                continue
            part = self._block[self._at:self._at + want]
            self._at += len(part)
            want -= len(part)
            parts.append(part)
        frame = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else self._block[:0]
        self.total += len(frame)
        return frame


class EchoPath:
    """The bot's voice coming back into the caller's audio, `delay_ms` late and `gain_db` quieter, the
    way a speakerphone or a PSTN hybrid returns it."""

    def __init__(self, delay_ms: float = 120.0, gain_db: float = -15.0) -> None:
        self.delay = round(delay_ms * audio.CALL_RATE / 1000)
        self.gain = 10 ** (gain_db / 20)
        self._bot = np.zeros(self.delay, np.float32)  # echo still to come, oldest first

    def played(self, frame: np.ndarray) -> None:
        self._bot = np.concatenate([self._bot, frame.astype(np.float32) * self.gain])

    def add(self, caller: np.ndarray) -> np.ndarray:
        """`caller`'s next frame with the echo that falls on it."""
        n = len(caller)
        echo, self._bot = self._bot[:n], self._bot[n:]
        mixed = caller.astype(np.float32) + np.pad(echo, (0, n - len(echo)))
        return np.clip(mixed, -32768, 32767).astype(np.int16)


def _run_until(runtime: CallRuntime, jobs: VirtualJobs, t: float) -> None:
    """Deliver, in time order, every engine result and timer due by `t`."""
    while True:
        due = jobs.next_due()
        timer = runtime.next_timer()
        if due is not None and due <= t and (timer is None or due <= timer):
            item = jobs.pop_due(t)
            assert item is not None
            runtime.on_result(*item)
        elif timer is not None and timer <= t:
            runtime.advance(timer)
        else:
            return
