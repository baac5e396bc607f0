"""The SIP endpoint's options, validated once, and the trunk password read from where they point.

Two modes:

- trunk mode (`registrar` set): standin registers `username` at the registrar and takes the calls the
  trunk sends. Unless `allow_from` says otherwise, only the registrar's own addresses (its host name
  resolved now and again) may call.
- direct mode (no `registrar`): calls are accepted on `listen` from a LAN softphone or a test. Unless
  `allow_from` says otherwise, only loopback and private addresses (RFC 1918, link-local, IPv6 ULA) may
  call. `allow_from = ["0.0.0.0/0", "::/0"]` opens the port to anyone: do that only behind a firewall.

The password is never part of the options: `password_env` names an environment variable, or
`password_file` a file holding it (first line); `password()` reads it, and a missing one is an error
that says what to set.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRANSPORTS = ("udp", "tcp", "tls")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?")
MAX_CALLS_LIMIT = 28  # pjsua's call slots (32) less a few for calls on their way out
# pjlib's socket table holds 1024 (sip/pjsua2_build/config_site.h): two RTP sockets per call and the
# listeners leave this many for connections, with room for those still closing
MAX_CONNECTIONS_LIMIT = 768


class SipConfigError(ValueError):
    """The SIP options are unusable; the message says which one and what to do."""


@dataclass(frozen=True, slots=True)
class SipOptions:
    listen: str = "0.0.0.0:5060"  # host:port for SIP (UDP and TCP share the port; "[::]:5060" for IPv6)
    transports: tuple[str, ...] = ("udp", "tcp")
    tls_port: int = 5061  # with "tls" in transports
    tls_cert: Path | None = None
    tls_key: Path | None = None
    public_address: str | None = None  # IP or host name for Via, Contact and the SDP (NAT, forwarded ports)
    rtp_port_start: int = 40000
    rtp_port_count: int = 1000  # each call takes two (RTP, RTCP)
    registrar: str | None = None  # "sip:trunk.example.com"; None = direct mode
    username: str | None = None
    password_env: str | None = None  # name of the environment variable holding the password
    password_file: Path | None = None  # or a file holding it
    allow_from: tuple[str, ...] = ()  # IPs, CIDRs or host names allowed to call; () = the mode's default
    max_calls: int = 4  # calls beyond this get 486 Busy Here
    answer_after_s: float = 0.0  # ring this long (180 Ringing) before answering
    user_agent: str = "standin"
    register_expires_s: int = 300
    register_retry_s: int = 60  # after a failed registration
    media_timeout_s: float = 30.0  # hang up when no RTP arrived for this long (0 = never)
    rx_buffer_frames: int = 50  # caller frames held for a slow reader before the oldest are dropped
    normalize_level: bool = True  # slow AGC on the caller's audio
    # The caller's audio on its way in (see sip/README.md, "Latency"): pjmedia's adaptive jitter buffer, in ms
    # of audio (whole 10 ms codec frames), and packet loss concealment.
    jb_init_ms: int = 0  # prefetch before playing; 0: none, a frame goes on at the first bridge tick after it
    jb_min_prefetch_ms: int = 20  # with jb_init_ms > 0, the adaptive prefetch stays within these bounds
    jb_max_prefetch_ms: int = 200
    jb_max_ms: int = 500  # the most audio it holds: beyond that the oldest frames are dropped
    plc: bool = False  # conceal lost packets (pjmedia's WSOLA), which delays every frame by 5 ms
    # The port faces strangers. A TCP/TLS connection must bring a whole SIP request (and TLS finish its
    # handshake) this soon after it opens, or it is closed; at most max_connections are open at once.
    tcp_first_message_s: float = 10.0
    max_connections: int = 64
    log_level: int = 2  # pjsip's own log lines up to this level (1 errors, 2 warnings, 3 info) go to logging
    resolve_every_s: float = 600.0  # re-resolve host names in allow_from (and the registrar) this often

    def __post_init__(self) -> None:
        object.__setattr__(self, "transports", tuple(t.lower() for t in self.transports))
        object.__setattr__(self, "allow_from", tuple(self.allow_from))
        self.listen_host  # noqa: B018 - parses and checks `listen`
        bad = [t for t in self.transports if t not in TRANSPORTS]
        if bad or not self.transports:
            raise SipConfigError(
                f"[sip] transports must be some of {list(TRANSPORTS)}, got {list(self.transports)}")
        if "tls" in self.transports and (self.tls_cert is None or self.tls_key is None):
            raise SipConfigError("[sip] transport tls needs tls_cert and tls_key (PEM file paths)")
        _check_port("tls_port", self.tls_port)
        if self.public_address is not None and not _is_host(self.public_address):
            raise SipConfigError(f"[sip] public_address must be an IP address or a host name (no port), "
                                 f"got {self.public_address!r}")
        if not (1 <= self.rtp_port_start <= 65534 and self.rtp_port_count >= 2
                and self.rtp_port_start + self.rtp_port_count <= 65536):
            raise SipConfigError(
                f"[sip] RTP ports {self.rtp_port_start}+{self.rtp_port_count} are out of range "
                "(1..65535, count >= 2)")
        if not 1 <= self.max_calls <= MAX_CALLS_LIMIT:
            raise SipConfigError(f"[sip] max_calls must be 1..{MAX_CALLS_LIMIT}, got {self.max_calls}")
        if not 0 <= self.answer_after_s <= 120:
            raise SipConfigError(f"[sip] answer_after_s must be 0..120 seconds, got {self.answer_after_s}")
        if self.media_timeout_s < 0 or self.rx_buffer_frames < 2 or self.register_expires_s < 30:
            raise SipConfigError(
                "[sip] need media_timeout_s >= 0, rx_buffer_frames >= 2, register_expires_s >= 30")
        if not 1 <= self.tcp_first_message_s <= 120:
            raise SipConfigError(
                f"[sip] tcp_first_message_s must be 1..120 seconds, got {self.tcp_first_message_s}")
        if not 1 <= self.max_connections <= MAX_CONNECTIONS_LIMIT:
            raise SipConfigError(
                f"[sip] max_connections must be 1..{MAX_CONNECTIONS_LIMIT}, got {self.max_connections}")
        self._check_jitter_buffer()
        self._check_trunk()
        for entry in self.allow_from:
            parse_allow_entry(entry)

    def _check_jitter_buffer(self) -> None:
        init, low = self.jb_init_ms, self.jb_min_prefetch_ms
        high, most = self.jb_max_prefetch_ms, self.jb_max_ms
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (init, low, high, most)):
            raise SipConfigError("[sip] jb_init_ms, jb_min_prefetch_ms, jb_max_prefetch_ms and jb_max_ms are "
                                 "whole milliseconds")
        if not 40 <= most <= 2000:
            raise SipConfigError(f"[sip] jb_max_ms must be 40..2000 ms, got {most}")
        if not (0 <= low <= high <= most and high >= 10 and 0 <= init <= high):
            raise SipConfigError(
                "[sip] the jitter buffer needs 0 <= jb_min_prefetch_ms <= jb_max_prefetch_ms <= jb_max_ms, "
                f"jb_max_prefetch_ms >= 10 and 0 <= jb_init_ms <= jb_max_prefetch_ms; got jb_init_ms={init}, "
                f"jb_min_prefetch_ms={low}, jb_max_prefetch_ms={high}, jb_max_ms={most}")

    def _check_trunk(self) -> None:
        if self.password_env is not None and self.password_file is not None:
            raise SipConfigError("[sip] set either password_env or password_file, not both")
        if self.registrar is None:
            return
        if not re.match(r"^sips?:[^\s@]+$", self.registrar):
            raise SipConfigError(
                f"[sip] registrar must be a SIP URI like sip:trunk.example.com, got {self.registrar!r}")
        if not self.username:
            raise SipConfigError("[sip] a registrar needs a username")
        if self.password_env is None and self.password_file is None:
            raise SipConfigError("[sip] a registrar needs password_env (an environment variable's name) "
                                 "or password_file; the password itself never goes into the config")

    # ------------------------------------------------------------------ derived

    @property
    def mode(self) -> str:
        return "direct" if self.registrar is None else "trunk"

    @property
    def listen_host(self) -> str:
        return split_host_port(self.listen, "listen")[0]

    @property
    def listen_port(self) -> int:
        return split_host_port(self.listen, "listen")[1]

    @property
    def registrar_host(self) -> str | None:
        if self.registrar is None:
            return None
        rest = self.registrar.split(":", 1)[1].split(";", 1)[0]
        if rest.startswith("["):
            return rest[1:rest.index("]")]
        return rest.split(":", 1)[0]

    def password(self) -> str:
        """The trunk password, read now from the environment or the secret file."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env, "")
            if not value:
                raise SipConfigError(f"SIP password: the environment variable {self.password_env} is not set "
                                     "(export it before starting standin, or use password_file)")
            return value
        if self.password_file is not None:
            path = Path(self.password_file).expanduser()
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                raise SipConfigError(f"SIP password: the file {path} does not exist "
                                     "(write the password into it, readable by standin only)") from None
            except OSError as exc:
                raise SipConfigError(f"SIP password: cannot read {path}: {exc.strerror}") from None
            value = lines[0].strip() if lines else ""
            if not value:
                raise SipConfigError(f"SIP password: the file {path} is empty")
            return value
        raise SipConfigError("SIP password: neither password_env nor password_file is set")

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> SipOptions:
        """From a config table (`[sip]` in TOML): lists become tuples, paths become Paths, unknown keys
        are refused with the known ones listed."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise SipConfigError(f"[sip] unknown keys {unknown}; known keys: {sorted(known)}")
        kwargs: dict[str, Any] = dict(table)
        for key in ("transports", "allow_from"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        for key in ("tls_cert", "tls_key", "password_file"):
            if kwargs.get(key) is not None:
                kwargs[key] = Path(kwargs[key])
        return cls(**kwargs)


def split_host_port(text: str, what: str = "address") -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]\s]+):(\d+)", text.strip())
    if not m:
        raise SipConfigError(f"[sip] {what} must be host:port (or [v6]:port), got {text!r}")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    _check_port(what, port, allow_zero=True)
    return host, port


def parse_allow_entry(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str:
    """An allow_from entry: an IP or CIDR network, or else a host name (returned as is)."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    if _HOST_NAME.fullmatch(text) and not re.fullmatch(r"[\d.]+", text):
        return text.lower().rstrip(".")
    raise SipConfigError(
        f"[sip] allow_from entry {entry!r} is not an IP address, a CIDR network or a host name")


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(_HOST_NAME.fullmatch(text)) and not re.fullmatch(r"[\d.]+", text)


def _check_port(what: str, port: int, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise SipConfigError(f"[sip] {what}: port {port} is out of range")
