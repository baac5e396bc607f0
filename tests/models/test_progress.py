"""What a pull shows: plain progress lines for a log or a pipe, a bar redrawn in place on a terminal."""

from __future__ import annotations

import io

from models import progress


def test_progress_lines_and_bar() -> None:
    now = [0.0]
    out = io.StringIO()
    lines = progress.LineProgress(out, clock=lambda: now[0])
    lines.begin("[1/1] big.bin", 1000)
    for _ in range(10):
        now[0] += 1.0
        lines.advance(100)
    lines.end("ok")
    text = out.getvalue().splitlines()
    assert text[0] == "[1/1] big.bin: 1.0 kB"
    assert text[1].startswith("[1/1] big.bin: 10%") and "100 B/s" in text[1] and "ETA 0:09" in text[1]
    assert text[-2].startswith("[1/1] big.bin: 100%") and text[-1] == "[1/1] big.bin: ok"
    assert isinstance(progress.make_progress(out), progress.LineProgress)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = progress.make_progress(tty)
    assert isinstance(bar, progress.BarProgress)
    bar.begin("f", 2000, 1000)
    bar.advance(1000)
    bar.end("ok")
    assert "\r" in tty.getvalue() and "[" + "#" * 24 + "]" in tty.getvalue()
