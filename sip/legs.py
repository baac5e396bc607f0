"""The pjsua2 subclasses behind the endpoint: its account, one call leg, the leg's audio port, a log sink.

Importing this module imports pjsua2 (endpoint.py does it lazily). Every callback here is a SWIG
director: an exception escaping one would reach pjsua2's C++ and abort the process, so each is wrapped.
Callbacks hand their work to the endpoint (`Hooks`), which the objects here only reference weakly: no
reference cycle may hold a pjsua2 object, or Python's cycle collector could free it on a thread pjlib
does not know (an abort).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pjsua2 as pj

from sip.media import FRAME, RATE, SipCall
from sip.sdp import narrow_to_preferred

log = logging.getLogger("sip.endpoint")

F = TypeVar("F", bound=Callable[..., None])


def _guarded(method: F) -> F:
    @functools.wraps(method)
    def wrapper(*args: Any) -> None:
        try:
            method(*args)
        except Exception:
            log.exception("error in pjsua2 callback %s", method.__qualname__)

    return wrapper  # type: ignore[return-value]


class Hooks(Protocol):
    def on_request(self, method: str, source: str, in_dialog: bool) -> int: ...
    def on_connection(self, source: str) -> bool: ...
    def on_incoming(self, account: Account, prm: Any) -> None: ...
    def on_call_state(self, leg: Leg) -> None: ...
    def on_media_state(self, leg: Leg) -> None: ...
    def on_reg_state(self, account: Account, prm: Any) -> None: ...


class Gate(pj.StandinGate):  # type: ignore[misc]
    """What the gate (sip/pjsua2_build/standin_gate.i) asks before pjsua sees a request or a connection.
    A failure here lets the request through to pjsua (whose onIncomingCall checks again) and closes the
    connection."""

    def __init__(self, hooks: Hooks) -> None:
        super().__init__()
        self._hooks = weakref.ref(hooks)

    def onRequest(self, method: str, source: str, inDialog: bool) -> int:
        try:
            hooks = self._hooks()
            return hooks.on_request(method, source, inDialog) if hooks is not None else 0
        except Exception:
            log.exception("error in the SIP gate (request)")
            return 0

    def onConnection(self, source: str) -> bool:
        try:
            hooks = self._hooks()
            return hooks.on_connection(source) if hooks is not None else False
        except Exception:
            log.exception("error in the SIP gate (connection)")
            return False


class Account(pj.Account):  # type: ignore[misc]
    def __init__(self, hooks: Hooks) -> None:
        super().__init__()
        self._hooks = weakref.ref(hooks)

    @_guarded
    def onIncomingCall(self, prm: Any) -> None:
        hooks = self._hooks()
        if hooks is not None:
            hooks.on_incoming(self, prm)

    @_guarded
    def onRegState(self, prm: Any) -> None:
        hooks = self._hooks()
        if hooks is not None:
            hooks.on_reg_state(self, prm)


class Leg(pj.Call):  # type: ignore[misc]
    """pjsua's side of one incoming call; `call` is standin's side (None for a refused call)."""

    def __init__(self, account: Account, call_id: int, hooks: Hooks, name: str) -> None:
        super().__init__(account, call_id)
        self._hooks = weakref.ref(hooks)
        self.name = name
        self.call: SipCall | None = None
        self.port: AudioPort | None = None
        self.conf_slot = -1  # the call's bridge slot the port is connected to
        self.media_index = -1
        self.answered = False
        self.disconnected = False
        self.hangup_reason: str | None = None  # set when standin hangs up
        self.rx_packets = -1
        self.rx_seen_at = 0.0  # monotonic time the RTP packet count last moved
        self.transfer: Any = None  # a blind transfer standin asked for (sip/ring.Transfer)

    @_guarded
    def onCallState(self, prm: Any) -> None:
        hooks = self._hooks()
        if hooks is not None:
            hooks.on_call_state(self)

    @_guarded
    def onCallMediaState(self, prm: Any) -> None:
        hooks = self._hooks()
        if hooks is not None:
            hooks.on_media_state(self)

    @_guarded
    def onCallSdpCreated(self, prm: Any) -> None:
        remote = prm.remSdp.wholeSdp
        if remote:  # answering an offer: leave only our preferred codec among those offered
            prm.sdp.wholeSdp = narrow_to_preferred(prm.sdp.wholeSdp, remote)

    @_guarded
    def onCallTransferStatus(self, prm: Any) -> None:
        if self.transfer is not None:
            self.transfer.notified(int(prm.statusCode), str(prm.reason), bool(prm.finalNotify))

    @_guarded
    def onDtmfDigit(self, prm: Any) -> None:
        call = self.call
        if call is not None:
            call.dtmf_received(str(prm.digit))


class AudioPort(pj.AudioMediaPort):  # type: ignore[misc]
    """16 kHz mono 20 ms frames between the bridge and a SipCall; runs on pjmedia's clock thread."""

    def __init__(self, call: SipCall) -> None:
        super().__init__()
        self._call = call

    def create(self, name: str) -> None:
        fmt = pj.MediaFormatAudio()
        fmt.type = pj.PJMEDIA_TYPE_AUDIO
        fmt.clockRate = RATE
        fmt.channelCount = 1
        fmt.bitsPerSample = 16
        fmt.frameTimeUsec = FRAME * 1_000_000 // RATE
        self.createPort(name, fmt)

    def onFrameRequested(self, frame: Any) -> None:
        try:
            frame.standinSetBytes(self._call.outbound())
        except Exception:  # outbound() never raises; this only keeps C++ safe
            frame.type = pj.PJMEDIA_FRAME_TYPE_NONE

    def onFrameReceived(self, frame: Any) -> None:
        try:
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
                self._call.push(frame.standinGetBytes())
        except Exception:
            pass


class LogSink(pj.LogWriter):  # type: ignore[misc]
    """pjsip's log lines, from any of its threads, into a queue the SIP thread drains."""

    def __init__(self, lines: queue.SimpleQueue[tuple[int, str]]) -> None:
        super().__init__()
        self._lines = lines

    def write(self, entry: Any) -> None:
        with contextlib.suppress(Exception):  # never into C++
            self._lines.put_nowait((int(entry.level), str(entry.msg)))
