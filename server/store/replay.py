"""A call's trace.jsonl read back after a crash, to store the call as far as it went.

The conversation core is deterministic: the events a call's trace holds, handed to a new core with the
call's options, make it decide again what it decided then (the same commands, with the same job and
utterance ids). Its report, with the engines' latencies the trace's latency lines give by job id, is
then the summary.json the call would have had at that moment, which `server/callrecord.py` turns into
rows as it does for any call that ended; a `CallWatch` reads the caller's words from the same lines, as
the live call's `CallLog` did. Every command the trace holds is checked
against the one the core gives again: when they differ (the call's options have changed since, or the
trace is not one a call wrote), the replay is not used. The trace's first line names the engines that
served the call (`trace_engines`); the replay passes over it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import typing
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.callrecord import summarize
from server.core import events as ev
from server.core.conversation import Conversation, ConversationOptions
from server.store.calls import CallWatch, engines_of
from server.trace import Trace

log = logging.getLogger(__name__)

_EVENTS: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(ev.Event)}
_NAMES = {*_EVENTS, *(cls.__name__ for cls in typing.get_args(ev.Command))}
_TIME_SLACK = 2e-3  # the trace keeps 4 decimals of each time; what the core computes from them may move


def trace_engines(path: Path, max_lines: int = 8) -> list[dict[str, Any]] | None:
    """The engines that served the call, from the "engines" line that opens a trace.jsonl (written by
    server/callfiles.py), in `calls.engines`' form; None when the trace has none."""
    try:
        with path.open(encoding="utf-8") as f:
            for _, raw in zip(range(max_lines), f, strict=False):
                try:
                    record = json.loads(raw)
                except ValueError:
                    return None
                if isinstance(record, dict) and record.get("kind") == "engines":
                    return engines_of(record)
    except (OSError, UnicodeDecodeError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class Replayed:
    summary: dict[str, Any]  # as summary.json has it, without the call's meta
    heard: list[tuple[float, float, str]]  # the caller's fragments as the live call's CallLog stored them
    end_s: float  # the last event's time


class _Diverged(Exception):
    """The core does not give again what the trace says it gave. Its message names only classes the code
    knows (`_name`), never the trace's own text."""


def replay_trace(path: Path, options: ConversationOptions) -> Replayed | None:
    """The call in `path` (a trace.jsonl) as far as it goes, or None when it has no event or the core
    does not decide again what the trace says it decided."""
    try:
        with path.open(encoding="utf-8") as f:
            return _replay(f, options)
    except OSError:
        return None
    except _Diverged as exc:
        log.warning("the trace in %s cannot be replayed (%s); its call keeps only the caller's words",
                    path.parent, exc)
        return None


def _replay(lines: typing.Iterable[str], options: ConversationOptions) -> Replayed | None:
    core = Conversation(options)
    heard: dict[int, tuple[float, float, str]] = {}
    watch = CallWatch(options.call.rate, lambda first, *fragment: heard.__setitem__(first, fragment))
    capture = _Capture()
    pending: deque[tuple[dict[str, Any], ev.Command]] = deque()  # what the core gave, still to be seen
    end_s: float | None = None
    timings: dict[int, dict[str, float]] = {}
    for raw in lines:
        try:
            record = json.loads(raw)
        except ValueError:
            break  # the line being written when the process died
        kind = record.get("kind") if isinstance(record, dict) else None
        if kind == "event":
            if pending:
                raise _Diverged(f"the core gave a {pending[0][0]['type']} the trace does not have")
            event = _event(record)
            watch.on_event(event)
            pending.extend((capture.record(event.t, c), c) for c in core.handle(event))
            end_s = event.t
        elif kind == "command":
            if not pending:
                raise _Diverged(f"the trace has a {_name(record)} the core did not give")
            expected, command = pending.popleft()
            if not _same(record, expected):
                raise _Diverged(f"the trace has a {_name(record)} where the core gave a "
                                f"{expected['type']}, or with other fields")
            watch.on_command(command)
        elif kind == "latency":
            job = record.get("job")
            if isinstance(job, int):  # a trace of format 1 has latencies without their job
                timings.setdefault(job, {})[str(record.get("type"))] = float(record.get("ms", 0.0))
    if end_s is None:
        return None
    return Replayed(summarize(core.report(), timings), list(heard.values()), end_s)


def _event(record: dict[str, Any]) -> Any:
    cls = _EVENTS.get(str(record.get("type")))
    if cls is None:
        raise _Diverged("an event of an unknown type")
    hints = typing.get_type_hints(cls)
    try:
        return cls(**{f.name: _value(hints[f.name], record[f.name])
                      for f in dataclasses.fields(cls) if f.name in record})
    except (TypeError, ValueError) as exc:
        raise _Diverged(f"a {cls.__name__} that does not read back ({type(exc).__name__})") from None


def _name(record: dict[str, Any]) -> str:
    """The type a trace line names, if it is one the code knows."""
    name = record.get("type")
    return name if isinstance(name, str) and name in _NAMES else "line of an unknown type"


def _value(hint: Any, value: Any) -> Any:
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)  # a name the trace keeps (ev.Timer); an unknown one does not read back
    if not isinstance(value, list):
        return value
    args = typing.get_args(hint)
    item = args[0] if args else None
    if isinstance(item, type) and dataclasses.is_dataclass(item):
        return tuple(item(**v) if isinstance(v, dict) else v for v in value)
    return tuple(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, int | float) and isinstance(b, int | float)
                and not isinstance(a, bool) and not isinstance(b, bool) and abs(a - b) <= _TIME_SLACK)
    return bool(a == b)


class _Capture(Trace):
    """A trace that keeps each line, as trace.jsonl would read back, instead of writing it."""

    def __init__(self) -> None:  # no file
        self._records: list[dict[str, Any]] = []

    def _write(self, record: dict[str, Any]) -> None:
        self._records.append(json.loads(json.dumps(record, ensure_ascii=False)))

    def record(self, t: float, command: Any) -> dict[str, Any]:
        self.command(t, command)
        return self._records.pop()
