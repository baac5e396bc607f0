"""Ring-through end to end through `standin serve`, as a user runs it: one process with its SIP endpoint on
loopback, a temporary database and calls folder, the `transcript` STT, the real VAD and espeak-ng, and a
notification channel (apprise's json:// to an HTTP inbox on loopback). A pjsua2 process
(tests/sip/pjsua2_peers.py) is the caller, who plays a shared scenario's recorded speech, and the owner's
phone. Then a headless Chromium logs into the dashboard and reads the call's page.

- the caller asks for Marco; the owner's phone rings, answers, hears the announcement and presses 1; the
  two talk through standin's bridge (the owner hears the caller's speech, the caller the owner's tone)
  until the caller hangs up; the call's page shows the attempt, accepted, with its timings;
- the caller presses 0 (RFC 2833); the owner's phone never answers; the caller is told, goes on to leave
  a message, and the owner is notified of it, urgent, led by the missed ring-through, which the inbox and
  the call's page show.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from models.stt_transcript import read_transcript
from server.audio import read_audio
from server.web.auth import set_password
from server.web.pages import _clock as clock
from tests.server.owner_kit import Inbox
from tests.sip.endpoint_kit import require_pjsua2
from tests.sip.sipp import free_port, free_rtp_range
from tests.sip.test_ring_through import OWNER_HZ, at, rms, tone_share

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).with_name("pjsua2_peers.py")
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery"
TOKEN = "ring-through-token-0123456789"
CALLER = "+15550002222"  # pjsua2_peers.py's caller


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    origin: str
    sip: str
    calls_dir: Path

    def api(self, path: str) -> Any:
        response = httpx.get(f"{self.origin}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        response.raise_for_status()
        return response.json()


def caller_audio(shared: Path, parts: list[tuple[float, str]], tmp_path: Path,
                 tsv_parts: int) -> tuple[Path, Path]:
    """A caller's WAV: each scenario's speech placed at its start time (s), silence between; and a
    transcript of the first `tsv_parts` of them on the same timeline (what standin's STT is to hear)."""
    end = max(start + len(read_audio(shared / "scenarios" / f"{name}.wav")) / 16000 for start, name in parts)
    audio = np.zeros(int((end + 0.5) * 16000), np.int16)
    rows = ["start_s\tend_s\tlabel\ttext"]
    for i, (start, name) in enumerate(parts):
        pcm = read_audio(shared / "scenarios" / f"{name}.wav")
        at_sample = int(start * 16000)
        audio[at_sample:at_sample + len(pcm)] = pcm
        if i < tsv_parts:
            rows += [f"{p.start_s + start:.3f}\t{p.end_s + start:.3f}\t{p.label}\t{p.text}"
                     for p in read_transcript(shared / "scenarios" / f"{name}.tsv")]
    wav, tsv = tmp_path / "caller.wav", tmp_path / "caller.tsv"
    sf.write(wav, audio, 16000, subtype="PCM_16")
    tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return wav, tsv


@contextlib.contextmanager
def serving(tmp_path: Path, transcript: Path, owner_port: int, inbox: Inbox) -> Iterator[Served]:
    """`standin serve` in its own process, ringing the owner at `owner_port` on loopback; stopped by
    SIGTERM, and it must exit cleanly."""
    sip_port, web_port = free_port(), free_port()
    set_password(str(tmp_path / "web-password"), PASSWORD)
    config = tmp_path / "standin.toml"
    config.write_text(f"""
[call]
greeting = "Hello, this is standin."
[stt]
transcript = "{transcript}"
[llm]
owner_name = "Marco"
[owner]
phone = "sip:owner@127.0.0.1:{owner_port}"
ring_timeout_s = 3.0
decide_timeout_s = 8.0
[notify]
urls = ["{inbox.url}"]
[storage]
calls_dir = "{tmp_path / 'calls'}"
database = "sqlite:///{tmp_path / 'standin.db'}"
[web]
listen = "127.0.0.1:{web_port}"
password_file = "{tmp_path / 'web-password'}"
secret_file = "{tmp_path / 'web-secret'}"
[sip]
listen = "127.0.0.1:{sip_port}"
transports = ["udp"]
rtp_port_start = {free_rtp_range()}
rtp_port_count = 20
""")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--config", str(config)], cwd=ROOT,
                            env={**os.environ, "STANDIN_API_TOKENS": TOKEN}, stdout=log,
                            stderr=subprocess.STDOUT)
    served = Served(proc, f"http://127.0.0.1:{web_port}", f"127.0.0.1:{sip_port}", tmp_path / "calls")
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "standin serve did not come up"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{served.origin}/api/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    out = (tmp_path / "serve.log").read_text(errors="replace")
    assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]


def call_in(served: Served, tmp_path: Path, owner_port: int, wav: Path, hangup_after_s: float,
            *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The caller and the owner's phone, in their own process, until both calls are over."""
    out = tmp_path / "peers"
    done = subprocess.run(
        [sys.executable, str(PEERS), "--target", f"sip:standin@{served.sip}", "--out", str(out),
         "--port", str(owner_port), "--rtp-port", str(free_rtp_range()), "--wav", str(wav),
         "--hangup-after", str(hangup_after_s), *args],
        capture_output=True, timeout=hangup_after_s + 60, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")[-3000:]
    result = json.loads((out / "result.json").read_text())
    [caller], [owner] = result["callers"], result["owners"]
    for peer in (caller, owner):
        peer["audio"] = np.frombuffer((out / f"{peer['role']}-{peer['index']}.raw").read_bytes(), "<i2")
    return caller, owner


def stored(served: Served, timeout_s: float = 60) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one call's summary.json and its row in the API, once its message is made."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        [call] = served.api("/api/calls")["items"] or [None]
        if call is not None and call["state"] == "ended" and call.get("message"):
            [folder] = [p for p in served.calls_dir.iterdir() if p.is_dir()]
            return json.loads((folder / "summary.json").read_text()), served.api(f"/api/calls/{call['id']}")
        time.sleep(0.3)
    raise AssertionError(f"no ended call with a message: {served.api('/api/calls')}")


def browser(p: Any) -> Any:
    return p.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"])


def call_page(p: Any, served: Served, shot: Path) -> tuple[str, dict[str, str], list[str]]:
    """Log in, open the only call from the list of calls: the page's text, its ring-through section's
    fields, what went wrong in the page."""
    chromium = browser(p)
    try:
        page = chromium.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{served.origin}/calls")
        assert "/login" in page.url
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{served.origin}/calls")
        rows = page.locator("table.list tbody tr")
        assert rows.count() == 1
        rows.first.locator("a").click()
        page.wait_for_url(f"{served.origin}/calls/*")
        section = page.locator("section.ring-through")
        section.wait_for()
        terms = section.locator("dt").all_inner_texts()
        values = section.locator("dd").all_inner_texts()
        fields = dict(zip(terms, values, strict=True))
        fields["class"] = section.get_attribute("class") or ""
        fields["heading"] = section.locator("h2").inner_text()
        text = page.locator("main").inner_text()
        page.screenshot(path=str(shot), full_page=True)
    finally:
        chromium.close()
    return text, fields, errors


@pytest.fixture
def owner_port() -> int:
    """Where the owner's phone listens, once everything the test needs is known to be here."""
    require_pjsua2()
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian's chromium package); browsers are never downloaded")
    return free_port()


def test_the_caller_asks_for_the_owner_who_takes_the_call_and_the_dashboard_shows_it(
        shared: Path, tmp_path: Path, owner_port: int) -> None:
    from playwright.sync_api import sync_playwright

    # "Hi, is Marco there?" after the greeting; once bridged, silence, then more speech for the owner
    wav, tsv = caller_audio(shared, [(2.0, "quick_question"), (10.0, "three_things")], tmp_path, tsv_parts=1)
    inbox = Inbox()
    try:
        with serving(tmp_path, tsv, owner_port, inbox) as served:
            caller, owner = call_in(served, tmp_path, owner_port, wav, 16.0, "--press-at", "-1",
                                    "--owner", "accept", "--answer-after", "0.8", "--decide-after", "2.0")
            summary, record = stored(served)
            with sync_playwright() as p:
                text, fields, errors = call_page(p, served, tmp_path / "call-page.png")
    finally:
        inbox.close()
    ring = summary["ring_through"]
    print("\nring_through:", {k: v for k, v in ring.items() if k != "owner_rx"})
    assert ring["trigger"] == "request" and ring["outcome"] == "accepted", ring
    assert ring["started_s"] <= ring["rang_s"] < ring["answered_s"] < ring["accepted_s"] < ring["ended_s"]
    assert ring["wall_ms"]["ringing_ms"] <= 1000 and ring["owner_status"] == 200
    assert "Hi, is Marco there?" in summary["story"] and summary["ended"] == "caller hung up"
    assert record["ring_through"]["outcome"] == "accepted"

    # The owner heard the announcement, then, bridged, the caller: silence, then the caller's speech
    media = caller["events"]["media"]
    heard = owner["audio"][at(owner, owner["events"]["sent_200"]):at(owner, owner["events"]["pressed_1"])]
    quiet = owner["audio"][at(owner, owner["events"]["pressed_1"] + 0.5):at(owner, media + 9.9)]
    speech = owner["audio"][at(owner, media + 10.5):at(owner, caller["events"]["hung_up"] - 0.2)]
    print(f"the owner heard: announcement rms {rms(heard):.0f}, the caller's silence {rms(quiet):.0f}, "
          f"the caller's speech {rms(speech):.0f} ({len(speech) / 16000:.1f} s)")
    assert rms(heard) > 500 and len(quiet) > 8000 and len(speech) > 3 * 16000
    assert rms(quiet) < 100 and rms(speech) > 1000
    to_caller = caller["audio"][at(caller, owner["events"]["pressed_1"] + 0.5):
                                at(caller, caller["events"]["hung_up"] - 0.2)]
    assert tone_share(to_caller, OWNER_HZ) > 0.9, tone_share(to_caller, OWNER_HZ)
    assert owner["disconnected"] and owner["events"]["disconnected"] - caller["events"]["hung_up"] < 1.5
    # and call.wav keeps both: the caller's speech on the left, the owner's tone where standin's voice was
    [folder] = [p for p in served.calls_dir.iterdir() if p.is_dir()]
    wav_out, rate = sf.read(folder / "call.wav", dtype="int16")
    bridged = wav_out[int((ring["accepted_s"] + 0.5) * rate):int((ring["ended_s"] - 0.3) * rate)]
    assert tone_share(bridged[:, 1], OWNER_HZ) > 0.9
    assert rms(wav_out[int(10.5 * rate):int((ring["ended_s"] - 0.3) * rate), 0]) > 300

    # The call's page in the browser: the attempt, its outcome and its timings, as recorded
    assert not errors, errors
    assert "outcome-accepted" in fields["class"]
    assert fields["heading"] == "Putting the caller through: accepted"
    assert fields["asked by"] == "the caller asking for you"
    assert fields["tried at"] == clock(ring["started_s"])
    assert fields["your phone rang"] == \
        f"{clock(ring['rang_s'])} ({round(ring['wall_ms']['ringing_ms'])} ms after the request)"
    assert fields["you answered"] == clock(ring["answered_s"])
    assert fields["you took the call"] == f"{clock(ring['accepted_s'])}, talked {clock(ring['bridged_s'])}"
    assert fields["your phone said"] == "SIP 200" and "gave up" not in fields
    assert CALLER in text and "caller hung up" in text


def test_the_owner_never_answers_so_the_caller_leaves_a_message_and_the_owner_is_told(
        shared: Path, tmp_path: Path, owner_port: int) -> None:
    from playwright.sync_api import sync_playwright

    # 0 pressed during the greeting; the caller speaks once told the owner could not be reached, and
    # standin says goodbye, and hangs up after its grace, before the caller would hang up
    wav, tsv = caller_audio(shared, [(8.0, "trailing_thought")], tmp_path, tsv_parts=1)
    inbox = Inbox()
    try:
        with serving(tmp_path, tsv, owner_port, inbox) as served:
            caller, owner = call_in(served, tmp_path, owner_port, wav, 23.0, "--press-at", "1.0",
                                    "--owner", "never")
            summary, record = stored(served)
            assert inbox.arrived.wait(60), "the owner was not notified"
            with sync_playwright() as p:
                text, fields, errors = call_page(p, served, tmp_path / "call-page.png")
    finally:
        inbox.close()
    ring = summary["ring_through"]
    print("\nring_through:", ring)
    assert ring["trigger"] == "keypad" and ring["outcome"] == "no answer" and "accepted_s" not in ring, ring
    assert ring["owner_status"] == 480 and owner["last_status"] == 487  # standin's CANCEL
    assert ring["ended_s"] - ring["started_s"] == pytest.approx(3.0, abs=0.2)
    assert "sent_200" not in owner["events"] and owner["disconnected"]

    # The caller was told, then left their message as on any call
    [told] = [t for t in summary["bot_turns"] if t["kind"] == "ring" and t["start_s"] > ring["ended_s"] - 0.1]
    assert told["text_heard"].startswith("I couldn't"), told
    told_audio = caller["audio"][at(caller, caller["events"]["media"] + told["start_s"]):
                                 at(caller, caller["events"]["media"] + told["end_s"])]
    assert rms(told_audio) > 300
    assert "The meeting tomorrow moved to three o'clock." in summary["story"]
    assert summary["bot_turns"][-1]["kind"] == "goodbye" and summary["ended"] == "bot ended the call"

    # The message leads with the missed ring-through, urgent, and reached the owner's channel
    message = record["message"]
    assert message["urgency"] == "high", message
    assert message["text"].startswith(f"Missed ring-through: standin tried to put {CALLER} through to you")
    assert "(no answer)" in message["text"] and "meeting tomorrow moved to three" in message["text"]
    [post] = inbox.posts
    assert "Missed ring-through" in post["message"] and "meeting tomorrow" in post["message"], post

    assert not errors, errors
    assert "outcome-no-answer" in fields["class"]
    assert fields["heading"] == "Putting the caller through: no answer"
    assert fields["asked by"] == "the caller pressing 0"
    assert fields["tried at"] == clock(ring["started_s"]) and fields["gave up"] == clock(ring["ended_s"])
    assert fields["your phone said"] == "SIP 480" and "you answered" not in fields
    assert "Missed ring-through" in text
