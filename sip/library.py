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
PJSUA_MAX_CALLS = 32
WILDCARDS = ("0.0.0.0", "::")
SND_AUTO_CLOSE_S = -1  # never: see endpoint_config


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
    # Every slot pjsua has: the gate holds calls to max_calls, and a call standin hung up keeps its slot
    # until pjsua ends it (half a minute when the caller never answers our BYE).
    ua.maxCalls = PJSUA_MAX_CALLS
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
    # The caller's audio waits in the jitter buffer for the bridge's next tick (see sip/README.md, "Latency").
    med.jbInit, med.jbMinPre, med.jbMaxPre, med.jbMax = (
        o.jb_init_ms, o.jb_min_prefetch_ms, o.jb_max_prefetch_ms, o.jb_max_ms)
    # Keep the bridge's clock (the null sound device) running between calls. pjsua stops it one second after
    # the last call and starts it again with the next call's media; against pjsua-based phones (the tests')
    # every call then had the bridge ticking 1-2 ms after the phone sent, so packets raced the tick they
    # were meant for and often missed it by a hair, waiting a whole extra frame. Running freely, the phase
    # is random: 10 ms on average, rarely a race.
    med.sndAutoCloseTime = SND_AUTO_CLOSE_S
    return cfg


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
        if o.public_address:  # what Via and Contact say instead of the bound address
            tcfg.publicAddress = o.public_address
        if name == "tls":
            tcfg.tlsConfig.certFile = str(o.tls_cert)
            tcfg.tlsConfig.privKeyFile = str(o.tls_key)
            tcfg.tlsConfig.msecTimeout = int(o.tcp_first_message_s * 1000)  # a handshake that stalls
        try:
            tid = ep.transportCreate(kinds[name], tcfg)
        except Exception as exc:
            raise SipUnavailable(f"cannot listen for SIP over {name} on {host}:{tcfg.port}: "
                                 f"{pj_error(exc)} (is the port in use?)") from None
        info = ep.transportGetInfo(tid)
        addresses[name] = info.localAddress if o.public_address else info.localName  # bound, not published
    return addresses


def set_codecs(ep: Any, o: SipOptions) -> None:
    """Codec priorities (CODEC_PRIORITY; the rest off) and packet loss concealment (`plc`) for each."""
    for codec in ep.codecEnum2():
        priority = CODEC_PRIORITY.get(codec.codecId, 0)
        ep.codecSetPriority(codec.codecId, priority)
        if priority:
            param = ep.codecGetParam(codec.codecId)
            param.setting.plc = o.plc
            ep.codecSetParam(codec.codecId, param)


def public_contact(o: SipOptions) -> str:
    """The Contact for `public_address`, on the first configured transport."""
    host = f"[{o.public_address}]" if ":" in (o.public_address or "") else o.public_address
    kind = o.transports[0]
    port = o.tls_port if kind == "tls" else o.listen_port
    return f"<sip:{o.username or 'standin'}@{host}:{port}{'' if kind == 'udp' else f';transport={kind}'}>"


def rx_stats(stat: Any) -> dict[str, float]:
    """The receive side of a pjsua2 StreamStat: RTP packets, lost (sequence gaps), interarrival jitter, and
    the jitter buffer's delay (mean and max over the frames it handed out), frames it dropped to shorten
    itself or because they came too late, and ticks it had nothing for."""
    rx, jb = stat.rtcp.rxStat, stat.jbuf
    return {"packets": int(rx.pkt), "lost": int(rx.loss), "jitter_ms": round(rx.jitterUsec.mean / 1000, 1),
            "jb_delay_ms": int(jb.avgDelayMsec), "jb_max_delay_ms": int(jb.maxDelayMsec),
            "jb_discarded": int(jb.discard), "jb_empty": int(jb.empty)}


def describe_rx(stats: dict[str, float]) -> str:
    if not stats:
        return ""
    return ("; RTP in: {packets} packets, {lost} lost, jitter {jitter_ms} ms; jitter buffer {jb_delay_ms} ms "
            "(max {jb_max_delay_ms}), {jb_discarded} dropped, {jb_empty} empty").format(**stats)


def account_config(pj: Any, o: SipOptions, password: str | None) -> Any:
    acfg = pj.AccountConfig()
    rtp = acfg.mediaConfig.transportConfig
    rtp.port = o.rtp_port_start
    rtp.portRange = o.rtp_port_count
    if o.listen_host not in WILDCARDS:
        rtp.boundAddress = o.listen_host
    if o.public_address:
        rtp.publicAddress = o.public_address  # the SDP's c= and o= lines
        # pjsua writes the interface's address into the Contact of its answers whatever the transport
        # publishes, so the Contact is forced
        acfg.sipConfig.contactForced = public_contact(o)
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
