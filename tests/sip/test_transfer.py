"""Ring-through by blind transfer (`[owner] method = "transfer"`), with SIPp as the trunk: it calls standin,
presses 0 by RFC 2833, and receives the REFER standin sends on that call.

- the trunk accepts (202) and reports the owner's phone ringing, then answering (NOTIFY sipfrag 100, 180,
  200): standin ends its own call, and the record shows the REFER's answers and the outcome;
- the trunk refuses the REFER (403), or accepts it and reports the owner busy (NOTIFY 486): the caller is
  told, and the call goes on to take the message.
And the keypad by RFC 2833 from SIPp with no owner configured: a number keyed and ended with # is the
caller's number, read back.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from server.config import Config, load
from server.engines import build_engines, warm_up
from server.serve import answer
from tests.sip.endpoint_kit import loopback_options, require_pjsua2
from tests.sip.sipp import DTMF_PCAP, SIPP_SHARE, free_port, keyed_call, referred_call, run_sipp, scenario
from tests.sip.test_ring_through import ring_config

pytestmark = pytest.mark.slow

OWNER = "sip:owner@127.0.0.1:5999"


async def transfer_call(config: Config, tmp_path: Path, xml: str) -> tuple[list[dict[str, Any]], Any, Path]:
    """standin on loopback with the SIPp scenario `xml` as its caller; the summaries, SIPp's result, the
    calls folder."""
    from sip.endpoint import SipEndpoint

    if not (SIPP_SHARE / "dtmf_2833_0.pcap").is_file():
        pytest.skip(f"SIPp's DTMF pcaps are not at {SIPP_SHARE}")
    (tmp_path / "pcap").mkdir(exist_ok=True)
    for name in DTMF_PCAP.values():
        shutil.copy(SIPP_SHARE / name, tmp_path / "pcap")
    engines = build_engines(config)
    await asyncio.to_thread(warm_up, engines)
    calls_dir = tmp_path / "calls"
    summaries: list[dict[str, Any]] = []
    endpoint: SipEndpoint | None = None

    async def on_call(call: Any) -> None:
        summaries.append(await answer(call, engines, config, calls_dir, switchboard=endpoint))

    endpoint = SipEndpoint(loopback_options(answer_after_s=0.2), on_call, loop=asyncio.get_running_loop())
    endpoint.start()
    try:
        result = await run_sipp(["-sf", scenario(tmp_path, "referred", xml), endpoint.addresses["udp"],
                                 "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_port())],
                                tmp_path, timeout_s=30)
        for _ in range(200):
            if summaries:
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(endpoint.stop)
    return summaries, result, calls_dir


def test_the_trunk_takes_the_caller_to_the_owner_and_standin_hangs_up(tmp_path: Path) -> None:
    require_pjsua2()
    config = ring_config(tmp_path, 5999, method="transfer")
    xml = referred_call("sip:owner@127\\.0\\.0\\.1:5999", "202 Accepted",
                        ("100 Trying", "180 Ringing", "200 OK"))
    summaries, result, calls_dir = asyncio.run(transfer_call(config, tmp_path, xml))
    assert result.ok, result.output
    [summary] = summaries
    ring = summary["ring_through"]
    print("\ntransfer:", ring)
    assert ring["trigger"] == "keypad" and ring["method"] == "transfer", ring
    assert ring["outcome"] == "transferred" and summary["ended"] == "transferred"
    assert ring["target"] == OWNER
    # the 202 (reported as 100 Accepted), then each NOTIFY's sipfrag
    assert [(r["status"], r["final"]) for r in ring["refer"]] == [(100, False), (100, False), (180, False),
                                                                  (200, True)]
    assert ring["started_s"] < ring["rang_s"] < ring["answered_s"] == ring["ended_s"]
    assert ring["wall_ms"]["refer_accepted_ms"] < 300  # on loopback, the REFER is out and taken at once
    assert ring["wall_ms"]["transferred_ms"] >= ring["wall_ms"]["ringing_ms"] > 0
    [folder] = [p for p in calls_dir.iterdir() if p.is_dir()]
    assert json.loads((folder / "summary.json").read_text())["ring_through"]["outcome"] == "transferred"


@pytest.mark.parametrize(("refer_answer", "notifies", "outcome", "status"), [
    ("403 Forbidden", (), "failed", 403),
    ("202 Accepted", ("100 Trying", "486 Busy Here"), "busy", 486)])
def test_a_refused_or_failed_transfer_falls_back_to_a_message(tmp_path: Path, refer_answer: str,
                                                              notifies: tuple[str, ...], outcome: str,
                                                              status: int) -> None:
    require_pjsua2()
    config = ring_config(tmp_path, 5999, method="transfer")
    xml = referred_call("sip:owner@127\\.0\\.0\\.1:5999", refer_answer, notifies, hold_ms=5000)
    summaries, result, calls_dir = asyncio.run(transfer_call(config, tmp_path, xml))
    assert result.ok, result.output
    [summary] = summaries
    ring = summary["ring_through"]
    print(f"\n{refer_answer} {notifies}: {ring}")
    assert ring["outcome"] == outcome and ring["owner_status"] == status, ring
    assert ring["refer"][-1]["status"] == status and ring["refer"][-1]["final"]
    # The caller was told, on the line, and the call went on to its end as any other.
    trying, told = [t for t in summary["bot_turns"] if t["kind"] == "ring"]
    print([(t["start_s"], t["text_heard"]) for t in (trying, told)])
    assert told["text_heard"].startswith("I couldn't") and told["start_s"] > ring["ended_s"] - 0.1, told
    assert summary["ended"] == "caller hung up"
    [folder] = [p for p in calls_dir.iterdir() if p.is_dir()]
    wav, rate = soundfile.read(folder / "call.wav", dtype="int16")
    said = wav[int(told["start_s"] * rate):int((told["start_s"] + 1.0) * rate), 1].astype(np.float64)
    assert np.sqrt(np.mean(said ** 2)) > 300


def test_a_number_keyed_by_rfc_2833_and_ended_with_hash_is_read_back(tmp_path: Path) -> None:
    require_pjsua2()
    config = load(None, {"call": {"greeting": "Hello."}, "contacts": {"region": "GB"},
                         "stt": {"transcript": str(nothing(tmp_path))}})
    xml = keyed_call("02079460958#", gap_ms=250, hold_ms=8000)
    summaries, result, _ = asyncio.run(transfer_call(config, tmp_path, xml))
    assert result.ok, result.output
    [summary] = summaries
    assert summary["dictated_number"] == "+442079460958", summary["bot_turns"]
    [readback] = [t for t in summary["bot_turns"] if "zero two zero" in t["text_heard"]]
    assert "zero two zero, seven nine four six, zero nine five eight" in readback["text_heard"]


def nothing(tmp_path: Path) -> Path:
    transcript = tmp_path / "nothing.tsv"
    transcript.write_text("start_s\tend_s\tlabel\ttext\n300.0\t301.0\tCOMPLETE\tNothing.\n")
    return transcript
