"""What the SIP benchmarks share (benchmarks/sip_overhead.py, benchmarks/sip_calls.py, benchmarks/sip_all.py).

The engines standin runs them with, what standin's side records of each call it serves (pull times,
playout underruns), SipOptions on loopback, free UDP ports, and the command line and JSON they share:
each script writes {"machine": ..., PART: ...} with its parts, benchmarks/sip_all.py both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from server.config import Config, load
from server.core.events import PlayoutProgress
from server.playout import Playout
from server.runtime import CallRuntime, Engines
from server.serve import answer

if TYPE_CHECKING:
    from sip.options import SipOptions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RATE, FRAME, FRAME_S = 16000, 320, 0.02

log = logging.getLogger("benchmarks.sip")

# A part of the results: (the parsed arguments, a working folder) -> its JSON object.
Measure = Callable[[argparse.Namespace, Path], Awaitable[dict[str, Any]]]


def config(tsv: Path, **tables: dict[str, Any]) -> Config:
    """The engines `standin serve` would use for a test line: Silero VAD, transcript STT (`tsv`), rules
    judge, scripted replies, espeak, no greeting; `tables` add to or change [section] settings."""
    merged: dict[str, dict[str, Any]] = {
        "call": {"greeting": ""}, "vad": {"engine": "silero"},
        "stt": {"engine": "transcript", "transcript": str(tsv)}, "judge": {"engine": "rules"},
        "llm": {"engine": "script"}, "tts": {"engine": "espeak"}}
    for name, values in tables.items():
        merged.setdefault(name, {}).update(values)
    return load(None, merged)


# ---------------------------------------------------------------------------- what standin's side records


@dataclass
class CallStats:
    """One call as standin served it: the pull times, the playout's underruns, the SipCall counters."""

    call: Any
    pulls: list[float] = field(default_factory=list)
    runtime: CallRuntime | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    finished_at: float | None = None

    def lateness(self) -> np.ndarray:
        """How far each pull came behind its call's 20 ms schedule (anchored at the earliest)."""
        if not self.pulls:
            return np.zeros(0)
        behind = np.array(self.pulls) - np.arange(len(self.pulls)) * FRAME_S
        late: np.ndarray = behind - behind.min()
        return late

    def underruns(self) -> int | None:
        """None when the runtime could not be found (nothing measured)."""
        return None if self.runtime is None else getattr(self.runtime.playout, "bench_underruns", 0)


class Served:
    """on_call for the endpoint: times every pull of each call, then runs it as `standin serve` does."""

    def __init__(self) -> None:
        self.engines: Engines | None = None
        self.config: Config | None = None
        self.calls_dir = Path()
        self.calls: list[CallStats] = []
        self.changed = asyncio.Event()

    async def wait_finished(self, calls: int, timeout_s: float) -> None:
        """Until `calls` calls were served and all of them are over (or `timeout_s`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while len(self.calls) < calls or any(c.finished_at is None for c in self.calls):
                    self.changed.clear()
                    await self.changed.wait()

    async def __call__(self, call: Any) -> None:
        stats = CallStats(call)
        self.calls.append(stats)
        attach = call.attach

        def timed_attach(pull: Any) -> None:
            stats.runtime = _runtime_of(pull)

            def timed() -> np.ndarray:
                stats.pulls.append(time.monotonic())
                return pull()  # type: ignore[no-any-return]

            attach(timed)

        call.attach = timed_attach
        assert self.engines is not None and self.config is not None
        try:
            stats.summary = await answer(call, self.engines, self.config, self.calls_dir)
        except Exception as exc:
            stats.error = f"{type(exc).__name__}: {exc}"
        finally:
            stats.finished_at = time.monotonic()
            self.changed.set()


def _runtime_of(pull: Any) -> CallRuntime | None:
    """The CallRuntime behind LiveCall's pull (a closure over it), for its playout's counters."""
    for cell in getattr(pull, "__closure__", None) or ():
        with contextlib.suppress(ValueError):
            if isinstance(cell.cell_contents, CallRuntime):
                return cell.cell_contents
    return None


def count_underruns() -> None:
    """Wrap Playout (in this process only) to count underruns: frames that came out short while the
    utterance at the head of the line was playing (started, not paused or stopped, all its audio so far
    played) and then more audio came for it. Short frames at an utterance's real end are not counted."""
    pull, add = Playout.pull, Playout.add

    def counted_pull(self: Playout, t: float) -> Any:
        frame, notes = pull(self, t)
        played = sum(n.last - n.first for n in notes if isinstance(n, PlayoutProgress))
        if played < self.frame:
            with self._lock:
                u = self._queue[0] if self._queue else None
                if u is not None and not u.paused and u.stop_at is None and 0 < u.length <= u.pos:
                    starved = self.__dict__.setdefault("bench_starved", defaultdict(int))
                    starved[u.id] += 1
        return frame, notes

    def counted_add(self: Playout, utterance: int, pcm: np.ndarray) -> None:
        self.__dict__.setdefault("bench_underruns", 0)
        if len(pcm):
            with self._lock:
                starved = self.__dict__.get("bench_starved", {}).pop(utterance, 0)
            self.bench_underruns += starved  # type: ignore[attr-defined]
        add(self, utterance, pcm)

    Playout.pull = counted_pull  # type: ignore[method-assign]
    Playout.add = counted_add  # type: ignore[method-assign]


# ---------------------------------------------------------------------------- the endpoint on loopback


def loopback_options(rtp_ports: int, max_calls: int, **overrides: Any) -> SipOptions:
    """SipOptions for a SipEndpoint on 127.0.0.1 (UDP), taking calls from there only."""
    from sip.options import SipOptions

    return SipOptions(**{"listen": f"127.0.0.1:{free_port_pair()}", "transports": ("udp",),
                         "rtp_port_start": free_port_pair(rtp_ports), "rtp_port_count": rtp_ports,
                         "allow_from": ("127.0.0.1",), "max_calls": max_calls, **overrides})


def free_port_pair(count: int = 2) -> int:
    """An even UDP port with `count` free ports from it on 127.0.0.1."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            start: int = probe.getsockname()[1] & ~1
        if start + count < 65000 and all(_udp_free(p) for p in range(start, start + count)):
            return start
    raise RuntimeError("no free UDP ports")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------- command line and JSON


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the arguments every SIP benchmark takes; its description is `doc`'s first line."""
    found = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    found.add_argument("--json", type=Path, help="also write the results here")
    found.add_argument("--work", type=Path, help="keep the calls' files here (default: a temporary folder)")
    return found


def parse(found: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments, with logging set up."""
    args = found.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    return args


def measure_and_write(args: argparse.Namespace, parts: dict[str, Measure]) -> None:
    """Each part in turn (in one working folder), then the results as JSON on stdout and in --json."""
    # pjlib prints its first lines to stdout before its log settings apply: keep stdout for the JSON.
    sys.stdout.flush()
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        results = asyncio.run(_measure(args, parts))
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
        os.close(stdout)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


async def _measure(args: argparse.Namespace, parts: dict[str, Measure]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name, measure in parts.items():
            results[name] = await measure(args, work)
    return results
