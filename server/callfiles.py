"""The files every call leaves in its folder: call.wav, trace.jsonl and summary.json.

The recording and the trace are written while the call runs, so a crash leaves them behind; the summary
is written once, atomically, when the call ends. Given the engines' provenance (server/provenance.py),
the trace's first line (kind "engines") and the summary's "engines" say which engines and model files
served the call, so even a call cut short by a crash tells it.

A live call must not end because its files cannot be written (a full disk, a folder gone read-only):
with `keep_going=True` a write that fails is reported once (a warning, and `on_write_error`), the file
is given up, and the call goes on; what the caller says still reaches the database through the trace's
observers. `standin simulate` keeps the default: its files are what it is run for, so it fails.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.audio import StereoWavWriter
from server.callrecord import Timings, summarize
from server.core.conversation import Conversation
from server.trace import Trace, write_json_atomic

log = logging.getLogger(__name__)


class CallFiles:
    def __init__(self, folder: Path, *, keep_going: bool = False,
                 on_write_error: Callable[[OSError], None] | None = None,
                 engines: list[dict[str, Any]] | None = None) -> None:
        self.folder = folder
        self.keep_going = keep_going
        self.on_write_error = on_write_error
        self.engines = engines  # the provenance's JSON form, for the trace's first line and the summary
        self.lost: OSError | None = None  # the first write that failed, when keep_going
        self.trace: Trace
        self.recorder: StereoWavWriter | None
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not keep_going:
                raise OSError(f"cannot create the call folder {folder}: {exc.strerror or exc}") from exc
            self.failed(exc)
            self.trace, self.recorder = _KeptTrace(None, self), None
            return
        if not keep_going:
            self.trace = Trace(folder / "trace.jsonl")
            try:
                self._engines_line()
                self.recorder = StereoWavWriter(folder / "call.wav")
            except BaseException:
                with contextlib.suppress(OSError):
                    self.trace.close()
                raise
            return
        self.trace = _KeptTrace(folder / "trace.jsonl", self)
        self._engines_line()
        try:
            self.recorder = _KeptRecorder(folder / "call.wav", self)
        except OSError as exc:
            self.failed(exc)
            self.recorder = None

    def failed(self, exc: OSError) -> None:
        """A write failed (keep_going): the first one is logged and reported; the call goes on."""
        if self.lost is not None:
            return
        self.lost = exc
        log.warning("the call's files in %s cannot be written (%s); the call goes on without them",
                    self.folder, exc.strerror or type(exc).__name__)
        if self.on_write_error is not None:
            self.on_write_error(exc)

    def _engines_line(self) -> None:
        if self.engines is not None:
            self.trace._write({"kind": "engines", "type": "Engines", "engines": self.engines})

    def finish(self, core: Conversation, meta: dict[str, Any] | None = None,
               timings: Timings | None = None) -> dict[str, Any]:
        """Close the call's files and write summary.json from the core's report and the engines'
        `timings` by job id (server/callrecord.py); returns its content."""
        self.trace.close()
        if self.recorder is not None:
            self.recorder.close()
        summary = summarize(core.report(), timings or {}, meta, self.engines)
        path = self.folder / "summary.json"
        try:
            write_json_atomic(path, summary)
        except OSError as exc:
            if not self.keep_going:
                raise
            self.failed(exc)
            with contextlib.suppress(OSError):
                path.with_name(path.name + ".tmp").unlink()
        return summary


class _KeptTrace(Trace):
    """A trace whose failed writes give the file up instead of raising (no file at all: `path` None)."""

    def __init__(self, path: Path | None, files: CallFiles) -> None:
        self._files = files
        self._broken = path is None
        if path is None:
            self.path = files.folder / "trace.jsonl"
            return
        try:
            super().__init__(path)
        except OSError as exc:
            self.path = path
            self._broken = True
            files.failed(exc)

    def _write(self, record: dict[str, Any]) -> None:
        if self._broken:
            return
        try:
            super()._write(record)
        except OSError as exc:
            self._give_up(exc)

    def close(self) -> None:
        if self._broken:
            return
        try:
            super().close()
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        self._broken = True
        self._files.failed(exc)
        with contextlib.suppress(OSError):
            self._file.close()  # what it still buffers cannot be written either


class _KeptRecorder(StereoWavWriter):
    """A recording whose failed writes give the file up (what it holds so far stays a valid WAV)."""

    def __init__(self, path: Path, files: CallFiles) -> None:
        self._files = files
        self._broken = False
        super().__init__(path)

    def write(self, left: Any, right: Any) -> None:
        if not self._broken:
            super().write(left, right)

    def flush(self) -> None:
        if self._broken:
            return
        try:
            super().flush()
        except OSError as exc:
            self._broken = True
            self._fill = 0
            self._files.failed(exc)
            with contextlib.suppress(OSError):
                if self._file is not None:
                    self._file.close()
            self._file = None

    def close(self) -> None:
        if self._broken:
            self._file = None
            return
        try:
            super().close()
        except OSError as exc:
            self._broken = True
            self._file = None
            self._files.failed(exc)
