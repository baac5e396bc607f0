"""`standin doctor` on a box set up right, and on the same box broken one way at a time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from server.doctor import context, engines, network, procs
from server.doctor.procs import Process, is_standin_serve
from tests.deploy.doctor_box import REPO, Box, failures, free_port, json_server, me, one

# --------------------------------------------------------------------------- a good box


def test_good_setup_passes(box: Box) -> None:
    code, findings = box.run()
    assert failures(findings) == []
    assert code == 0
    one(findings, "models", "ok", "all 4 files present")
    one(findings, "ports", "ok", f"udp 127.0.0.1:{box.sip_port} ([sip] listen) is free")
    one(findings, "ports", "ok", f"tcp 127.0.0.1:{box.web_port} ([web] listen) is free")
    one(findings, "rtp", "ok", "udp 47100-47139")
    one(findings, "web", "ok", "has an owner password")
    one(findings, "notify", "warn", "no notification channel")


def test_the_command_line_prints_findings_and_exit_status(box: Box) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "server.doctor", "--config", str(box.config), "--manifest",
                           str(box.manifest), "--only", "models,web", "--user", me()],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "standin is ready" in done.stdout
    (box.models / "piper/voice.onnx").unlink()
    done = subprocess.run([sys.executable, "-m", "server.doctor", "--config", str(box.config), "--manifest",
                           str(box.manifest), "--only", "models", "--json"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False)
    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert body["ok"] is False
    assert any(f["level"] == "fail" and "voice" in f["what"] for f in body["findings"])


# --------------------------------------------------------------------------- models


def test_missing_model_is_reported_with_the_pull_command(box: Box) -> None:
    (box.models / "whisper/tiny/config.json").unlink()
    code, findings = box.run("--only", "models")
    assert code == 1
    f = one(findings, "models", "fail", "model whisper-tiny")
    assert "whisper/tiny/config.json is missing" in f.what
    assert f.fix == (f"standin models pull --set cpu --models-dir {box.models} --manifest {box.manifest}")


def test_a_whole_missing_model_is_one_line(box: Box) -> None:
    for rel in ("piper/voice.onnx", "piper/voice.onnx.json"):
        (box.models / rel).unlink()
    code, findings = box.run("--only", "models")
    assert code == 1
    f = one(findings, "models", "fail", "model voice is missing (2 file(s)")
    assert f.fix.startswith("standin models pull --set cpu")


def test_bad_checksum_is_reported_as_corrupt(box: Box) -> None:
    path = box.models / "whisper/tiny/model.bin"
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    code, findings = box.run("--only", "models")
    assert code == 1
    f = one(findings, "models", "fail", "whisper/tiny/model.bin is corrupt")
    assert "sha256 differs" in f.what
    assert "standin models pull --set cpu" in f.fix


def test_a_configured_model_outside_the_set_must_exist(box: Box) -> None:
    box.rewrite(tts={"engine": "piper", "voice": str(box.root / "elsewhere" / "mine.onnx")})
    code, findings = box.run("--only", "models")
    assert code == 1
    f = one(findings, "models", "fail", "[tts] voice")
    assert "mine.onnx does not exist" in f.what
    (box.root / "elsewhere").mkdir()
    (box.root / "elsewhere" / "mine.onnx").write_bytes(b"x")
    (box.root / "elsewhere" / "mine.onnx.json").write_bytes(b"{}")
    code, findings = box.run("--only", "models")
    assert code == 0
    one(findings, "models", "info", "is not part of the model set")


# --------------------------------------------------------------------------- config


def test_invalid_config_stops_with_the_reason(box: Box) -> None:
    box.rewrite(stt={"engine": "whisper", "foo": 1})
    code, findings = box.run()
    assert code == 1
    assert [f.check for f in findings] == ["config"]
    assert "[stt]: unknown key 'foo'" in findings[0].what
    assert findings[0].fix.startswith(f"correct {box.config}")
    box.config.write_text("[stt\n", encoding="utf-8")
    code, findings = box.run()
    assert code == 1
    assert "not valid TOML" in findings[0].what


def test_invalid_sip_table(box: Box) -> None:
    box.rewrite(sip={"listen": "127.0.0.1:5060", "registrar": "sip:trunk.example.com"})
    code, findings = box.run()
    assert code == 1
    f = one(findings, "config", "fail", "a registrar needs a username")
    assert "[sip] table" in f.fix


# --------------------------------------------------------------------------- ports


def test_sip_port_taken_names_the_process_and_the_fix(box: Box) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", box.sip_port))
        code, findings = box.run("--only", "ports")
    assert code == 1
    f = one(findings, "ports", "fail", f"udp 127.0.0.1:{box.sip_port} ([sip] listen) is taken")
    assert f"pid {os.getpid()}" in f.what
    assert f.fix == "stop that program, or give standin another port in [sip] listen"
    one(findings, "ports", "ok", f"tcp 127.0.0.1:{box.sip_port} ([sip] listen) is free")


def test_dashboard_port_taken(box: Box) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", box.web_port))
        s.listen()
        code, findings = box.run("--only", "ports")
    assert code == 1
    f = one(findings, "ports", "fail", f"tcp 127.0.0.1:{box.web_port} ([web] listen) is taken")
    assert "[web] listen" in f.fix


def test_a_standin_that_just_started(box: Box) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "standin", "serve", "--config",
            str(box.config)]
    fake = subprocess.Popen(argv)
    try:
        # Popen returns as the child's exec begins: its command line shows in /proc a moment later.
        deadline = time.monotonic() + 10
        while (seen := procs.read_argv(fake.pid)) != tuple(argv) and time.monotonic() < deadline:
            time.sleep(0.01)
        if seen != tuple(argv):
            pytest.skip(f"this machine's /proc shows pid {fake.pid} as {seen!r}, not as the process just "
                        "started (a sandbox with its own process namespace), so doctor cannot see it there")
        code, findings = box.run("--only", "sip,ports")
        found = procs.standin_processes()
    finally:
        fake.kill()
        fake.wait()
    assert any(p.pid == fake.pid for p in found), found
    assert code == 0
    one(findings, "ports", "warn", f"udp 127.0.0.1:{box.sip_port} ([sip] listen): standin started moments")
    one(findings, "sip", "warn", f"standin runs (pid {fake.pid}) but its dashboard")


def test_process_age() -> None:
    from server.doctor.procs import process_age_s

    age = process_age_s(os.getpid())
    assert age is not None and 0 <= age < 3600
    assert process_age_s(2**22 + 12345) is None


def test_listen_address_not_on_this_box(box: Box) -> None:
    box.rewrite(sip={"listen": f"192.0.2.1:{box.sip_port}"})
    code, findings = box.run("--only", "ports")
    assert code == 1
    f = one(findings, "ports", "fail", f"udp 192.0.2.1:{box.sip_port}")
    assert "not an address of this box" in f.what


def test_rtp_range_mostly_taken(box: Box) -> None:
    box.rewrite(sip={"listen": f"127.0.0.1:{box.sip_port}", "rtp_port_start": 47200, "rtp_port_count": 10,
                     "max_calls": 4})
    held = []
    try:
        for port in range(47200, 47203):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(s)
            s.bind(("127.0.0.1", port))
        code, findings = box.run("--only", "rtp")
    finally:
        for s in held:
            s.close()
    assert code == 1
    f = one(findings, "rtp", "fail", "only 7 ports free, 4 calls need 8")
    assert "rtp_port_start" in f.fix


# --------------------------------------------------------------------------- engines


def test_whisper_on_cuda_without_a_gpu_fails(box: Box) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this box has a CUDA device")
    box.rewrite(stt={"engine": "whisper", "model": "whisper/tiny", "device": "cuda"})
    code, findings = box.run("--only", "engines")
    assert code == 1
    f = one(findings, "engines", "fail", "[stt] device = \"cuda\" but CTranslate2 sees no CUDA device")
    assert "cuDNN" in f.fix


def test_nvidia_smi_output_and_failure() -> None:
    @dataclass
    class Done:
        returncode: int
        stdout: str
        stderr: str = ""

    def fake(out: Done) -> Any:
        return lambda *a, **k: out

    with _fake_which("nvidia-smi", "/usr/bin/nvidia-smi"):
        ok = engines.nvidia_gpus(1, fake(Done(0, "0, NVIDIA H200, 570.86.15, 143771, 1024\n")))
        broken = engines.nvidia_gpus(1, fake(Done(9, "NVIDIA-SMI has failed because it couldn't communicate "
                                                 "with the NVIDIA driver.\n")))
    assert ok.names == ("GPU 0 NVIDIA H200, driver 570.86.15, 1024 of 143771 MiB used",) and not ok.error
    assert "couldn't communicate" in broken.error and "reboot" in broken.fix


@contextlib.contextmanager
def _fake_which(name: str, path: str) -> Iterator[None]:
    real = shutil.which  # server.doctor.engines looks it up in shutil
    with mock.patch.object(shutil, "which", lambda n, *a, **k: path if n == name else real(n, *a, **k)):
        yield


def test_openai_server_with_another_model(box: Box) -> None:
    with json_server({"/v1/models": (200, {"data": [{"id": "qwen2.5-7b"}]})}) as served:
        port = served.port
        box.rewrite(llm={"engine": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "other"})
        code, findings = box.run("--only", "engines")
        assert code == 1
        one(findings, "engines", "fail", "serves ['qwen2.5-7b'], not 'other'")
        box.rewrite(llm={"engine": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                         "model": "qwen2.5-7b"})
        code, findings = box.run("--only", "engines")
        one(findings, "engines", "ok", "serves qwen2.5-7b")
    box.rewrite(llm={"engine": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "x"})
    code, findings = box.run("--only", "engines")
    assert code == 1
    assert "systemctl start standin-vllm" in one(findings, "engines", "fail", "does not answer").fix


# --------------------------------------------------------------------------- SIP through /api/health


def _trunk(box: Box) -> None:
    secret = box.root / "sip-password"
    secret.write_text("s3cret\n", encoding="utf-8")
    box.rewrite(sip={"listen": f"127.0.0.1:{box.sip_port}", "registrar": "sip:127.0.0.1",
                     "username": "4930123", "password_file": str(secret)})


def test_registration_reported_by_the_running_service(box: Box) -> None:
    _trunk(box)
    health = {"status": "ok", "sip": {"state": "registered", "code": 200, "reason": "OK", "expires_s": 300,
                                      "registrar": "sip:127.0.0.1", "ok": True}}
    with json_server({"/api/health": (200, health)}, token="tok", port=box.web_port):
        code, findings = box.run("--only", "sip", "--token", "tok")
        assert code == 0
        one(findings, "sip", "ok", "registered at sip:127.0.0.1 as 4930123 (200 OK, expires in 300 s)")
        one(findings, "sip", "ok", "the SIP password for 4930123 is set")
        code, findings = box.run("--only", "sip")
        assert "--token" in one(findings, "sip", "warn", "without details: doctor needs an API token").fix


def test_failed_registration_says_what_to_fix(box: Box) -> None:
    _trunk(box)
    health = {"status": "degraded", "sip": {"state": "failed", "code": 403, "reason": "Forbidden",
                                            "registrar": "sip:127.0.0.1", "ok": False}}
    (box.root / "standin.env").write_text("# the service's secrets\nSTANDIN_API_TOKENS=\"tok,other\"\n",
                                          encoding="utf-8")
    with json_server({"/api/health": (503, health)}, token="tok", port=box.web_port):
        code, findings = box.run("--only", "sip")
    assert code == 1
    f = one(findings, "sip", "fail", "not registered at sip:127.0.0.1: failed 403 Forbidden")
    assert "username and the password" in f.fix
    one(findings, "config", "info", "read 1 variable(s)")


def test_missing_pjsua2(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "has_pjsua2", lambda: False)
    code, findings = box.run("--only", "sip")
    assert code == 1
    assert "sip/build_pjsua2.sh --venv" in one(findings, "sip", "fail", "pjsua2").fix


def test_missing_sip_password_and_service_not_running(box: Box) -> None:
    _trunk(box)
    (box.root / "sip-password").unlink()
    code, findings = box.run("--only", "sip")
    assert code == 1
    f = one(findings, "sip", "fail", "SIP password")
    assert "does not exist" in f.what and "standin_sip_password" in f.fix
    assert "systemctl start standin" in one(findings, "sip", "warn", "not running").fix


# --------------------------------------------------------------------------- notifications


def test_notification_channels(box: Box) -> None:
    with json_server({}) as served:
        port = served.port
        urls = box.root / "notify-urls"
        closed = free_port()
        urls.write_text(f"# channels\njson://127.0.0.1:{port}/hook\njson://127.0.0.1:{closed}/x\nnope://\n",
                        encoding="utf-8")
        box.rewrite(notify={"urls_file": str(urls)})
        code, findings = box.run("--only", "notify")
        assert code == 1
        one(findings, "notify", "ok", f"json://127.0.0.1:{port}/hook: 127.0.0.1:{port} answers")
        one(findings, "notify", "fail", f"127.0.0.1:{closed} cannot be reached")
        one(findings, "notify", "fail", "not a valid apprise URL")

        urls.write_text(f"json://127.0.0.1:{port}/hook\n", encoding="utf-8")
        code, findings = box.run("--only", "notify", "--notify-test")
        assert code == 0, findings
        one(findings, "notify", "ok", "test message sent")
        assert len(served.posts) == 1 and b"test" in served.posts[0]


def test_unreadable_urls_file(box: Box) -> None:
    box.rewrite(notify={"urls_file": str(box.root / "absent")})
    code, findings = box.run("--only", "notify")
    assert code == 1
    one(findings, "notify", "fail", "cannot be read")


# --------------------------------------------------------------------------- disk and dashboard


def test_missing_password_and_unmakeable_calls_dir(box: Box, tmp_path: Path) -> None:
    (box.root / "web-password").unlink()
    blocker = tmp_path / "file"
    blocker.write_text("")
    tables = box.tables()
    tables["storage"]["calls_dir"] = str(blocker)
    box.rewrite(storage=tables["storage"])
    code, findings = box.run("--only", "web,disk")
    assert code == 1
    assert one(findings, "web", "fail", "no owner password").fix == f"standin passwd --config {box.config}"
    one(findings, "disk", "fail", "is not a folder")


# --------------------------------------------------------------------------- helpers


def test_env_file_parsing() -> None:
    assert context.parse_env_file("# c\n\nA=1\nB = 'two'\nC=\"x=y\"\nbroken\n") == {"A": "1", "B": "two",
                                                                                     "C": "x=y"}


@pytest.mark.parametrize(("argv", "expected"), [
    (["/opt/standin/venv/bin/python", "/opt/standin/venv/bin/standin", "serve", "--config", "x"], True),
    (["python", "-m", "server.cli", "serve"], True),
    (["standin", "doctor"], False),
    (["/home/ci/standin/.venv/bin/python", "-m", "pytest", "tests/deploy"], False),
])
def test_standin_serve_is_recognised(argv: list[str], expected: bool) -> None:
    assert is_standin_serve(argv) is expected


def test_process_config_match(tmp_path: Path) -> None:
    me = Process(os.getpid(), ("standin", "serve", "--config", str(tmp_path / "a.toml")))
    assert me.serves(tmp_path / "a.toml") and not me.serves(tmp_path / "b.toml") and not me.serves(None)
    assert Process(os.getpid(), ("standin", "serve")).serves(None)
