"""What a stranger throws at the SIP port, for the robustness tests and benchmarks/sip_hostile.py: SIP
requests of every kind (INVITE with and without SDP, ACK, BYE, CANCEL, REGISTER, OPTIONS), a seeded
mutator that breaks them the ways fuzzers do, and the standin endpoint in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sip.sipp import free_port, free_rtp_range

REPO = Path(__file__).resolve().parents[2]

SDP = ("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 8 9 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def request(method: str, target: str, source: str, *, sdp: bool = False, to_tag: str = "",
            call_id: str | None = None, transport: str = "UDP", extra: str = "",
            from_: str = "") -> bytes:
    """One well-formed request from `source` ("ip:port") to `target` ("ip:port")."""
    ip = source.rsplit(":", 1)[0]
    body = SDP.format(ip=ip, port=40000 + random.randrange(0, 2000, 2)) if sdp else ""
    call_id = call_id or f"{random.getrandbits(64):x}@{ip}"
    cseq_method = "INVITE" if method in ("ACK", "CANCEL") else method
    lines = [
        f"{method} sip:standin@{target} SIP/2.0",
        f"Via: SIP/2.0/{transport} {source};branch=z9hG4bK{random.getrandbits(48):x};rport",
        "Max-Forwards: 70",
        f"From: {from_ or DEFAULT_FROM.format(ip=ip)};tag={random.getrandbits(32):x}",
        f"To: <sip:standin@{target}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {random.randint(1, 1000)} {cseq_method if method != 'ACK' else 'ACK'}",
        f"Contact: <sip:caller@{source}>",
    ]
    if extra:
        lines.append(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()



DEFAULT_FROM = '"Caller" <sip:+15550001111@{ip}>'
KINDS = ("INVITE", "INVITE-no-sdp", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS")


def seed_request(kind: str, target: str, source: str, rng: random.Random, transport: str = "UDP") -> bytes:
    in_dialog = kind in ("BYE", "ACK") and rng.random() < 0.5
    return request(kind.split("-", 1)[0], target, source, sdp=kind == "INVITE",
                   to_tag=f"{rng.getrandbits(32):x}" if in_dialog else "", transport=transport)


_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
            "Max-Forwards", "Route", "Record-Route", "Authorization", "Expires", "Supported", "Require")
_NASTY = ("", " ", "\x00", "\xff\xfe", "<", ">", '"', "\\", ";", ",", ":", "@", "%00", "%", "[", "]",
          "sip:", "tel:", "-1", "0", "4294967296", "99999999999999999999", "1e309", "\r\n", "\t",
          "A" * 300, "A" * 5000, "<sip:a@b>" * 50, "SIP/2.0", "INVITE", "m=audio 0 RTP/AVP 0",
          "v=0\r\nm=audio 1 RTP/AVP", "z9hG4bK", "\u00e9\u00e8")


def mutate(packet: bytes, rng: random.Random) -> bytes:
    """`packet` broken in one to three of the ways a SIP fuzzer breaks things."""
    text = packet.decode("latin-1")
    for _ in range(rng.randint(1, 3)):
        head, sep, body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        way = rng.randrange(12)
        if way == 0 and len(lines) > 1:  # a header gone
            del lines[rng.randrange(1, len(lines))]
        elif way == 1 and len(lines) > 1:  # a header twice
            lines.insert(rng.randrange(1, len(lines)), rng.choice(lines[1:]))
        elif way == 2:  # a header's value replaced
            i = rng.randrange(len(lines))
            name = lines[i].split(":", 1)[0] if i else rng.choice(_HEADERS)
            lines[i] = f"{name}: {rng.choice(_NASTY)}"
        elif way == 3:  # a header added
            lines.insert(rng.randrange(1, len(lines) + 1), f"{rng.choice(_HEADERS)}: {rng.choice(_NASTY)}")
        elif way == 4:  # the request line broken
            parts = lines[0].split(" ")
            parts[rng.randrange(len(parts))] = rng.choice(_NASTY)
            lines[0] = " ".join(parts)
        elif way == 5:  # Content-Length lies
            lines = [ln for ln in lines if not ln.lower().startswith("content-length")]
            lines.append(f"Content-Length: {rng.choice(['0', '1', '-5', '100000', str(len(body) + 7)])}")
        elif way == 6:  # the body replaced
            body = rng.choice(_NASTY) * rng.randint(1, 20)
        elif way == 7:  # the SDP offered without its Content-Type, or with a wrong one
            lines = [ln for ln in lines if not ln.lower().startswith("content-type")]
            kind = rng.choice(["text/plain", "application/sdp;x", "multipart/mixed"])
            lines.append(f"Content-Type: {kind}")
        elif way == 8:  # truncated anywhere
            whole = "\r\n".join(lines) + sep + body
            return whole[:rng.randrange(len(whole) + 1)].encode("latin-1", "replace")
        elif way == 9:  # random bytes flipped
            raw = bytearray(("\r\n".join(lines) + sep + body).encode("latin-1", "replace"))
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            return bytes(raw)
        elif way == 10:  # line endings mixed
            return ("\n".join(lines) + "\n\n" + body).encode("latin-1", "replace")
        else:  # header folding and odd case
            i = rng.randrange(len(lines))
            lines[i] = lines[i].swapcase() if rng.random() < 0.5 else lines[i].replace(" ", "\r\n ", 1)
        text = "\r\n".join(lines) + sep + body
    return text.encode("latin-1", "replace")


def fuzz_packets(count: int, target: str, sources: list[str], seed: int = 14,
                 transport: str = "UDP") -> Iterator[tuple[str, bytes]]:
    """`count` (source, packet): each kind in turn, nine in ten mutated, one in ten left whole."""
    rng = random.Random(seed)
    for i in range(count):
        source = sources[i % len(sources)]
        packet = seed_request(KINDS[i % len(KINDS)], target, source, rng, transport)
        yield source, packet if rng.random() < 0.1 else mutate(packet, rng)


def endpoint_options(rtp_ports: int = 80, **overrides: Any) -> dict[str, Any]:
    """SipOptions fields for an endpoint on loopback taking calls from 127.0.0.1 only, UDP and TCP, with
    `rtp_ports` RTP ports and a 2 s media timeout (calls the hostile traffic set up end quickly)."""
    values: dict[str, Any] = {"listen": f"127.0.0.1:{free_port()}", "transports": ["udp", "tcp"],
                              "rtp_port_start": free_rtp_range(rtp_ports), "rtp_port_count": rtp_ports,
                              "allow_from": ["127.0.0.1/32"], "media_timeout_s": 2.0}
    values.update(overrides)
    return values


def udp_from(ip: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.settimeout(0.5)
    return sock


def status_of(answer: bytes) -> int:
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[0] == b"SIP/2.0" and parts[1].isdigit() else 0


def final_status(sock: socket.socket, timeout_s: float = 3.0) -> int:
    """The first final (>= 200) status that comes back on `sock`, or 0."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            code = status_of(sock.recv(65535))
        except TimeoutError:
            continue
        if code >= 200:
            return code
    return 0


@dataclass
class EndpointProcess:
    proc: subprocess.Popen[str]
    addresses: dict[str, str]
    output: list[str]
    reader: threading.Thread

    @property
    def target(self) -> str:
        return self.addresses["udp"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the endpoint's counts (an empty dict if it had died)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        for line in self.output:
            if line.startswith("COUNTS "):
                return dict(json.loads(line[7:]))
        return {}

    def tail(self, lines: int = 30) -> str:
        return "".join(self.output[-lines:])


@contextlib.contextmanager
def endpoint_process(options: dict[str, Any], admit_file: Path | None = None) -> Iterator[EndpointProcess]:
    """standin's SipEndpoint in a child process with `options` (SipOptions fields)."""
    args = [sys.executable, "-m", "tests.sip.endpoint_process", json.dumps(options)]
    if admit_file is not None:
        args.append(str(admit_file))
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    addresses: dict[str, str] | None = None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("READY "):
            addresses = json.loads(line[6:])
            break
    if addresses is None:
        proc.kill()
        raise RuntimeError("the endpoint process did not start:\n" + "".join(seen[-30:]))
    output = seen

    def drain() -> None:  # the child must never block on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    endpoint = EndpointProcess(proc, addresses, output, reader)
    try:
        yield endpoint
    finally:
        if endpoint.proc.poll() is None:
            endpoint.stop()
