"""The core's outbox and job table.

`Desk` is what every part of the core writes to: the commands of the event being handled, and the table
of engine jobs the core still wants (a result for a job not in it is ignored, so cancelling is always
safe).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from server.core import events as ev


@dataclass(slots=True)
class Job:
    kind: str  # stt | judge | llm | tts: the engine that runs it
    fragment: int = 0
    revision: int = 0
    speculative: bool = False
    version: int = 0
    utterance: int = 0


class Desk:
    def __init__(self) -> None:
        self.out: list[ev.Command] = []
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def emit(self, command: ev.Command) -> None:
        self.out.append(command)

    def note(self, kind: str, **data: object) -> None:
        self.emit(ev.Note(kind, tuple(data.items())))

    def new_id(self) -> int:
        return next(self._ids)

    def new_job(self, job: Job) -> int:
        job_id = self.new_id()
        self.jobs[job_id] = job
        return job_id

    def cancel(self, job_id: int | None) -> None:
        if job_id is not None and self.jobs.pop(job_id, None) is not None:
            self.emit(ev.Cancel(job_id))
