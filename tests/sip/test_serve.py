"""A real call into standin end to end: SIPp plays recorded A-law speech into the SIP endpoint, the call
runs on the live runtime with the real VAD and TTS, and the call's files are left behind."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from server.config import load
from server.engines import build_engines
from server.serve import answer
from tests.sip.endpoint_kit import loopback_options, require_pjsua2
from tests.sip.sipp import free_port, pcap_folder, run_sipp


def test_a_sipp_call_is_answered_heard_and_stored(tmp_path: Path) -> None:
    require_pjsua2()
    transcript = pcap_folder(tmp_path)
    config = load(None, {"call": {"greeting": "Hello, this is standin."},
                         "stt": {"transcript": str(transcript)}})
    engines = build_engines(config)
    calls = tmp_path / "calls"
    summaries: list[dict[str, Any]] = []

    async def scenario() -> Any:
        async def on_call(call: Any) -> None:
            summaries.append(await answer(call, engines, config, calls))

        options = loopback_options()
        from sip.endpoint import SipEndpoint

        endpoint = SipEndpoint(options, on_call, loop=asyncio.get_running_loop())
        endpoint.start()
        try:
            result = await run_sipp(["-sn", "uac_pcap", endpoint.addresses["udp"], "-m", "1",
                                     "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_port())],
                                    tmp_path, timeout_s=40)
            for _ in range(100):
                if summaries:
                    break
                await asyncio.sleep(0.05)
        finally:
            await asyncio.to_thread(endpoint.stop)
        return result

    result = asyncio.run(scenario())
    assert result.ok, result.output
    [summary] = summaries
    [folder] = list(calls.iterdir())
    assert json.loads((folder / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["caller_number"] == "sipp" and summary["ended"] == "caller hung up"
    greeting = summary["bot_turns"][0]
    assert greeting["kind"] == "greeting" and greeting["start_s"] is not None
    assert summary["caller_fragments"], "the caller's speech was heard"
    audio, rate = soundfile.read(folder / "call.wav", dtype="int16")
    assert rate == 16000 and audio.shape[1] == 2 and len(audio) >= 7 * 16000
    assert np.abs(audio[:, 0]).max() > 2000 and np.abs(audio[:, 1]).max() > 2000  # both sides talked
    kinds = {json.loads(line)["type"] for line in (folder / "trace.jsonl").read_text().splitlines()}
    assert {"CallStarted", "VadWindow", "Play", "CallerHungUp", "Dtmf"} <= kinds
