"""`standin serve` as a user runs it: one process answering SIP and serving the dashboard. A SIPp caller
leaves a message; the API shows the call and the message; SIGTERM stops everything cleanly."""

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

from tests.sip.endpoint_kit import require_pjsua2
from tests.sip.sipp import free_port, free_rtp_range, pcap_folder, run_sipp

TOKEN = "test-token-0123456789abcdef"


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"standin serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("standin serve did not come up")


def _serve(tmp_path: Path, sip_port: int, web_port: int) -> subprocess.Popen[bytes]:
    transcript = pcap_folder(tmp_path)
    config = tmp_path / "standin.toml"
    config.write_text(f"""
[call]
greeting = "Hello, this is standin."
[stt]
transcript = "{transcript}"
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
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert b"Traceback" not in out, out.decode(errors="replace")[-3000:]
