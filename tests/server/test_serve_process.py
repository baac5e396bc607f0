"""`standin serve` as a user runs it: one process answering SIP and serving the dashboard. A SIPp caller
leaves a message; the API shows the call and the message; SIGTERM stops everything cleanly. With its
calls folder on a full disk it answers no call: each gets 503, and the dashboard lists them with a
message telling the owner why."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.server.disk_kit import fill, small_disk
from tests.sip.endpoint_kit import require_pjsua2
from tests.sip.sipp import free_port, free_rtp_range, pcap_folder, refused_call, run_sipp, scenario

TOKEN = "test-token-0123456789abcdef"


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # say why: a port another process took meanwhile, say
            said = proc.stdout.read().decode(errors="replace")[-2000:] if proc.stdout else ""
            raise AssertionError(f"standin serve exited with {proc.returncode}: {said}")
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("standin serve did not come up")


def _serve(tmp_path: Path, sip_port: int, web_port: int, calls_dir: Path | None = None
           ) -> subprocess.Popen[bytes]:
    transcript = pcap_folder(tmp_path)
    config = tmp_path / "standin.toml"
    config.write_text(f"""
[call]
greeting = "Hello, this is standin."
[stt]
transcript = "{transcript}"
[storage]
calls_dir = "{calls_dir or tmp_path / 'calls'}"
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
    env = {**os.environ, "STANDIN_API_TOKENS": TOKEN}
    return subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--config", str(config)],
                            cwd=Path(__file__).parents[2], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_serve_answers_a_call_and_shows_it_on_the_dashboard(tmp_path: Path) -> None:
    require_pjsua2()
    sip_port, web_port = free_port(), free_port()
    proc = _serve(tmp_path, sip_port, web_port)
    base = f"http://127.0.0.1:{web_port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        _wait_healthy(base, proc)
        assert httpx.get(f"{base}/api/calls").status_code == 401
        health = httpx.get(f"{base}/api/health", headers=auth).json()
        assert health["sip"]["state"] == "direct", health
        result = asyncio.run(run_sipp(["-sn", "uac_pcap", f"127.0.0.1:{sip_port}", "-m", "1",
                                       "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_port())],
                                      tmp_path, timeout_s=40))
        assert result.ok, result.output
        deadline = time.monotonic() + 30
        messages: list[dict[str, object]] = []
        while time.monotonic() < deadline and not messages:
            messages = httpx.get(f"{base}/api/messages", headers=auth).json()["items"]
            time.sleep(0.3)
        assert messages, "the call left a message"
        calls = httpx.get(f"{base}/api/calls", headers=auth).json()["items"]
        assert [c["caller_number"] for c in calls] == ["sipp"]
        assert calls[0]["state"] == "ended"
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode(errors="replace")


@pytest.mark.slow
def test_serve_refuses_calls_with_503_while_its_calls_folder_is_full_and_tells_the_owner(
        tmp_path: Path) -> None:
    require_pjsua2()
    with small_disk(tmp_path / "disk") as disk:
        fill(disk)
        sip_port, web_port = free_port(), free_port()
        proc = _serve(tmp_path, sip_port, web_port, calls_dir=disk / "calls")
        base = f"http://127.0.0.1:{web_port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            _wait_healthy(base, proc)
            for _ in range(2):
                result = asyncio.run(run_sipp(["-sf", scenario(tmp_path, "refused", refused_call(503)),
                                               f"127.0.0.1:{sip_port}", "-m", "1", "-i", "127.0.0.1"],
                                              tmp_path, timeout_s=20))
                assert result.ok, result.output
            calls = httpx.get(f"{base}/api/calls", headers=auth).json()["items"]
            messages = httpx.get(f"{base}/api/messages", headers=auth).json()["items"]
        finally:
            out = _stop(proc)
    assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    assert [c["state"] for c in calls] == ["refused", "refused"]
    assert all(c["ended_reason"] == "turned away: calls folder disk full" for c in calls)
    [notice] = messages  # one for the run of refusals
    assert notice["urgency"] == "high" and "is full" in notice["text"]
    assert str(disk / "calls") in notice["text"]
