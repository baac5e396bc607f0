"""standin's SIP endpoint: pjsua2 on a thread of its own, calls handed to asyncio as `SipCall`s.

Threads:
- "standin-sip" (ours, started by `start()`) owns pjsua2: it creates the library, polls pjsip's and
  pjmedia's sockets and timers (`libHandleEvents`, at most 10 ms at a time: pjsip and pjmedia get no
  worker threads of their own), answers, hangs up, tears down and finally destroys everything. Every
  SIP callback (incoming call, call and media state, registration, DTMF) runs on it, and every pjsua2
  call standin makes is made on it: the thread that created the library is pjlib's own, and other
  threads only post closures to its command queue, so no other Python thread ever calls pjsua2 (and
  none needs libRegisterThread). It never blocks beyond that poll; callbacks only do bookkeeping.
- pjmedia's clock thread (the null sound device) drives the conference bridge: each tick it asks each
  call's `AudioPort` for the bot's frame (`SipCall.outbound` -> the runtime's pull) and hands it the
  caller's (`SipCall.push`, into a bounded buffer). Nothing else runs there.
- the asyncio loop gets each answered call through `on_call` (via `call_soon_threadsafe`) and reads it;
  the level normaliser runs there, in `SipCall.frames()`.
- "standin-sip-dns" re-resolves host names in allow_from (and the trunk's) now and again.

The gate (legs.Gate, over sip/pjsua2_build/standin_gate.i) sees each request before pjsua: from outside
allow_from it is answered 403 (an ACK dropped), a new INVITE while stopping or while `admit` says no gets
503, beyond max_calls 486, all statelessly, so a refused INVITE never becomes a pjsua call. TCP/TLS
connections from outside allow_from, beyond max_connections, or silent for tcp_first_message_s are closed.

A call's lifecycle: INVITE -> the gate -> 180 Ringing -> after `answer_after_s` 200 OK -> media up: an
AudioPort joins the call's bridge slot
both ways -> `on_call(call)` on the loop -> BYE from either side, CANCEL before the answer, an RTP
timeout or `stop()` -> the port is deleted, the call marked ended (frames() ends), the leg dropped.
Logs name calls by id ("call-3") and never carry the caller's number.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import inspect
import itertools
import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from sip import library, ring
from sip.access import AllowList, IPAddress, RefusalTally, asserted_number, caller_number, resolve, source_ip
from sip.library import RegistrationStatus, SipUnavailable, pj_error
from sip.media import LevelNormalizer, SipCall
from sip.options import SipConfigError, SipOptions

log = logging.getLogger(__name__)

TICK_MS = 10  # longest wait in pjsip's event poll; commands from other threads wait at most this

_running_lock = threading.Lock()
_running: list[SipEndpoint] = []  # pjsua2 allows one Endpoint per process


def load_pjsua2() -> ModuleType:
    try:
        import pjsua2
    except ImportError as exc:
        raise SipUnavailable(f"pjsua2 is not importable ({exc}); build it with sip/build_pjsua2.sh") from None
    if not hasattr(pjsua2, "AudioMediaPort") or not hasattr(pjsua2.MediaFrame, "standinGetBytes"):
        raise SipUnavailable("this pjsua2 lacks standin's AudioMediaPort support; "
                             "rebuild it with sip/build_pjsua2.sh --rebuild")
    module: ModuleType = pjsua2
    return module


class SipEndpoint:
    """Answers SIP calls and hands each, answered, to `on_call(call)` on the asyncio loop.

    If `on_call` returns an awaitable it runs as a task; when it finishes the call is hung up if it is
    still up. `admit()`, when given, is asked on the SIP thread before each new call is taken: None to go
    on, or a short reason to refuse it with 503 (it must not block). `start()` and `stop()` block (stop
    up to a few seconds while calls hang up); from a running
    loop use `await asyncio.to_thread(endpoint.stop)`.
    """

    def __init__(self, options: SipOptions, on_call: Callable[[SipCall], object], *,
                 loop: asyncio.AbstractEventLoop | None = None,
                 resolver: Callable[[str], set[IPAddress]] = resolve,
                 admit: Callable[[], str | None] | None = None) -> None:
        self.options = options
        self._on_call = on_call
        self._loop = loop
        self._admit = admit
        self._allow = AllowList.for_options(options, resolver)
        # P-Asserted-Identity is believed from the registrar's own addresses only
        self._trunk = AllowList([options.registrar_host], resolver) if options.registrar_host else None
        self.addresses: dict[str, str] = {}  # transport -> bound "host:port"
        # offered: INVITEs the gate let through to pjsua, each a pjsua call
        self.counts = {"offered": 0, "answered": 0, "refused": 0, "busy": 0, "unavailable": 0, "cancelled": 0,
                       "requests_refused": 0, "connections_refused": 0}
        self._refusals = RefusalTally()
        self._active: dict[str, SipCall] = {}  # answered calls still up (written on the SIP thread)
        self._registration = RegistrationStatus("stopped", registrar=options.registrar)
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._pj_log = library.PjLog()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count(1)  # timer order
        self._call_numbers = itertools.count(1)
        self._legs: dict[str, Any] = {}  # call id -> legs.Leg, only touched on the SIP thread
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread: threading.Thread | None = None
        self._dns_thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._startup_error: BaseException | None = None
        self._pj: Any = None
        self._legs_mod: Any = None
        self._ep: Any = None
        self._account: Any = None
        self._gate: Any = None

    # ------------------------------------------------------------------ public API

    def start(self, timeout_s: float = 15.0) -> None:
        if self._thread is not None:
            raise RuntimeError("this SipEndpoint was already started")
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError("SipEndpoint needs an asyncio loop: pass loop= or call start() "
                                   "from a coroutine") from None
        self._pj = load_pjsua2()
        from sip import legs

        self._legs_mod = legs
        password = self.options.password() if self.options.registrar else None
        self._check_tls_files()
        failed = self._allow.refresh()
        if failed:
            log.warning("allow_from: cannot resolve %s now; calls from there are refused until it resolves",
                        ", ".join(failed))
        if self._trunk is not None:
            self._trunk.refresh()
        with _running_lock:
            if _running:
                raise RuntimeError("a SipEndpoint is already running in this process (pjsua2 allows one)")
            _running.append(self)
        self._thread = threading.Thread(target=self._run, args=(password,), name="standin-sip", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self._stopping.set()
            raise SipUnavailable(f"the SIP endpoint did not start within {timeout_s:.0f} s")
        if self._startup_error is not None:
            self._thread.join(timeout_s)
            self._release()
            raise self._startup_error
        if self._allow.names or self._trunk is not None:
            self._dns_thread = threading.Thread(target=self._resolve_loop, name="standin-sip-dns",
                                                daemon=True)
            self._dns_thread.start()
        log.info("SIP endpoint up (%s mode) on %s%s; calls allowed from %s", self.options.mode,
                 ", ".join(f"{t} {a}" for t, a in self.addresses.items()),
                 f" (public address {self.options.public_address})" if self.options.public_address else "",
                 self._allow.describe())

    def stop(self, timeout_s: float = 15.0) -> None:
        """Hang up every call, unregister, delete the audio ports, destroy pjsua2. Idempotent."""
        thread = self._thread
        if thread is None or (self._stopping.is_set() and not thread.is_alive()):
            return
        self._stopping.set()
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("the SIP thread did not stop within %.0f s", timeout_s)
            return
        if self._dns_thread is not None:
            self._dns_thread.join(2.0)
        self._release()
        log.info("SIP endpoint stopped")

    def registration(self) -> RegistrationStatus:
        return self._registration

    def calls(self) -> list[SipCall]:
        """The answered calls that are still up (a snapshot, from any thread)."""
        return list(self._active.values())

    def dial(self, uri: str) -> ring.OwnerLeg:
        """From the loop: call `uri` from standin's account; the OwnerLeg follows it (sip/ring.py)."""
        return ring.dial(self, uri, f"out-{next(self._call_numbers)}")

    def transfer(self, call: SipCall, uri: str) -> ring.Transfer:
        """From the loop: ask the other side of `call` to take it to `uri` (a blind REFER; sip/ring.py)."""
        return ring.transfer(self, call.call_id, uri)

    def bridge(self, a: SipCall, b: SipCall) -> None:
        """From any thread: the two calls hear each other, in the conference bridge (sip/ring.py)."""
        self._post(lambda: ring.bridge(self, a.call_id, b.call_id))

    # ------------------------------------------------------------------ the SIP thread

    def _run(self, password: str | None) -> None:
        try:
            self._create(password)
        except Exception as exc:
            self._startup_error = _detached(exc)  # its frames would keep pjsua2 objects alive
            del exc
            self._destroy()
            self._ready.set()
            return
        self._ready.set()
        next_housekeeping, failures = 0.0, 0
        try:
            while not self._stopping.is_set():
                try:
                    self._ep.libHandleEvents(TICK_MS)
                    self._gate.sweep()
                    self._run_pending()
                    now = time.monotonic()
                    if now >= next_housekeeping:
                        next_housekeeping = now + 1.0
                        self._check_media(now)
                        self._refusals.flush(now)
                    failures = 0
                except Exception:
                    failures += 1
                    log.exception("SIP event loop error (%d in a row)", failures)
                    if failures >= 50:
                        log.error("the SIP thread keeps failing; shutting the endpoint down")
                        break
                    time.sleep(0.1)
        finally:
            self._shutdown()

    def _create(self, password: str | None) -> None:
        pj, o = self._pj, self.options
        self._ep = pj.Endpoint()
        self._ep.libCreate()
        writer = self._legs_mod.LogSink(self._pj_log.lines)
        writer.__disown__()  # libDestroy() deletes it
        self._ep.libInit(library.endpoint_config(pj, o, writer))
        self._gate = self._legs_mod.Gate(self)
        self._gate.install(int(o.tcp_first_message_s * 1000), o.max_connections)
        self.addresses = library.create_transports(pj, self._ep, o)
        self._ep.libStart()
        self._ep.audDevManager().setNullDev()  # also the clock that drives the bridge
        library.set_codecs(self._ep, o)
        if o.registrar is None:
            self._registration = RegistrationStatus("direct")
        else:
            self._registration = RegistrationStatus("registering", registrar=o.registrar)
            log.info("registering at %s", o.registrar)
        self._account = self._legs_mod.Account(self)
        self._account.create(library.account_config(pj, o, password), True)

    def _run_pending(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            try:
                command()
            except Exception:
                log.exception("SIP command failed")
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            try:
                fn()
            except Exception:
                log.exception("SIP timer failed")
        self._pj_log.forward()

    def _post(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the SIP thread (from any thread)."""
        self._commands.put(fn)

    def _after(self, delay_s: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), fn))

    # ------------------------------------------------------------------ the gate (SIP thread)

    def on_request(self, method: str, source: str, in_dialog: bool) -> int:
        """0 lets pjsua have the request; otherwise the status to answer it with (see the gate)."""
        if not self._allow.allows(source):
            self.counts["requests_refused"] += 1
            if method == "INVITE" and not in_dialog:
                self.counts["refused"] += 1
                self._refusals.note("refused (403): a call from outside allow_from", source)
            return 403
        if method != "INVITE" or in_dialog:
            return 0
        if self._stopping.is_set():
            return 503
        reason = self._admission()
        if reason is not None:
            self.counts["unavailable"] += 1
            self._refusals.note(f"refused (503): {reason}", source)
            return 503
        if self._active_legs() >= self.options.max_calls:
            self.counts["busy"] += 1
            self._refusals.note("refused (486): max_calls are up", source)
            return 486
        return 0

    def on_connection(self, source: str) -> bool:
        if self._allow.allows(source):
            return True
        self.counts["connections_refused"] += 1
        self._refusals.note("closed: a connection from outside allow_from", source)
        return False

    def _admission(self) -> str | None:
        if self._admit is None:
            return None
        try:
            return self._admit()
        except Exception as exc:
            log.error("admit() failed (%s); taking the call", type(exc).__name__)
            return None

    def _active_legs(self) -> int:
        """Calls taken and not on their way out: one standin hung up can take pjsua half a minute to end
        (a 200 the caller never ACKed is sent again until then) and must not keep the line busy."""
        return sum(1 for leg in self._legs.values() if leg.call is not None and not leg.disconnected
                   and leg.hangup_reason is None and not getattr(leg, "outbound", False))

    # ------------------------------------------------------------------ calls (SIP thread)

    def on_incoming(self, account: Any, prm: Any) -> None:
        name = f"call-{next(self._call_numbers)}"
        source = str(prm.rdata.srcAddress)
        self.counts["offered"] += 1
        leg = self._legs_mod.Leg(account, prm.callId, self, name)
        self._legs[name] = leg
        active = self._active_legs()
        # The gate refused all of these already; this stays for a request it let through on an error.
        if self._stopping.is_set():
            self._refuse(leg, 503, "Service Unavailable")
        elif not self._allow.allows(source):
            self.counts["refused"] += 1
            log.info("%s refused (403): source %s is not in allow_from", name, source_ip(source) or "?")
            self._refuse(leg, 403, "Forbidden")
        elif active >= self.options.max_calls:
            self.counts["busy"] += 1
            log.info("%s refused (486): %d calls already up (max_calls)", name, active)
            self._refuse(leg, 486, "Busy Here")
        else:
            info = leg.getInfo()
            number = caller_number(info.remoteUri)
            if self._trunk is not None and self._trunk.allows(source):
                number = asserted_number(str(prm.rdata.wholeMsg)) or number
            assert self._loop is not None  # start() set it before pjsua could take a call
            leg.call = SipCall(
                name, number, source, loop=self._loop,
                request_hangup=self._request_hangup,
                buffer_frames=self.options.rx_buffer_frames,
                normalizer=LevelNormalizer() if self.options.normalize_level else None)
            log.info("%s: incoming from %s, ringing", name, source_ip(source) or "?")
            self._answer(leg, 180)
            self._after(self.options.answer_after_s, lambda: self._answer_now(name))

    def _refuse(self, leg: Any, code: int, reason: str) -> None:
        prm = self._pj.CallOpParam()
        prm.statusCode = code
        prm.reason = reason
        leg.hangup_reason = f"refused {code}"
        leg.hangup(prm)

    def _answer(self, leg: Any, code: int) -> None:
        prm = self._pj.CallOpParam()
        prm.statusCode = code
        leg.answer(prm)

    def _answer_now(self, name: str) -> None:
        leg = self._legs.get(name)
        if leg is None or leg.disconnected:
            return
        try:
            self._answer(leg, 200)
        except Exception as exc:
            log.warning("%s: cannot answer: %s", name, pj_error(exc))
            return
        leg.answered = True
        leg.rx_packets, leg.rx_seen_at = 0, time.monotonic()
        self.counts["answered"] += 1
        self._active[name] = leg.call
        log.info("%s: answered", name)
        try:
            self._loop.call_soon_threadsafe(self._deliver, leg.call)  # type: ignore[union-attr]
        except RuntimeError:  # the loop is closed: nobody can take the call
            self._hang_up(name, "no event loop")

    def on_media_state(self, leg: Any) -> None:
        if leg.call is None or leg.disconnected:
            return
        pj = self._pj
        info = leg.getInfo()  # keep it: info.media points into it
        for media in info.media:
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            if leg.port is None:
                leg.port = self._legs_mod.AudioPort(leg.call)
                leg.port.create(leg.name)
            if media.audioConfSlot != leg.conf_slot:
                audio = leg.getAudioMedia(media.index)
                audio.startTransmit(leg.port)
                leg.port.startTransmit(audio)
                leg.conf_slot = media.audioConfSlot
                leg.media_index = media.index
                with contextlib.suppress(Exception):
                    leg.call.local_rtp = leg.getMedTransportInfo(media.index).localRtpName
                    stream = leg.getStreamInfo(media.index)
                    leg.call.codec = f"{stream.codecName}/{stream.codecClockRate}"
                log.info("%s: media up (%s)", leg.name, leg.call.codec)
            return

    def on_call_state(self, leg: Any) -> None:
        info = leg.getInfo()
        if getattr(leg, "outbound", False):  # one standin placed (sip/ring.py)
            ring.outbound_state(leg, info, self._pj)
        if info.state != self._pj.PJSIP_INV_STATE_DISCONNECTED or leg.disconnected:
            return
        leg.disconnected = True
        if leg.hangup_reason is not None:
            reason = leg.hangup_reason
        elif not leg.answered:
            reason = "cancelled"
        elif info.lastStatusCode in (200, 0):
            reason = "caller hung up"
        else:
            reason = f"ended: {info.lastStatusCode} {info.lastReason}"
        self._post(lambda: self._teardown(leg.name, reason))

    def _teardown(self, name: str, reason: str) -> None:
        leg = self._legs.pop(name, None)
        if leg is None:
            return
        port, leg.port = leg.port, None
        del port  # disconnects from the bridge, then frees the port: here, on a registered thread
        call = leg.call
        self._active.pop(name, None)
        if call is None:
            return
        if reason == "cancelled":
            self.counts["cancelled"] += 1
        call.mark_ended(reason)
        log.info("%s: ended (%s) after %.1f s; %d frames in (%d dropped), %d out%s", name, reason,
                 time.monotonic() - call.started_at, call.frames_in, call.frames_dropped, call.frames_out,
                 library.describe_rx(call.rx_stats))

    def _request_hangup(self, call: SipCall, reason: str) -> None:
        self._post(lambda: self._hang_up(call.call_id, reason))

    def _hang_up(self, name: str, reason: str) -> None:
        leg = self._legs.get(name)
        if leg is None or leg.disconnected or leg.hangup_reason is not None:
            return
        leg.hangup_reason = f"hung up: {reason}"
        log.info("%s: hanging up (%s)", name, reason)
        prm = self._pj.CallOpParam()
        if not leg.answered:
            prm.statusCode = 480
        try:
            leg.hangup(prm)
        except Exception as exc:
            log.warning("%s: hang-up failed: %s", name, pj_error(exc))

    def _check_media(self, now: float) -> None:
        """Every second: each call's receive statistics, and a hang-up where RTP stopped (media_timeout_s)."""
        limit = self.options.media_timeout_s
        for leg in list(self._legs.values()):
            if not leg.answered or leg.disconnected:
                continue
            if leg.media_index < 0:  # answered, and media never came up (no usable SDP, or no ACK yet)
                if limit > 0 and now - leg.rx_seen_at > limit:
                    log.warning("%s: no media %.0f s after the answer", leg.name, now - leg.rx_seen_at)
                    self._hang_up(leg.name, "no media")
                continue
            try:
                stats = library.rx_stats(leg.getStreamStat(leg.media_index))
            except Exception:
                continue
            if leg.call is not None:
                leg.call.rx_stats = stats
            packets = stats["packets"]
            if packets != leg.rx_packets:
                leg.rx_packets, leg.rx_seen_at = packets, now
            elif limit > 0 and now - leg.rx_seen_at > limit:
                log.warning("%s: no RTP for %.0f s", leg.name, now - leg.rx_seen_at)
                self._hang_up(leg.name, "no media")

    # ------------------------------------------------------------------ registration (SIP thread)

    def on_reg_state(self, account: Any, prm: Any) -> None:
        self._registration = library.registration_update(self._registration, prm, self.options)

    # ------------------------------------------------------------------ the loop side

    def _deliver(self, call: SipCall) -> None:
        try:
            result = self._on_call(call)
        except Exception:
            log.exception("%s: on_call failed", call.call_id)
            self._request_hangup(call, "on_call failed")
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._handler_done(call, t))

    def _handler_done(self, call: SipCall, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # the type only: the handler's exception can quote the caller (server/serve.py logs where)
            log.error("%s: the call handler failed (%s)", call.call_id, type(exc).__name__)
        if not call.ended:  # a call never outlives its handler
            self._request_hangup(call, "handler finished")

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self) -> None:
        for name in list(self._legs):
            self._hang_up(name, "endpoint stopped")
        with contextlib.suppress(Exception):
            self._ep.hangupAllCalls()  # anything pjsua has that we do not
        self._pump(lambda: not self._legs, 3.0)
        for name in list(self._legs):
            self._teardown(name, "endpoint stopped")
        if self._account is not None and self._registration.state == "registered":
            with contextlib.suppress(Exception):
                self._account.setRegistration(False)
            self._pump(lambda: self._registration.state != "registered", 1.5)
        self._timers.clear()
        while not self._commands.empty():  # drop them: they may hold legs
            self._commands.get_nowait()
        self._destroy(self._pj.PJSUA_DESTROY_NO_RX_MSG)  # all answered above: skip pjsua's 1 s wait
        if self._registration.state != "direct":
            self._registration = RegistrationStatus("stopped", registrar=self.options.registrar)

    def _pump(self, done: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                self._ep.libHandleEvents(20)
            self._run_pending()

    def _destroy(self, flags: int = 0) -> None:
        """Delete the account and every port, then the library (SIP thread)."""
        if self._gate is not None:
            with contextlib.suppress(Exception):
                self._gate.uninstall()
            self._gate = None
        self._account = None
        self._legs.clear()
        gc.collect()  # any stray pjsua2 object goes now, on this registered thread
        if self._ep is not None:
            with contextlib.suppress(Exception):
                self._ep.libDestroy(flags)
            self._ep = None
        self._pj_log.forward()

    def _release(self) -> None:
        with _running_lock:
            if self in _running:
                _running.remove(self)

    # ------------------------------------------------------------------ helpers

    def _resolve_loop(self) -> None:
        while not self._stopping.wait(self.options.resolve_every_s):
            if self._trunk is not None:
                self._trunk.refresh()
            failed = self._allow.refresh()
            if failed:
                log.warning("allow_from: cannot resolve %s (keeping the last known addresses)",
                            ", ".join(failed))

    def _check_tls_files(self) -> None:
        if "tls" not in self.options.transports:
            return
        for what, path in (("tls_cert", self.options.tls_cert), ("tls_key", self.options.tls_key)):
            if path is None or not path.is_file():
                raise SipConfigError(f"[sip] {what}: {path} is not a file")


def _detached(exc: BaseException) -> Exception:
    """A traceback-free copy of a startup error: the original's frames hold the half-built pjsua2
    Endpoint, and a second Endpoint cannot be created while the first one lives."""
    chain: BaseException | None = exc
    while chain is not None:
        if chain.__traceback__ is not None:
            traceback.clear_frames(chain.__traceback__)
        chain = chain.__context__
    if isinstance(exc, SipConfigError | SipUnavailable):
        return type(exc)(*exc.args)
    return SipUnavailable(f"cannot start the SIP endpoint: {pj_error(exc)}")
