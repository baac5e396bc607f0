"""A call that a test kills right after it is answered:
`python -m tests.store.crash_answer DB_URL CALLS_DIR NUMBER`.

It runs `server.serve.answer` with an `Owner` whose store writer is busy with other work (as under
load: other calls' rows, a slow disk), so nothing the writer holds reaches the database. As soon as the
call asks its transport for the caller's first frame (the call is answered and its greeting under way)
it prints "ready" and waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np

from models.judge_rules import RulesJudge
from models.llm_script import ScriptLlm
from server.config import load
from server.owner import Owner
from server.runtime import Engines
from server.serve import answer
from server.store.db import open_database
from tests.fakes import SpanStt, SpanVad, ToneTts


class JustAnswered:
    source = "sip"
    call_id = "call-1"

    def __init__(self, caller_number: str) -> None:
        self.caller_number = caller_number

    def attach(self, pull: Callable[[], np.ndarray]) -> None:
        pass

    async def frames(self) -> AsyncIterator[np.ndarray]:
        print("ready", flush=True)
        await asyncio.sleep(600)
        yield np.zeros(320, np.int16)

    async def hang_up(self, reason: str) -> None:
        pass


def main(url: str, calls_dir: Path, number: str) -> None:
    config = load(None, {"storage": {"calls_dir": str(calls_dir)}})
    engines = Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm(["Go on."]), ToneTts())
    owner = Owner(config, open_database(url), engines, calls_dir=calls_dir)
    owner.start()
    owner.writer.submit(threading.Event().wait)  # busy for good
    asyncio.run(answer(JustAnswered(number), engines, config, calls_dir, owner=owner))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
