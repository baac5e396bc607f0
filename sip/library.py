"""Setting up pjsua2 for the endpoint: library config, transports, codecs, the account; registration
status; pjsip's own log lines. Functions here take the pjsua2 module as an argument (it is imported
lazily) and run on the SIP thread."""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from sip.options import SipOptions

log = logging.getLogger("sip.endpoint")

# Preferred first; anything else is switched off (see also sdp.py, which makes the answer follow it).
CODEC_PRIORITY = {"G722/16000/1": 255, "PCMU/8000/1": 254, "PCMA/8000/1": 253,
                  "L16/16000/1": 130, "L16/8000/1": 129, "L16/44100/1": 128}
REFUSAL_SLOTS = 4  # pjsua call slots beyond max_calls, so refusals still get our 403/486
PJSUA_MAX_CALLS = 32
WILDCARDS = ("0.0.0.0", "::")


class SipUnavailable(RuntimeError):
    """pjsua2 is missing or unusable, or the endpoint cannot start; the message says why."""


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    state: str  # direct, registering, registered, failed, unregistered, stopped
    code: int = 0  # the registrar's last SIP status (0: none yet)
    reason: str = ""
    expires_s: int = 0
    registrar: str | None = None
    changed_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.state in ("direct", "registered")


def endpoint_config(pj: Any, o: SipOptions, writer: Any) -> Any:
    cfg = pj.EpConfig()
    ua = cfg.uaConfig
    ua.threadCnt = 0  # no pjsip worker: the SIP thread polls the events
    ua.mainThreadOnly = False
    ua.maxCalls = min(o.max_calls + REFUSAL_SLOTS, PJSUA_MAX_CALLS)
    ua.userAgent = o.user_agent
    lc = cfg.logConfig
    lc.level = lc.consoleLevel = o.log_level  # the writer gets the lines consoleLevel lets through
    lc.decor = pj.PJ_LOG_HAS_SENDER
    lc.msgLogging = 0  # whole SIP messages carry numbers: never logged
    lc.writer = writer
    med = cfg.medConfig
    med.clockRate = med.sndClockRate = 16000  # the bridge, so every AudioMediaPort, runs at 16 kHz
    med.audioFramePtime = med.ptime = 20
    med.channelCount = 1
    med.noVad = True  # send every frame, no silence suppression
    med.ecTailLen = 0  # no echo canceller in pjmedia (standin knows what it played)
    med.maxMediaPorts = 2 * ua.maxCalls + 8
    # RTP on pjsip's ioqueue, polled by the SIP thread every <= 10 ms. pjmedia's own worker polls a
    # select() ioqueue in 500 ms rounds and only sees a new call's socket at its next round: the RTP
    # queued meanwhile would sit in the jitter buffer as up to half a second of extra delay.
    med.hasIoqueue = False
    med.threadCnt = 0
    return cfg  # jitter buffer (adaptive) and PLC: pjmedia's defaults


def create_transports(pj: Any, ep: Any, o: SipOptions) -> dict[str, str]:
    """Listen on every configured transport; returns transport -> bound 'host:port'."""
    host = o.listen_host
    v6 = ":" in host
    kinds = {"udp": pj.PJSIP_TRANSPORT_UDP6 if v6 else pj.PJSIP_TRANSPORT_UDP,
             "tcp": pj.PJSIP_TRANSPORT_TCP6 if v6 else pj.PJSIP_TRANSPORT_TCP,
             "tls": pj.PJSIP_TRANSPORT_TLS6 if v6 else pj.PJSIP_TRANSPORT_TLS}
    addresses = {}
    for name in o.transports:
        tcfg = pj.TransportConfig()
        tcfg.port = o.tls_port if name == "tls" else o.listen_port
        if host not in WILDCARDS:
            tcfg.boundAddress = host
        if name == "tls":
            tcfg.tlsConfig.certFile = str(o.tls_cert)
            tcfg.tlsConfig.privKeyFile = str(o.tls_key)
        try:
            tid = ep.transportCreate(kinds[name], tcfg)
        except Exception as exc:
            raise SipUnavailable(f"cannot listen for SIP over {name} on {host}:{tcfg.port}: "
                                 f"{pj_error(exc)} (is the port in use?)") from None
        addresses[name] = ep.transportGetInfo(tid).localName
    return addresses


def set_codec_priorities(ep: Any) -> None:
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, CODEC_PRIORITY.get(codec.codecId, 0))


def account_config(pj: Any, o: SipOptions, password: str | None) -> Any:
    acfg = pj.AccountConfig()
    rtp = acfg.mediaConfig.transportConfig
    rtp.port = o.rtp_port_start
    rtp.portRange = o.rtp_port_count
    if o.listen_host not in WILDCARDS:
        rtp.boundAddress = o.listen_host
    if ":" in o.listen_host:
        acfg.mediaConfig.ipv6Use = pj.PJSUA_IPV6_ENABLED
    if o.registrar is None:
        host = o.listen_host if o.listen_host not in WILDCARDS else "localhost"
        acfg.idUri = f"sip:{o.username or 'standin'}@{host}"
        return acfg
    acfg.idUri = f"sip:{o.username}@{o.registrar_host}"
    reg = acfg.regConfig
    reg.registrarUri = o.registrar
    reg.timeoutSec = o.register_expires_s  # pjsua refreshes before the granted expiry runs out
    reg.retryIntervalSec = o.register_retry_s
    reg.firstRetryIntervalSec = min(o.register_retry_s, 10)
    reg.unregWaitMsec = 1000
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", o.username, 0, password))
    return acfg


_REGISTRATION_HINTS = {401: "check username and password", 403: "check username and password",
                       407: "check username and password", 404: "check the username",
                       408: "the registrar does not answer"}


def registration_update(before: RegistrationStatus, prm: Any, o: SipOptions) -> RegistrationStatus:
    """The status after a registration answer (pjsua2's OnRegStateParam), logged when it changed."""
    code, reason, expires = int(prm.code), str(prm.reason), int(prm.expiration)
    state = "failed" if not 200 <= code < 300 else "registered" if expires > 0 else "unregistered"
    after = RegistrationStatus(state, code, reason, expires, o.registrar)
    if (state, code) == (before.state, before.code):
        log.debug("registration refreshed: %d %s, expires in %d s", code, reason, expires)
    elif state == "registered":
        log.info("registered at %s: %d %s, expires in %d s", o.registrar, code, reason, expires)
    elif state == "unregistered":
        log.info("unregistered from %s", o.registrar)
    else:
        hint = _REGISTRATION_HINTS.get(code, "")
        log.warning("registration at %s failed: %d %s%s; retrying every %d s", o.registrar, code, reason,
                    f" ({hint})" if hint else "", o.register_retry_s)
    return after


class PjLog:
    """pjsip's log lines, queued by a LogWriter on any thread, logged from the SIP thread: the first
    line of each only (some dump whole packets, numbers included), at most `per_s` a second."""

    def __init__(self, per_s: int = 20) -> None:
        self.lines: queue.SimpleQueue[tuple[int, str]] = queue.SimpleQueue()
        self._per_s = per_s
        self._window = 0.0
        self._count = 0
        self._suppressed = 0

    def forward(self) -> None:
        now = time.monotonic()
        while True:
            try:
                level, text = self.lines.get_nowait()
            except queue.Empty:
                return
            if now - self._window >= 1.0:
                if self._suppressed:
                    log.warning("pjsip: %d more lines suppressed", self._suppressed)
                self._window, self._count, self._suppressed = now, 0, 0
            if self._count >= self._per_s:
                self._suppressed += 1
                continue
            self._count += 1
            first = text.strip().splitlines()[0][:200] if text.strip() else ""
            log.log(logging.WARNING if level <= 2 else logging.DEBUG, "pjsip: %s", first)


def pj_error(exc: BaseException) -> str:
    """pjsua2's Error says why in `reason` (its str() is a C++ call site)."""
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else str(exc)
