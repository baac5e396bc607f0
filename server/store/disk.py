"""Whether the calls folder can take another call: `DiskGuard`.

A call is answered only when its recording and trace can be written, or it is not answered at all: the
SIP endpoint asks `admit()` for every incoming call before it answers, and a reason back means 503. The
answer must come at once (the SIP thread waits for it), so `admit()` only reads what the guard already
knows: a check in the background (`watching()`: free space and inodes with statvfs, write permission)
and the last write that failed in a call (`write_failed`, which the call's files report). After a
failed write the folder counts as full until a check both finds room and manages to write there.

Each call turned away is reported to `on_refuse` (the owner stores it and, for the first one since the
folder was last writable, tells the owner why through the outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_FREE_BYTES = 64 * MIB  # a 3-minute call's recording is 11.5 MB; room for a few at once
PROBE_NAME = ".standin-write-probe"


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str  # short, for the SIP refusal and the log
    advice: str  # for the owner: what is wrong and what to do


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call turned away before it was answered."""

    reason: str
    advice: str
    first: bool  # the first since the calls folder was last writable


class DiskGuard:
    def __init__(self, calls_dir: Path, *, min_free_bytes: int = MIN_FREE_BYTES, check_every_s: float = 5.0,
                 probe_bytes: int = 64 * 1024, on_refuse: Callable[[Refusal], None] | None = None) -> None:
        self.calls_dir = calls_dir
        self.min_free_bytes = min_free_bytes
        self.check_every_s = check_every_s
        self.probe_bytes = probe_bytes
        self.on_refuse = on_refuse
        self._problem: Problem | None = None
        self._write_error: OSError | None = None  # a call's write that failed since the last good check
        self._told = False  # on_refuse has had this episode's first refusal
        self._lock = threading.Lock()

    @property
    def problem(self) -> Problem | None:
        return self._problem

    def admit(self) -> str | None:
        """None when a new call may be answered, else a short reason to refuse it (503). Never blocks on
        the disk: called on the SIP thread for every incoming call."""
        problem = self._problem
        if problem is None:
            return None
        with self._lock:
            first, self._told = not self._told, True
        log.warning("a call is turned away (503): %s", problem.reason)
        if self.on_refuse is not None:
            try:
                self.on_refuse(Refusal(problem.reason, problem.advice, first))
            except Exception as exc:  # the refusal stands; only its record is missing
                log.error("a call turned away could not be recorded (%s)", type(exc).__name__)
        return problem.reason

    def write_failed(self, exc: OSError) -> None:
        """A call could not write its files: refuse new calls until a check finds the folder writable.
        Safe from any thread."""
        self._write_error = exc
        self._set(_problem_of(exc, self.calls_dir))

    def check(self) -> Problem | None:
        """Look at the calls folder now (blocking: statvfs, and a small write after a failed one) and
        update what `admit` answers. Returns the problem, if any."""
        problem = self._look()
        if problem is None and self._write_error is not None:
            problem = self._try_write()
            if problem is None:
                self._write_error = None
        self._set(problem)
        return problem

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[DiskGuard]:
        """Check now, then every `check_every_s` in the background, until the block ends."""
        await asyncio.to_thread(self.check)

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.check_every_s)
                try:
                    await asyncio.to_thread(self.check)
                except Exception:  # the guard keeps what it last knew, and looks again next time
                    log.exception("checking the calls folder failed")

        task = asyncio.create_task(loop(), name="standin-disk-guard")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ internals

    def _set(self, problem: Problem | None) -> None:
        with self._lock:
            before, self._problem = self._problem, problem
            if problem is None:
                self._told = False
        if problem is not None and before is None:
            log.warning("new calls are turned away (503) until the calls folder %s can take them: %s",
                        self.calls_dir, problem.reason)
        elif problem is None and before is not None:
            log.info("the calls folder %s can take calls again", self.calls_dir)

    def _look(self) -> Problem | None:
        try:
            self.calls_dir.mkdir(parents=True, exist_ok=True)
            st = os.statvfs(self.calls_dir)
        except OSError as exc:
            return _problem_of(exc, self.calls_dir)
        if not os.access(self.calls_dir, os.W_OK | os.X_OK):
            return _problem_of(PermissionError(errno.EACCES, os.strerror(errno.EACCES)), self.calls_dir)
        free = st.f_bavail * st.f_frsize
        if free < self.min_free_bytes:
            return _full(self.calls_dir, f"{free / MIB:.1f} MiB free, {self.min_free_bytes / MIB:.0f} MiB "
                                         "needed")
        if st.f_files > 0 and st.f_favail == 0:
            return _full(self.calls_dir, "no free inodes")
        return None

    def _try_write(self) -> Problem | None:
        probe = self.calls_dir / PROBE_NAME
        try:
            with probe.open("wb") as f:
                f.write(b"\0" * self.probe_bytes)
        except OSError as exc:
            return _problem_of(exc, self.calls_dir)
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        return None


def _full(calls_dir: Path, detail: str) -> Problem:
    return Problem("calls folder disk full",
                   f"The disk holding the calls folder {calls_dir} is full ({detail}). Free space on it, "
                   "or set [storage] calls_dir to a folder on a larger disk.")


def _problem_of(exc: OSError, calls_dir: Path) -> Problem:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _full(calls_dir, exc.strerror or "no space left")
    return Problem("calls folder not writable",
                   f"standin cannot write to its calls folder {calls_dir} ({exc.strerror or exc}). Make it "
                   "writable for the user standin runs as, or set [storage] calls_dir to one that is.")
