"""Ring-through with real peers on loopback: standin's SIP endpoint answers, `server.serve.answer` runs the
call, and a second pjsua2 endpoint in a child process (tests/sip/pjsua2_peers.py) is both the caller,
who presses 0 (or asks for the owner), and the owner's phone, which answers and presses 1, declines,
is busy, or never answers.

- accepted: the owner's phone rings within a second of the caller's 0, hears the announcement, and once
  it presses 1 the two hear each other's tones through standin's bridge; call.wav keeps both voices;
- declined, busy, no answer: the owner's call is ended and the caller hears the fallback line; the call
  goes on and is stored with the attempt's outcome;
- a caller who asks for the owner by name starts it too.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from server.config import Config, load
from server.engines import build_engines, warm_up
from server.serve import answer
from sip.media import RATE
from tests.sip.endpoint_kit import loopback_options, require_pjsua2
from tests.sip.sipp import free_port, free_rtp_range

pytestmark = pytest.mark.slow

PEERS = Path(__file__).with_name("pjsua2_peers.py")
SHARED = Path(__file__).resolve().parents[3] / "shared"
CALLER_HZ, OWNER_HZ = 440.0, 1000.0


def ring_config(tmp_path: Path, owner_port: int, transcript: Path | None = None, **owner: Any) -> Config:
    if transcript is None:
        transcript = tmp_path / "nothing.tsv"
        transcript.write_text("start_s\tend_s\tlabel\ttext\n300.0\t301.0\tCOMPLETE\tNothing.\n")
    return load(None, {"call": {"greeting": "Hello, this is standin."},
                       "stt": {"transcript": str(transcript)}, "llm": {"owner_name": "Marco"},
                       "owner": {"phone": f"sip:owner@127.0.0.1:{owner_port}", "ring_timeout_s": 3.0,
                                 "decide_timeout_s": 6.0, **owner}})


async def ring_call(config: Config, tmp_path: Path, owner_port: int, *peer_args: str,
                    hangup_after_s: float = 9.0) -> tuple[list[dict[str, Any]], dict[str, Any], Path]:
    """standin on loopback and the peers' process; the summaries, the peers' result, the calls folder."""
    from sip.endpoint import SipEndpoint

    engines = build_engines(config)
    await asyncio.to_thread(warm_up, engines)
    calls_dir, out = tmp_path / "calls", tmp_path / "peers"
    summaries: list[dict[str, Any]] = []
    endpoint: SipEndpoint | None = None

    async def on_call(call: Any) -> None:
        summaries.append(await answer(call, engines, config, calls_dir, switchboard=endpoint))

    endpoint = SipEndpoint(loopback_options(answer_after_s=0.2), on_call, loop=asyncio.get_running_loop())
    endpoint.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(PEERS), "--target", f"sip:standin@{endpoint.addresses['udp']}",
            "--out", str(out), "--port", str(owner_port), "--rtp-port", str(free_rtp_range()),
            "--hangup-after", str(hangup_after_s), *peer_args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(proc.communicate(), hangup_after_s + 40)
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
        for _ in range(200):
            if summaries:
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(endpoint.stop)
    result = json.loads((out / "result.json").read_text())
    for peer in [*result["callers"], *result["owners"]]:
        peer["audio"] = np.frombuffer((out / f"{peer['role']}-{peer['index']}.raw").read_bytes(), "<i2")
    return summaries, result, calls_dir


def at(peer: dict[str, Any], t: float) -> int:
    """The sample of `peer`'s recording that arrived at monotonic time `t`."""
    times = np.asarray(peer["frame_times"])
    return int(np.searchsorted(times, t)) * 320


def tone_share(x: np.ndarray, hz: float, min_rms: float = 300.0) -> float:
    """The share of 20 ms frames of `x` whose loudest frequency is `hz` (within 30 Hz), and loud enough."""
    k = len(x) // 320
    if k == 0:
        return 0.0
    frames = x[: k * 320].astype(np.float64).reshape(k, 320)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(320), n=3200, axis=1))
    peak = np.argmax(spectrum, axis=1) * RATE / 3200
    loud = np.sqrt(np.mean(frames ** 2, axis=1)) >= min_rms
    return float(np.mean((np.abs(peak - hz) <= 30) & loud))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


def test_the_owner_presses_1_and_the_two_are_bridged(tmp_path: Path) -> None:
    require_pjsua2()
    port = free_port()
    config = ring_config(tmp_path, port)
    summaries, result, calls_dir = asyncio.run(ring_call(
        config, tmp_path, port, "--owner", "accept", "--press-at", "1.5", "--answer-after", "0.8",
        "--decide-after", "1.5"))
    [summary], [caller], [owner] = summaries, result["callers"], result["owners"]
    ring = summary["ring_through"]
    print("\nring_through:", {k: v for k, v in ring.items() if k != "owner_rx"})
    assert ring["trigger"] == "keypad" and ring["outcome"] == "accepted", ring
    assert ring["started_s"] <= ring["rang_s"] < ring["answered_s"] < ring["accepted_s"]

    # The owner's phone rang within a second of the caller's 0, by either side's clock.
    trigger_to_invite = owner["events"]["invite"] - caller["events"]["pressed_0"]
    print(f"caller's 0 -> the owner's phone rings: {trigger_to_invite * 1000:.0f} ms "
          f"(standin: INVITE to 180 {ring['wall_ms']['ringing_ms']:.0f} ms after the trigger)")
    assert 0 < trigger_to_invite <= 1.0 and ring["wall_ms"]["ringing_ms"] <= 1000

    # The owner heard the announcement before pressing 1.
    heard = owner["audio"][at(owner, owner["events"]["sent_200"]):at(owner, owner["events"]["pressed_1"])]
    assert rms(heard) > 500, rms(heard)

    # Bridged: each hears the other's tone from ~0.3 s after the 1 until the caller hangs up.
    start, end = owner["events"]["pressed_1"] + 0.4, caller["events"]["hung_up"] - 0.2
    to_owner = owner["audio"][at(owner, start):at(owner, end)]
    to_caller = caller["audio"][at(caller, start):at(caller, end)]
    print(f"bridged {end - start:.1f} s: the caller's tone in {tone_share(to_owner, CALLER_HZ):.1%} of the "
          f"owner's frames, the owner's in {tone_share(to_caller, OWNER_HZ):.1%} of the caller's")
    assert end - start > 2.5
    assert tone_share(to_owner, CALLER_HZ) > 0.97 and tone_share(to_caller, OWNER_HZ) > 0.97

    # The caller hung up; standin hung up the owner's phone; the call's record and recording keep both.
    assert summary["ended"] == "caller hung up" and owner["disconnected"]
    assert owner["events"]["disconnected"] - caller["events"]["hung_up"] < 1.5
    assert ring["bridged_s"] > 2.5 and ring["owner_status"] == 200
    [folder] = [p for p in calls_dir.iterdir() if p.is_dir()]
    assert json.loads((folder / "summary.json").read_text())["ring_through"]["outcome"] == "accepted"
    wav, rate = soundfile.read(folder / "call.wav", dtype="int16")
    a, b = int((ring["accepted_s"] + 0.5) * rate), int((ring["ended_s"] - 0.3) * rate)
    assert tone_share(wav[a:b, 0], CALLER_HZ) > 0.9 and tone_share(wav[a:b, 1], OWNER_HZ) > 0.9


@pytest.mark.parametrize(("behaviour", "outcome", "owner_status"), [
    ("decline", "declined", None), ("never", "no answer", 480), ("busy", "busy", 486)])
def test_the_owner_not_taking_the_call_leaves_a_message_as_usual(tmp_path: Path, behaviour: str, outcome: str,
                                                                 owner_status: int | None) -> None:
    require_pjsua2()
    port = free_port()
    config = ring_config(tmp_path, port)
    summaries, result, _ = asyncio.run(ring_call(
        config, tmp_path, port, "--owner", behaviour, "--press-at", "1.0", "--answer-after", "0.8",
        "--decide-after", "1.0", hangup_after_s=9.0))
    [summary], [caller], [owner] = summaries, result["callers"], result["owners"]
    ring = summary["ring_through"]
    print(f"\n{behaviour}: {ring}")
    assert ring["outcome"] == outcome and "accepted_s" not in ring, ring
    if owner_status is not None:  # 480: standin's own CANCEL, after ring_timeout_s
        assert ring["owner_status"] == owner_status
    if behaviour == "never":
        assert owner["last_status"] == 487  # standin's CANCEL
        assert ring["ended_s"] - ring["started_s"] == pytest.approx(3.0, abs=0.1)
    assert owner["disconnected"] and owner["events"]["disconnected"] < caller["events"]["hung_up"]
    # The caller was told, and the call went on to its end as any other.
    [told] = [t for t in summary["bot_turns"] if t["kind"] == "ring" and t["start_s"] > ring["ended_s"] - 0.1]
    assert told["text_heard"].startswith("They can't" if outcome == "declined" else "I couldn't"), told
    back = caller["audio"][at(caller, caller["events"]["created"] + ring["ended_s"]):]
    assert rms(back) > 300
    assert summary["ended"] == "caller hung up"


def test_asking_for_the_owner_by_name_rings_them(tmp_path: Path) -> None:
    require_pjsua2()
    wav, tsv = SHARED / "scenarios" / "quick_question.wav", SHARED / "scenarios" / "quick_question.tsv"
    if not wav.is_file():
        pytest.skip(f"{wav} is absent")
    port = free_port()
    config = ring_config(tmp_path, port, transcript=tsv)
    summaries, result, _ = asyncio.run(ring_call(
        config, tmp_path, port, "--wav", str(wav), "--press-at", "-1", "--owner", "hangup",
        "--answer-after", "0.5", "--decide-after", "1.0", hangup_after_s=10.0))
    [summary], [owner] = summaries, result["owners"]
    ring = summary["ring_through"]
    print("\nrequest:", ring)
    assert ring["trigger"] == "request" and ring["outcome"] == "declined"
    assert "Hi, is Marco there?" in summary["story"]
    assert owner["events"]["sent_200"] and owner["disconnected"]
