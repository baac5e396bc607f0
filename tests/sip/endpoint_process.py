"""A SipEndpoint in a process of its own, for tests that try to kill it: whatever a hostile packet does
to pjsip, the test process survives to see it.

    python -m tests.sip.endpoint_process '{"listen": "127.0.0.1:5080", ...}' [ADMIT_FILE]

Prints one line `READY {addresses}` once it listens; answers every call it takes with silence and
reads the caller's frames; while ADMIT_FILE exists, new calls are refused with 503 (its text is the
reason). On SIGTERM it stops the endpoint and prints `COUNTS {counts}`, then exits 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sip.endpoint import SipEndpoint
from sip.media import FRAME, SipCall
from sip.options import SipOptions


async def main(options: SipOptions, admit_file: Path | None) -> None:
    silence = np.zeros(FRAME, np.int16)

    async def on_call(call: SipCall) -> None:
        call.attach(lambda: silence)
        async for _ in call.frames():
            pass

    def admit() -> str | None:
        if admit_file is not None and admit_file.exists():
            return admit_file.read_text().strip() or "not admitted"
        return None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    endpoint = SipEndpoint(options, on_call, loop=loop, admit=admit)
    endpoint.start()
    print("READY", json.dumps(endpoint.addresses), flush=True)
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(endpoint.stop)
    print("COUNTS", json.dumps(endpoint.counts), flush=True)


if __name__ == "__main__":
    values: dict[str, Any] = json.loads(sys.argv[1])
    for key in ("transports", "allow_from"):
        if key in values:
            values[key] = tuple(values[key])
    asyncio.run(main(SipOptions(**values), Path(sys.argv[2]) if len(sys.argv) > 2 else None))
