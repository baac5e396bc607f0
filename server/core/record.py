"""The call's record: what the core decided, as commands with the ids of what it concerns.

The runtime writes them to the trace and carries nothing out; `server/callrecord.py` reads the core's
report, which says the same, to make summary.json and the database rows. Nothing downstream has to work
out which job served which reply from the order of the trace's lines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReplyJobs:
    """The engine jobs behind one reply: the transcript whose words were the caller's last line, the
    judge that read that story version, the reply itself and the synthesis of its first clause."""

    version: int
    stt: int | None
    judge: int | None
    llm: int
    tts: int | None = None


@dataclass(frozen=True, slots=True)
class ReplyStarted:
    """A reply's first audio reached the line."""

    utterance: int
    jobs: ReplyJobs


@dataclass(frozen=True, slots=True)
class Decided:
    """Whose turn it is after the caller's words at story `version`."""

    version: int
    verdict: str  # COMPLETE | WAIT
    by: str  # judge | shortcut | backstop | dictation
    p_complete: float | None = None


@dataclass(frozen=True, slots=True)
class BargedIn:
    """The caller's voice made `utterance` stop at the end of its word."""

    utterance: int
    fragment: int


@dataclass(frozen=True, slots=True)
class CutOff:
    """`utterance` left the line for good after `words_heard` of its `words_meant` words."""

    utterance: int
    words_heard: int
    words_meant: int


@dataclass(frozen=True, slots=True)
class Ended:
    reason: str


Record = ReplyStarted | Decided | BargedIn | CutOff | Ended
