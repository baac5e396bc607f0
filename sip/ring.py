"""standin's own calls out, to the owner's phone, and joining two calls in pjmedia's conference bridge.

`OwnerLeg` is the loop's view of a call standin places (a `SipCall`, so it has frames(), attach(), dtmf
and hang_up like an answered one), plus how far it got: `progress` yields "ringing", "answered" and
"ended" on the loop, and `status` is its last SIP status (486 busy, 603 declined, 487 after standin gave
up, 200 once answered). The functions below run on the endpoint's SIP thread (see endpoint.py): placing
the call from the endpoint's own account, following its state, and the bridge: each call's audio is sent
to the other's bridge slot, so the two hear each other through pjmedia's mixer, frame by frame on its
clock, without the audio passing through Python. Both calls' AudioPorts stay connected, so standin still
receives (and records) each side.

`transfer` is the other way to put a caller through: a blind transfer, a REFER on the caller's own call
asking the trunk to call `uri` instead. `Transfer.progress` yields what the trunk reports, on the loop:
(status, reason, final) from each NOTIFY's message/sipfrag (100 once the REFER is accepted, 180 while the
owner's phone rings, 200 once the caller is through, 4xx-6xx when the trunk could not reach them) or the
REFER's own refusal (403, 405, 501...; final). A REFER that could not be sent reports (0, why, True).

A number is dialled through the trunk as sip:<number>@<registrar host>; a SIP URI as it is. Requests the
owner's phone sends within the call (BYE) pass the gate like any other, so its address must be in
allow_from (the trunk's addresses are, in trunk mode; LAN addresses are, in direct mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from sip.library import pj_error
from sip.media import SipCall

if TYPE_CHECKING:
    from sip.endpoint import SipEndpoint

log = logging.getLogger("sip.endpoint")


class OwnerLeg(SipCall):
    """A call standin places (to the owner's phone). Times are monotonic seconds."""

    def __init__(self, call_id: str, target: str, *, loop: asyncio.AbstractEventLoop,
                 request_hangup: Any, buffer_frames: int = 50) -> None:
        super().__init__(call_id, "", "", loop=loop, request_hangup=request_hangup,
                         buffer_frames=buffer_frames)
        self.target = target
        self.state = "dialing"  # dialing | ringing | answered | ended
        self.status = 0
        self.invited_at: float | None = None  # the INVITE went out
        self.ringing_at: float | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.progress: asyncio.Queue[str] = asyncio.Queue()

    def progressed(self, state: str) -> None:
        """Any thread: the call moved on to `state` (each is reported once, in order)."""
        order = ("dialing", "ringing", "answered", "ended")
        if order.index(state) <= order.index(self.state):
            return
        now = time.monotonic()
        if state == "ringing":
            self.ringing_at = now
        elif state == "answered":
            self.answered_at = now
        else:
            self.ended_at = now
        self.state = state
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self.progress.put_nowait, state)

    def mark_ended(self, reason: str) -> None:
        super().mark_ended(reason)
        self.progressed("ended")


def target_uri(phone: str, registrar_host: str | None) -> str:
    """What to INVITE for `[owner] phone`: a SIP URI as it is, a number through the trunk."""
    phone = phone.strip()
    if phone.startswith(("sip:", "sips:")):
        return phone
    number = "".join(c for c in phone if c.isdigit() or c in "+*#")
    if not registrar_host:
        raise ValueError("a number as [owner] phone is dialled through the trunk, and [sip] has no "
                         "registrar: give a SIP URI (sip:user@host) instead")
    return f"sip:{number}@{registrar_host}"


def dial(endpoint: SipEndpoint, uri: str, name: str) -> OwnerLeg:
    """From the loop: an OwnerLeg for a call to `uri`, placed on the SIP thread right after."""
    assert endpoint._loop is not None, "the endpoint is started"
    leg = OwnerLeg(name, uri, loop=endpoint._loop, request_hangup=endpoint._request_hangup,
                   buffer_frames=endpoint.options.rx_buffer_frames)
    endpoint._post(lambda: _place(endpoint, leg))
    return leg


def _place(endpoint: SipEndpoint, call: OwnerLeg) -> None:
    if endpoint._stopping.is_set() or endpoint._account is None:
        call.mark_ended("endpoint stopped")
        return
    pj = endpoint._pj
    leg = endpoint._legs_mod.Leg(endpoint._account, pj.PJSUA_INVALID_ID, endpoint, call.call_id)
    leg.outbound = True
    leg.call = call
    endpoint._legs[call.call_id] = leg
    try:
        leg.makeCall(call.target, pj.CallOpParam(True))
    except Exception as exc:
        endpoint._legs.pop(call.call_id, None)
        log.warning("%s: cannot place the call: %s", call.call_id, pj_error(exc))
        call.mark_ended(f"cannot call: {pj_error(exc)}")
        return
    call.invited_at = time.monotonic()
    log.info("%s: calling out", call.call_id)


def outbound_state(leg: Any, info: Any, pj: Any) -> None:
    """The SIP thread: an outbound leg's state changed (before the endpoint's own handling)."""
    call: OwnerLeg = leg.call
    code = int(info.lastStatusCode)
    if info.state == pj.PJSIP_INV_STATE_EARLY and code in (180, 183):
        call.progressed("ringing")
    elif info.state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.answered:
        leg.answered = True
        leg.rx_packets, leg.rx_seen_at = 0, time.monotonic()
        call.status = code
        call.progressed("answered")
        log.info("%s: answered", leg.name)
    elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
        if not leg.answered or code != 200:
            call.status = code
        if leg.hangup_reason is None:
            leg.hangup_reason = "hung up by the other side" if leg.answered else f"{code} {info.lastReason}"


def bridge(endpoint: SipEndpoint, a: str, b: str) -> None:
    """The SIP thread: calls `a` and `b` hear each other (logged when either is gone)."""
    legs = [endpoint._legs.get(a), endpoint._legs.get(b)]
    if any(leg is None or leg.disconnected or leg.media_index < 0 for leg in legs):
        log.warning("cannot bridge %s and %s: a call is gone or has no audio", a, b)
        return
    try:
        first = legs[0].getAudioMedia(legs[0].media_index)  # type: ignore[union-attr]
        second = legs[1].getAudioMedia(legs[1].media_index)  # type: ignore[union-attr]
        first.startTransmit(second)
        second.startTransmit(first)
    except Exception as exc:
        log.warning("cannot bridge %s and %s: %s", a, b, pj_error(exc))
        return
    log.info("%s and %s bridged", a, b)


class Transfer:
    """A blind transfer of one call (REFER), as the loop sees it. Times are monotonic seconds."""

    def __init__(self, call_id: str, target: str, *, loop: asyncio.AbstractEventLoop) -> None:
        self.call_id = call_id
        self.target = target
        self.sent_at: float | None = None
        self.reports: list[tuple[int, str, bool, float]] = []  # (status, reason, final, monotonic)
        self.done = False
        self.progress: asyncio.Queue[tuple[int, str, bool]] = asyncio.Queue()
        self._loop = loop

    def notified(self, status: int, reason: str, final: bool) -> None:
        """Any thread: the REFER's answer or a NOTIFY; nothing more is reported after a final one."""
        if self.done:
            return
        self.done = final
        self.reports.append((status, reason, final, time.monotonic()))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self.progress.put_nowait, (status, reason, final))


def transfer(endpoint: SipEndpoint, call_id: str, uri: str) -> Transfer:
    """From the loop: a Transfer following the REFER for call `call_id` to `uri`, sent on the SIP thread."""
    assert endpoint._loop is not None, "the endpoint is started"
    xfer = Transfer(call_id, uri, loop=endpoint._loop)
    endpoint._post(lambda: _refer(endpoint, xfer))
    return xfer


def _refer(endpoint: SipEndpoint, xfer: Transfer) -> None:
    leg = endpoint._legs.get(xfer.call_id)
    if leg is None or leg.disconnected or not leg.answered:
        xfer.notified(0, "the call is gone", True)
        return
    leg.transfer = xfer
    try:
        leg.xfer(xfer.target, endpoint._pj.CallOpParam(True))
    except Exception as exc:
        log.warning("%s: cannot send the REFER: %s", xfer.call_id, pj_error(exc))
        xfer.notified(0, f"cannot transfer: {pj_error(exc)}", True)
        return
    xfer.sent_at = time.monotonic()
    log.info("%s: transfer requested (REFER)", xfer.call_id)
