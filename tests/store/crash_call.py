"""A call that a test kills: `python -m tests.store.crash_call DB_URL FOLDER NUMBER PHRASE...`.

It opens the database, starts a call's `CallLog` with its trace in FOLDER, feeds the trace what the runtime
writes for each PHRASE the caller says (a Transcribe command, then its TranscriptReady), waits until the
store writer has committed them, prints "ready" and waits to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from server.core import events as ev
from server.store.calls import CallLog, StoreWriter
from server.store.db import open_database
from server.trace import Trace


def main(url: str, folder: Path, number: str, phrases: list[str]) -> None:
    db = open_database(url)
    writer = StoreWriter(db)
    writer.start()
    folder.mkdir(parents=True, exist_ok=True)
    call_log = CallLog(db, writer, uid=folder.name, source="sip", caller_number=number, folder=str(folder),
                       language="en")
    trace = call_log.observe(Trace(folder / "trace.jsonl", flush_every_s=0.0))
    trace.event(ev.CallStarted(0.0))
    t = 0.5
    for job, phrase in enumerate(phrases, start=1):
        end = t + 0.3 * len(phrase.split())
        trace.command(end + 0.064, ev.Transcribe(job, round(t * 16000), round(end * 16000), speculative=True))
        trace.latency("stt_ms", 150.0, end + 0.214)
        trace.event(ev.TranscriptReady(end + 0.214, job, phrase))
        t = end + 1.0
    trace.event(ev.TimerFired(t, ev.Timer.SILENCE))
    writer.submit(lambda: None).result()
    print("ready", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4:])
