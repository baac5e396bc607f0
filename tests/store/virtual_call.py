"""A whole call on a virtual clock, as `standin simulate` runs it, with a `CallLog` watching its trace.

It is `server.simulate.simulate` with the `CallLog` observing the trace; the runtime, the core, the
engines and the call files are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from server.config import Config, load
from server.engines import build_engines
from server.runtime import Engines
from server.simulate import simulate
from server.store.calls import CallLog
from server.trace import Trace

LATENCY_MS = {"stt": 150, "judge": 20, "llm": 150, "tts": 80}


def scenario_config(shared: Path, name: str, **tables: dict[str, Any]) -> Config:
    """The real VAD, the scenario's timed transcript, the rules judge, scripted replies, espeak."""
    return load(None, {"stt": {"transcript": str(shared / "scenarios" / f"{name}.tsv")},
                       "simulate": {"latency_ms": LATENCY_MS}, **tables})


def scenario_engines(config: Config) -> Engines:
    return build_engines(config)


def run_virtual_call(caller: np.ndarray, engines: Engines, config: Config, folder: Path, *,
                     call_log: CallLog | None = None, caller_number: str = "",
                     observe: Callable[[Trace], Trace] | None = None) -> dict[str, Any]:
    """Play `caller` into a call; returns summary.json's content once the caller has hung up. The trace
    goes through `observe` when given, else through `call_log`."""
    if observe is None and call_log is not None:
        observe = call_log.observe
    result = simulate(caller, engines, config, folder, meta={"caller_number": caller_number}, observe=observe)
    return result.summary
