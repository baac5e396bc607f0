"""The files every call leaves in its folder: call.wav, trace.jsonl and summary.json.

The recording and the trace are written while the call runs, so a crash leaves them behind; the summary
is written once, atomically, when the call ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.audio import StereoWavWriter
from server.core.conversation import Conversation
from server.trace import Trace, write_json_atomic


class CallFiles:
    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the call folder {folder}: {exc.strerror or exc}") from exc
        self.folder = folder
        self.trace = Trace(folder / "trace.jsonl")
        self.recorder = StereoWavWriter(folder / "call.wav")

    def finish(self, core: Conversation, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        self.trace.close()
        self.recorder.close()
        summary = {**core.report(), **(meta or {})}
        write_json_atomic(self.folder / "summary.json", summary)
        return summary
