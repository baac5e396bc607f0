"""How a pull reports: a bar redrawn in place on a terminal, plain lines in a log or a pipe, or nothing.

`make_progress` picks the bar or the lines for a stream; both show bytes, rate and ETA of the file
being fetched. `human_size` writes byte counts the way Hugging Face shows them (340 B, 1.6 GB).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

__all__ = ["BarProgress", "LineProgress", "NullProgress", "Progress", "human_size", "make_progress"]


class Progress(Protocol):
    """How a pull reports: one `begin` ... `end` per file, `advance` as bytes arrive."""

    def begin(self, label: str, total: int, done: int = 0) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self, note: str) -> None: ...

    def message(self, text: str) -> None: ...


class NullProgress:
    def begin(self, label: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self, note: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class _Meter:
    """Bytes, rate and ETA of the file being fetched."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.label, self.total, self.done, self.start_done, self.t0 = "", 0, 0, 0, 0.0

    def begin(self, label: str, total: int, done: int) -> None:
        self.label, self.total, self.done, self.start_done, self.t0 = label, total, done, done, self.clock()

    def rate(self) -> float:
        elapsed = self.clock() - self.t0
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def figures(self) -> str:
        rate = self.rate()
        eta = _clock_time((self.total - self.done) / rate) if rate > 0 else "--:--"
        return f"{human_size(self.done)} / {human_size(self.total)}  {human_size(rate)}/s  ETA {eta}"


class BarProgress(_Meter):
    """A bar redrawn in place, for a terminal."""

    def __init__(self, stream: TextIO, width: int = 24, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.stream, self.width, self.drawn_at = stream, width, 0.0

    def begin(self, label: str, total: int, done: int = 0) -> None:
        super().begin(label, total, done)
        self._draw(force=True)

    def advance(self, n: int) -> None:
        self.done += n
        self._draw()

    def end(self, note: str) -> None:
        self.stream.write(f"\r\033[K{self.label}  {note}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(f"\r\033[K{text}\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.drawn_at < 0.1 and self.done < self.total:
            return
        self.drawn_at = now
        filled = self.width * self.done // self.total if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r\033[K{self.label}  [{bar}] {self.figures()}")
        self.stream.flush()


class LineProgress(_Meter):
    """Plain lines (a log, a pipe): one every tenth of a file, or every `every_s` seconds."""

    def __init__(self, stream: TextIO, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.stream, self.every_s, self.step, self.said_at = stream, every_s, 0, 0.0

    def begin(self, label: str, total: int, done: int = 0) -> None:
        super().begin(label, total, done)
        self.step, self.said_at = self._tenth(), self.clock()
        start = f" (resuming at {human_size(done)})" if done else ""
        self._say(f"{label}: {human_size(total)}{start}")

    def advance(self, n: int) -> None:
        self.done += n
        tenth, now = self._tenth(), self.clock()
        if tenth > self.step or now - self.said_at >= self.every_s:
            self.step, self.said_at = tenth, now
            percent = self.done * 100 // self.total if self.total else 100
            self._say(f"{self.label}: {percent}%  {self.figures()}")

    def end(self, note: str) -> None:
        self._say(f"{self.label}: {note}")

    def message(self, text: str) -> None:
        self._say(text)

    def _tenth(self) -> int:
        return self.done * 10 // self.total if self.total else 10

    def _say(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def make_progress(stream: TextIO | None = None) -> Progress:
    """A bar on a terminal, plain lines otherwise."""
    stream = stream if stream is not None else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return BarProgress(stream) if isatty is not None and isatty() else LineProgress(stream)


def human_size(n: float) -> str:
    """Bytes in decimal units, as Hugging Face shows them: 340 B, 7.1 kB, 1.6 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _clock_time(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
