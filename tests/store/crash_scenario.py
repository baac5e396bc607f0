"""A call on a shared scenario that a test kills part-way:
`python -m tests.store.crash_scenario DB_URL FOLDER SHARED SCENARIO CUT_S NUMBER REPORT`.

It plays the scenario into the real runtime on a virtual clock (as tests/store/virtual_call.py does) with
a `CallLog` storing it. When the call reaches CUT_S it flushes the trace (as the trace's own once-a-second
flush would have), writes what the call's conversation core would report at that moment to REPORT (the
summary.json the call would have had, for the test to compare with), waits until the store writer has
committed what it holds, prints "ready" and waits to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from server import simulate
from server.audio import read_audio
from server.core.conversation import Conversation
from server.store.calls import CallLog, StoreWriter
from server.store.db import open_database
from server.trace import Trace
from tests.store.virtual_call import run_virtual_call, scenario_config, scenario_engines


class Watched(Conversation):
    """The call's conversation core, kept where the cut can ask it for its report."""

    made: ClassVar[list[Conversation]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Watched.made.append(self)


class Cut(Trace):
    """The call's trace, until the first event at `cut_s`: there the process stops and waits."""

    def __init__(self, inner: Trace, cut_s: float, writer: StoreWriter, report: Path) -> None:
        self.path = inner.path
        self._inner, self._cut_s, self._writer, self._report = inner, cut_s, writer, report

    def event(self, event: Any) -> None:
        if event.t >= self._cut_s:
            self._inner.close()
            [core] = Watched.made
            self._report.write_text(json.dumps(core.report()))
            self._writer.submit(lambda: None).result()
            print("ready", flush=True)
            time.sleep(600)
        self._inner.event(event)

    def command(self, t: float, command: Any) -> None:
        self._inner.command(t, command)

    def latency(self, name: str, ms: float, t: float, job: int | None = None) -> None:
        self._inner.latency(name, ms, t, job)

    def close(self) -> None:
        self._inner.close()


def main(url: str, folder: Path, shared: Path, name: str, *, cut_s: float, number: str, report: Path) -> None:
    vars(simulate)["Conversation"] = Watched  # the name simulate() makes its core with
    db = open_database(url)
    writer = StoreWriter(db)
    writer.start()
    config = scenario_config(shared, name)
    call_log = CallLog(db, writer, uid=folder.name, source="sip", caller_number=number, folder=str(folder),
                       language="en")
    caller = read_audio(shared / "scenarios" / f"{name}.wav")
    run_virtual_call(caller, scenario_engines(config), config, folder, caller_number=number,
                     observe=lambda trace: Cut(call_log.observe(trace), cut_s, writer, report))
    raise AssertionError(f"the call ended before {cut_s} s")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], cut_s=float(sys.argv[5]),
         number=sys.argv[6], report=Path(sys.argv[7]))
