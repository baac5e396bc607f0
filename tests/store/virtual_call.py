"""A whole call on a virtual clock, as `standin simulate` runs it, with a `CallLog` watching its trace.

The loop is simulate's (server/simulate.py) without the echo path; the runtime, the core, the engines
and the call files are the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from server import audio
from server.callfiles import CallFiles
from server.config import Config, load
from server.core.conversation import Conversation
from server.engines import build_engines
from server.jobs import VirtualJobs
from server.runtime import CallRuntime, Engines, RuntimeOptions
from server.store.calls import CallLog

FRAME_S = audio.FRAME / audio.CALL_RATE
LATENCY_MS = {"stt": 150, "judge": 20, "llm": 150, "tts": 80}


def scenario_config(shared: Path, name: str, **tables: dict[str, Any]) -> Config:
    """The real VAD, the scenario's timed transcript, the rules judge, scripted replies, espeak."""
    return load(None, {"stt": {"transcript": str(shared / "scenarios" / f"{name}.tsv")},
                       "simulate": {"latency_ms": LATENCY_MS}, **tables})


def scenario_engines(config: Config) -> Engines:
    return build_engines(config)


def run_virtual_call(caller: np.ndarray, engines: Engines, config: Config, folder: Path, *,
                     call_log: CallLog | None = None, caller_number: str = "") -> dict[str, Any]:
    """Play `caller` into a call; returns summary.json's content once the caller has hung up."""
    jobs = VirtualJobs({k: v / 1000 for k, v in config.simulate.latency_ms.items()})
    files = CallFiles(folder)
    if call_log is not None:
        files.trace = call_log.observe(files.trace)
    runtime = CallRuntime(Conversation(config.conversation()), engines, jobs,
                          options=RuntimeOptions(language=config.language, context=config.context(),
                                                 timeouts_s=config.timeouts()),
                          trace=files.trace, recorder=files.recorder)
    silence = np.zeros(audio.FRAME, np.int16)
    try:
        runtime.start(0.0)
        k = 0
        idle_since: float | None = None
        previous: np.ndarray | None = None
        while runtime.hangup is None:
            t = k * FRAME_S
            _run_until(runtime, jobs, t)
            if previous is not None:
                runtime.feed(previous, t)
            runtime.pull(t)
            previous = caller[k * audio.FRAME:(k + 1) * audio.FRAME]
            if len(previous) < audio.FRAME:
                previous = np.concatenate([previous, silence[len(previous):]])
                if runtime.idle() and not jobs.pending():
                    idle_since = t if idle_since is None else idle_since
                    if t - idle_since >= config.simulate.hangup_after_s:
                        runtime.caller_hung_up(t)
                else:
                    idle_since = None
            k += 1
    finally:
        runtime.close()
    return files.finish(runtime.core, meta={"caller_number": caller_number, "error": None,
                                            "duration_s": round(runtime.now, 3)})


def _run_until(runtime: CallRuntime, jobs: VirtualJobs, t: float) -> None:
    while True:
        due = jobs.next_due()
        timer = runtime.next_timer()
        if due is not None and due <= t and (timer is None or due <= timer):
            item = jobs.pop_due(t)
            assert item is not None
            runtime.on_result(*item)
        elif timer is not None and timer <= t:
            runtime.advance(timer)
        else:
            return
