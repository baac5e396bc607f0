"""Engine calls off the event loop: one worker thread per engine, results back in order.

A job is a function that yields results (once for STT or the judge, a stream for the LLM and TTS). Two
runners share the worker threads and differ only in when a result counts as having arrived:
- `ThreadedJobs` (live calls): when the worker hands it to the event loop.
- `VirtualJobs` (simulation): at the call time the engine would have needed, i.e. the job's start plus
  the measured compute time, or plus an injected latency (then for all of the job's results, so the run
  is the same however busy the machine is), queueing behind the engine's earlier jobs.
A job that raises, or stays silent past its timeout, ends with a `Failed` result; a stalled worker is
replaced so the engine keeps serving later jobs. Engine time (how long a job took, how long it has been
silent) is read from an `engine_clock` given from outside: the monotonic clock, unless a test drives
its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

Work = Callable[[], Iterator[Any]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Failed:
    """A job that ended in error. `kind` (the exception's type, or "Stalled") may go to the log;
    `detail` is the engine's own text, which can quote the caller: it belongs in the call's files only."""

    kind: str
    detail: str = ""

    @classmethod
    def of(cls, exc: BaseException) -> Failed:
        return cls(type(exc).__name__, str(exc))

    @classmethod
    def stalled(cls, engine: str, timeout_s: float) -> Failed:
        return cls("Stalled", f"{engine} gave nothing for {timeout_s:g}s")

    @property
    def error(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


@dataclass(frozen=True, slots=True)
class Finished:
    pass


FINISHED = Finished()


class Deliver(Protocol):
    def __call__(self, job: int, item: Any, t: float, elapsed: float) -> None:
        """`item` of `job` arrived at call time `t`, `elapsed` seconds of engine time after it started."""


class JobRunner(Protocol):
    def submit(self, job: int, engine: str, work: Work, timeout_s: float, t: float) -> None: ...
    def cancel(self, job: int, t: float) -> None: ...
    def close(self) -> None: ...


class _Workers:
    """One single-thread executor per engine name, replaceable when a job stalls it."""

    def __init__(self) -> None:
        self._pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def pool(self, engine: str) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            pool = self._pools.get(engine)
            if pool is None:
                pool = self._pools[engine] = concurrent.futures.ThreadPoolExecutor(1, f"standin-{engine}")
            return pool

    def replace(self, engine: str) -> None:
        with self._lock:
            pool = self._pools.pop(engine, None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=False)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


def _drain(work: Work, cancelled: threading.Event, emit: Callable[[Any, float], None], clock: Clock) -> None:
    """Run `work` in a worker thread, passing each result with the engine seconds since the start."""
    started = clock()
    stream = None
    try:
        stream = work()
        for item in stream:
            if cancelled.is_set():
                return
            emit(item, clock() - started)
        if not cancelled.is_set():
            emit(FINISHED, clock() - started)
    except Exception as exc:
        if not cancelled.is_set():
            emit(Failed.of(exc), clock() - started)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # a cancelled generator stops generating now


class Watchdog:
    """When each running job will have been silent too long, on a clock read from outside. It keeps no
    timer and no thread: whoever holds it asks what is `overdue` when the clock may have moved."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._due: dict[int, tuple[float, str, float]] = {}  # job -> (deadline, engine, timeout_s)

    def arm(self, job: int, engine: str, timeout_s: float) -> None:
        """`job` has just started or given a result: it may now be silent for `timeout_s`."""
        self._due[job] = (self.clock() + timeout_s, engine, timeout_s)

    def disarm(self, job: int) -> None:
        self._due.pop(job, None)

    def next_due(self) -> float | None:
        return min((due for due, _, _ in self._due.values()), default=None)

    def overdue(self) -> list[tuple[int, str, float]]:
        """The jobs whose silence ran out by now, as (job, engine, timeout_s), disarmed."""
        now = self.clock()
        late = [(job, engine, timeout_s) for job, (due, engine, timeout_s) in self._due.items() if due <= now]
        for job, _, _ in late:
            del self._due[job]
        return late


class ThreadedJobs:
    """Live runner: results reach `deliver` on the event loop, stamped by `clock()` (the call's time).
    The watchdog reads `engine_clock`; the loop wakes it when that clock should have reached the next
    deadline, and `check()` wakes it at once (after a test moved its own clock)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Deliver, clock: Clock, *,
                 engine_clock: Clock = time.monotonic) -> None:
        self._loop = loop
        self._deliver = deliver
        self._clock = clock
        self._engine_clock = engine_clock
        self._workers = _Workers()
        self._cancelled: dict[int, threading.Event] = {}
        self._watchdog = Watchdog(engine_clock)
        self._wake: asyncio.TimerHandle | None = None

    def submit(self, job: int, engine: str, work: Work, timeout_s: float, t: float) -> None:
        cancelled = self._cancelled[job] = threading.Event()

        def emit(item: Any, elapsed: float) -> None:
            self._loop.call_soon_threadsafe(self._arrive, job, engine, item, timeout_s, elapsed)

        self._workers.pool(engine).submit(_drain, work, cancelled, emit, self._engine_clock)
        self._watchdog.arm(job, engine, timeout_s)
        self._schedule()

    def _schedule(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        due = self._watchdog.next_due()
        if due is not None:
            self._wake = self._loop.call_later(max(0.0, due - self._engine_clock()), self.check)

    def check(self) -> None:
        """Fail every job that has been silent past its timeout by the engine clock's reading now."""
        self._wake = None
        for job, engine, timeout_s in self._watchdog.overdue():
            self._stalled(job, engine, timeout_s)
        self._schedule()

    def _arrive(self, job: int, engine: str, item: Any, timeout_s: float, elapsed: float) -> None:
        cancelled = self._cancelled.get(job)
        if cancelled is None or cancelled.is_set():
            return
        if isinstance(item, Finished | Failed):
            self._forget(job)
        else:
            self._watchdog.arm(job, engine, timeout_s)
        self._deliver(job, item, self._clock(), elapsed)

    def _stalled(self, job: int, engine: str, timeout_s: float) -> None:
        if job not in self._cancelled:
            return
        self._cancelled[job].set()
        self._forget(job)
        self._workers.replace(engine)
        self._deliver(job, Failed.stalled(engine, timeout_s), self._clock(), timeout_s)

    def _forget(self, job: int) -> None:
        self._cancelled.pop(job, None)
        self._watchdog.disarm(job)

    def cancel(self, job: int, t: float) -> None:
        event = self._cancelled.get(job)
        if event is not None:
            event.set()
        self._forget(job)

    def close(self) -> None:
        for job in list(self._cancelled):
            self.cancel(job, 0.0)
        if self._wake is not None:
            self._wake.cancel()
            self._wake = None
        self._workers.close()


@dataclass(order=True, slots=True)
class _Due:
    t: float
    seq: int
    job: int = field(compare=False)
    item: Any = field(compare=False)
    elapsed: float = field(compare=False)


class VirtualJobs:
    """Simulation runner: each job runs to the end at once, in its worker thread, and its results are
    released at the virtual times they would have arrived. A job silent for longer than its timeout of
    engine time (by `engine_clock`, or waiting for it in real time) fails at that point of its run."""

    def __init__(self, latency_s: dict[str, float] | None = None, *,
                 engine_clock: Clock = time.monotonic) -> None:
        self.latency_s = dict(latency_s or {})
        self._engine_clock = engine_clock
        self._workers = _Workers()
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._busy_until: dict[str, float] = {}
        self._engine_of: dict[int, str] = {}
        self._last_t: dict[int, float] = {}  # job -> time of its last result

    def submit(self, job: int, engine: str, work: Work, timeout_s: float, t: float) -> None:
        arrived: queue.SimpleQueue[tuple[Any, float]] = queue.SimpleQueue()
        cancelled = threading.Event()
        self._workers.pool(engine).submit(
            _drain, work, cancelled, lambda item, elapsed: arrived.put((item, elapsed)), self._engine_clock)
        results: list[tuple[Any, float]] = []
        last = 0.0  # engine seconds into the job of its latest result
        while True:
            try:
                item, elapsed = arrived.get(timeout=timeout_s)
            except queue.Empty:
                item, elapsed = None, float("inf")  # hung, whatever the engine clock says
            if elapsed - last > timeout_s:
                cancelled.set()
                self._workers.replace(engine)
                results.append((Failed.stalled(engine, timeout_s), last + timeout_s))
                break
            results.append((item, elapsed))
            last = elapsed
            if isinstance(item, Finished | Failed):
                break
        start = max(t, self._busy_until.get(engine, 0.0))
        injected = self.latency_s.get(engine)
        at = start
        for item, elapsed in results:
            # An injected latency makes the run independent of how busy this machine is.
            at = start + (injected if injected is not None and not isinstance(item, Failed) else elapsed)
            heapq.heappush(self._due, _Due(at, next(self._seq), job, item, at - start))
        self._busy_until[engine] = at
        self._engine_of[job] = engine
        self._last_t[job] = at

    def cancel(self, job: int, t: float) -> None:
        engine = self._engine_of.pop(job, None)
        if engine is None:
            return
        last = self._last_t.pop(job)
        if self._busy_until.get(engine) == last and last > t:
            self._busy_until[engine] = t  # the worker stops on this job now
        self._due = [d for d in self._due if d.job != job]
        heapq.heapify(self._due)

    def next_due(self) -> float | None:
        return self._due[0].t if self._due else None

    def pop_due(self, until: float) -> tuple[int, Any, float, float] | None:
        if self._due and self._due[0].t <= until:
            d = heapq.heappop(self._due)
            if isinstance(d.item, Finished | Failed):
                self._engine_of.pop(d.job, None)
                self._last_t.pop(d.job, None)
            return d.job, d.item, d.t, d.elapsed
        return None

    def pending(self) -> bool:
        return bool(self._due)

    def close(self) -> None:
        self._workers.close()
