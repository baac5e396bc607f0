"""trace.jsonl: every event and command of a call, one JSON object a line, written as it happens.

Lines reach the file at least once a second and at close, so a call that dies leaves its trace behind.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import IO, Any

import numpy as np


def _plain(value: Any, digits: int | None = 4) -> Any:
    """`value` as JSON holds it; floats to `digits` decimals, or exact (repr round-trips) when None."""
    if isinstance(value, float | np.floating):
        return float(value) if digits is None else round(float(value), digits)
    if isinstance(value, tuple | list):
        return [_plain(v, digits) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_plain(v, digits) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), digits) for f in dataclasses.fields(value)}
    if isinstance(value, np.integer):
        return int(value)
    return value


class Trace:
    def __init__(self, path: Path, flush_every_s: float = 1.0) -> None:
        self.path = path
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._flush_every = flush_every_s
        self._last_flush = time.monotonic()

    def event(self, event: Any) -> None:
        # Exact: a replay feeds these back to the core, and a VAD probability or a time rounded across
        # one of its thresholds would make it decide otherwise.
        self._write({"kind": "event", "type": type(event).__name__, **_plain(event, None)})

    def command(self, t: float, command: Any) -> None:
        fields = _plain(command)
        if type(command).__name__ == "Note":
            fields = {"kind_of_note": fields["kind"], **{k: _plain(v) for k, v in command.data}}
        self._write({"kind": "command", "t": round(t, 4), "type": type(command).__name__, **fields})

    def latency(self, name: str, ms: float, t: float, job: int | None = None) -> None:
        """How long engine job `job` took to its first result (or, for llm_first_clause_ms, reply job
        `job` to its first clause)."""
        self._write({"kind": "latency", "type": name, "t": round(t, 4), "ms": round(ms, 1), "job": job})

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        now = time.monotonic()
        if now - self._last_flush >= self._flush_every:
            self._file.flush()
            self._last_flush = now

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that `path` holds either the old or the new content, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
    tmp.replace(path)
