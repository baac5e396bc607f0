"""What the STT has heard of the caller's fragments (rule 2).

One record per fragment revision: when the caller goes on inside a fragment its revision moves, and what
was asked or heard of the old one no longer counts. `Hearing` starts the transcription jobs, takes their
results and keeps summary.json's "caller_fragments"; what the words mean is the conversation's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.core import events as ev
from server.core.desk import Desk, Job
from server.core.segmenter import Fragment


@dataclass(slots=True)
class Heard:
    """One revision of a caller fragment, as far as the STT has heard it."""

    asked: bool = False  # sent to the STT; a failure leaves it asked
    in_flight: bool = False
    text: str | None = None  # its transcript, once one came back ("" when the STT failed for good)
    confidence: float = 1.0  # how sure the STT was of `text`
    stt_job: int | None = None  # the job whose transcript `text` is


class Hearing:
    def __init__(self, desk: Desk, rate: int) -> None:
        self._desk = desk
        self.rate = rate
        self._fragments: dict[int, Fragment] = {}
        self._heard: dict[tuple[int, int], Heard] = {}  # by (fragment, revision)
        self._closed: list[dict[str, Any]] = []  # each fragment as it closed, with its id

    def of(self, frag: Fragment) -> Heard:
        return self._heard.setdefault((frag.id, frag.revision), Heard())

    def track(self, frag: Fragment) -> None:
        self._fragments[frag.id] = frag

    def stt_job(self, fragment: int | None) -> int | None:
        """The job whose transcript gave fragment `fragment`'s words, as it stands now."""
        frag = self._fragments.get(fragment) if fragment is not None else None
        heard = self._heard.get((frag.id, frag.revision)) if frag is not None else None
        return heard.stt_job if heard is not None else None

    def transcribe(self, frag: Fragment, speculative: bool, now: int, digits: bool = False) -> None:
        """Ask for `frag`'s words: up to `now` (a sample) while its pause may still grow, else all of it;
        `digits`: they are likely digits of a number."""
        heard = self.of(frag)
        heard.asked = heard.in_flight = True
        end = now if speculative else frag.end
        job = self._desk.new_job(Job("stt", frag.id, frag.revision, speculative))
        self._desk.emit(ev.Transcribe(job, frag.start, end, speculative, digits))

    def close(self, frag: Fragment) -> Heard:
        self.track(frag)
        heard = self.of(frag)
        self._closed.append({"start_s": round(frag.voice_start / self.rate, 3),
                             "end_s": round(frag.voice_end / self.rate, 3), "text": heard.text or "",
                             "id": frag.id})
        return heard

    def answered(self, job: Job) -> Fragment | None:
        """Job `job` came back, with words or failed: the fragment it was for, unless the caller went on
        in it since (then its result counts for nothing)."""
        self._heard.setdefault((job.fragment, job.revision), Heard()).in_flight = False
        frag = self._fragments.get(job.fragment)
        return frag if frag is not None and frag.revision == job.revision else None

    def transcript(self, frag: Fragment, job: int, text: str, confidence: float) -> None:
        heard = self.of(frag)
        heard.text, heard.stt_job, heard.confidence = text, job, confidence
        if frag.closed:
            for record in self._closed:
                if record["id"] == frag.id:
                    record["text"] = text

    def report(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in f.items() if k != "id"} for f in self._closed]
