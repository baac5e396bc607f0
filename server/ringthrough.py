"""Ring-through in a live call: who may be put through (`ring_options`), and `RingDriver`, which carries
out the core's ring-through commands (server/core/ringthrough.py) on the SIP endpoint and reports back.

The driver places standin's own call to the owner's phone the moment the core asks (`RingOwner`), has
the announcement synthesised meanwhile, plays it to the owner once they answer (twice, two seconds
apart), and hands the core what happens as events stamped on the call's timeline: OwnerRinging,
OwnerAnswered, OwnerDigit (the owner's keys), OwnerGone (the call to the owner ended; its SIP status).
`BridgeOwner` joins the two calls in pjmedia's conference bridge (sip/ring.py); from then on the owner's
frames are recorded as the right channel of call.wav (the caller's stay on the left), where the bot's
voice was. `DropOwner` and the end of the call hang up the owner's phone.

With `[owner] method = "transfer"` the driver sends a blind REFER on the caller's call instead and
reports the trunk's answers: 180 as OwnerRinging, a 2xx as OwnerAnswered (the caller is through: the core
ends standin's call), a refused REFER or a failure in a NOTIFY as OwnerGone with that status. Every
answer goes into the record ("refer": status, reason, whether final, ms after the trigger). A REFER cannot
be taken back: after `DropOwner` the trunk's later answers are only recorded.

A missed ring-through (nobody answered, busy, failed, or answered without taking the call) reaches the
owner like any message: `with_missed_ring` puts it at the head of the call's message, urgent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.engines import SpeechToText, TextToSpeech
from server import audio
from server.config import Config, OwnerConfig
from server.contacts import CallPlan
from server.core import events as ev
from server.core.ringthrough import RingOptions
from server.messages import TakenMessage

log = logging.getLogger(__name__)

RING_COMMANDS = (ev.RingOwner, ev.BridgeOwner, ev.DropOwner)
REPEAT_AFTER_S = 2.0  # the announcement plays again after this much silence
ANSWER_MAX_S = 4.0  # the owner's spoken answer is heard in stretches of voice at most this long
MISSED = ("no answer", "busy", "failed", "not accepted")


class Switchboard(Protocol):
    """What ring-through needs of the SIP endpoint (sip.endpoint.SipEndpoint)."""

    def dial(self, uri: str) -> Any: ...
    def bridge(self, a: Any, b: Any) -> None: ...
    def transfer(self, call: Any, uri: str) -> Any: ...


def in_quiet_hours(spans: tuple[str, ...], now: datetime) -> bool:
    """Whether local time `now` is inside one of the "HH:MM-HH:MM" spans (a span may cross midnight)."""
    minute = now.hour * 60 + now.minute
    for span in spans:
        start, end = (int(h) * 60 + int(m) for h, m in (part.split(":") for part in span.replace(" ", "")
                                                          .split("-")))
        if start <= end:
            if start <= minute < end:
                return True
        elif minute >= start or minute < end:
            return True
    return False


def ring_options(owner: OwnerConfig, plan: CallPlan, now: datetime, *, caller_number: str,
                 owner_language: str, owner_name: str = "", can_dial: bool = True) -> RingOptions:
    """How this call may be put through, decided when it starts (the core reads no clock)."""
    why_not = ""
    if owner.do_not_disturb:
        why_not = "do not disturb"
    elif in_quiet_hours(owner.quiet_hours, now):
        why_not = "quiet hours"
    profile_ok = "*" in owner.profiles or plan.profile in owner.profiles
    if not why_not and not profile_ok and not owner.urgent:
        why_not = f"profile {plan.profile}"
    return RingOptions(
        enabled=bool(owner.phone) and can_dial, allowed=not why_not, why_not=why_not,
        keypad=owner.keypad and profile_ok, on_request=owner.on_request and profile_ok,
        on_urgent=owner.urgent, ring_timeout_s=owner.ring_timeout_s, decide_timeout_s=owner.decide_timeout_s,
        transfer=owner.method == "transfer", caller=plan.contact_name, caller_number=caller_number,
        language=plan.language, owner_language=owner_language, owner_name=owner_name)


def dnd_file(config: Config) -> Path:
    """Where the dashboard keeps its do-not-disturb switch: beside the calls, so every start finds it."""
    return Path(config.storage.calls_dir).expanduser() / ".do-not-disturb"


def do_not_disturb(config: Config) -> bool:
    """Do-not-disturb as the dashboard last set it, else as `[owner] do_not_disturb` says."""
    try:
        return dnd_file(config).read_text(encoding="utf-8").strip() == "on"
    except FileNotFoundError:
        return config.owner.do_not_disturb
    except OSError as exc:  # unreadable: nobody is rung rather than somebody by mistake
        log.warning("cannot read %s (%s): do not disturb is on", dnd_file(config), type(exc).__name__)
        return True


def set_do_not_disturb(config: Config, on: bool) -> None:
    path = dnd_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text("on\n" if on else "off\n", encoding="utf-8")
    part.replace(path)


def call_ring_options(config: Config, plan: CallPlan, caller_number: str, *, can_dial: bool) -> RingOptions:
    owner = dataclasses.replace(config.owner, do_not_disturb=do_not_disturb(config))
    return ring_options(owner, plan, datetime.now().astimezone(), caller_number=caller_number,
                        owner_language=config.language, owner_name=config.llm.owner_name, can_dial=can_dial)


class RingDriver:
    """One call's ring-through I/O (see the module's docstring). Lives on the event loop."""

    def __init__(self, switchboard: Switchboard, caller: Any, target: str, *, tts: TextToSpeech,
                 owner_language: str, deliver: Callable[[ev.Event], None], now: Callable[[], float],
                 record_owner: Callable[[np.ndarray], None], stt: SpeechToText | None = None) -> None:
        self.switchboard = switchboard
        self.stt = stt  # hears the owner say yes or no before the bridge (None: keys only)
        self.caller = caller
        self.target = target
        self.tts = tts
        self.owner_language = owner_language
        self._deliver = deliver
        self._now = now
        self._record_owner = record_owner
        self.leg: Any = None
        self.xfer: Any = None  # the blind transfer (sip.ring.Transfer), when that is the method
        self.bridged = False
        self.timings: dict[str, float] = {}  # ms after the trigger, by the monotonic clock
        self._attempt = 0
        self._trigger_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._announcement: np.ndarray | None = None
        self._played = 0  # samples of the announcement loop sent

    @staticmethod
    def takes(command: object) -> bool:
        return isinstance(command, RING_COMMANDS)

    def execute(self, c: ev.Command, t: float) -> None:
        if isinstance(c, ev.RingOwner):
            self._attempt, self._trigger_at = c.attempt, time.monotonic()
            if c.transfer:
                self.xfer = self.switchboard.transfer(self.caller, self.target)
                self._spawn(self._follow_transfer(c.attempt, self.xfer))
                return
            self.leg = self.switchboard.dial(self.target)  # first: the phone should ring at once
            self._spawn(self._follow(c.attempt, self.leg))
            self._spawn(self._synthesize(c.announcement))
        elif isinstance(c, ev.BridgeOwner) and self.leg is not None and c.attempt == self._attempt:
            self.bridged = True
            self.switchboard.bridge(self.caller, self.leg)
            self._mark("bridged_ms")
        elif isinstance(c, ev.DropOwner) and self.leg is not None and c.attempt == self._attempt:
            self._hang_up(c.reason)

    def close(self) -> None:
        """The call is over: the owner's phone is hung up (a bridged owner too), nothing more is reported."""
        self._hang_up("the call ended")
        for task in self._tasks:
            task.cancel()

    def report(self) -> dict[str, Any]:
        leg = self.leg
        out: dict[str, Any] = {"wall_ms": dict(self.timings)}
        if self.xfer is not None:
            out.update(target=_redacted(self.target), refer=[
                {"status": status, "reason": reason[:60], "final": final,
                 "ms": round((at - self._trigger_at) * 1000, 1)}
                for status, reason, final, at in self.xfer.reports])
        if leg is not None:
            out.update(target=_redacted(self.target), owner_status=leg.status, owner_end=leg.end_reason,
                       owner_codec=leg.codec, owner_frames_in=leg.frames_in, owner_rx=dict(leg.rx_stats))
        return out

    # ------------------------------------------------------------------ the owner's call

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _mark(self, key: str) -> None:
        self.timings.setdefault(key, round((time.monotonic() - self._trigger_at) * 1000, 1))

    def _hang_up(self, reason: str) -> None:
        leg = self.leg
        if leg is not None and not leg.ended:
            leg._request_hangup(leg, reason)  # non-blocking: the SIP thread sends CANCEL or BYE

    async def _follow(self, attempt: int, leg: Any) -> None:
        loop = asyncio.get_running_loop()
        leg.on_dtmf = lambda digit: self._deliver(ev.OwnerDigit(self._now(), attempt, str(digit)))
        reader = loop.create_task(self._read(leg, attempt))
        try:
            while True:
                state = await leg.progress.get()
                if state == "ringing":
                    self._mark("ringing_ms")
                    self._deliver(ev.OwnerRinging(self._now(), attempt))
                elif state == "answered":
                    self._mark("answered_ms")
                    leg.attach(self._pull)
                    self._deliver(ev.OwnerAnswered(self._now(), attempt))
                elif state == "ended":
                    self._mark("ended_ms")
                    self._deliver(ev.OwnerGone(self._now(), attempt, int(leg.status or 0),
                                               str(leg.end_reason or "")))
                    return
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _follow_transfer(self, attempt: int, xfer: Any) -> None:
        while True:
            status, reason, final = await xfer.progress.get()
            if 200 <= status < 300:
                self._mark("transferred_ms")
                self._deliver(ev.OwnerAnswered(self._now(), attempt))
            elif status >= 300 or final:
                self._mark("ended_ms")
                self._deliver(ev.OwnerGone(self._now(), attempt, status, reason))
            elif status in (180, 183):
                self._mark("ringing_ms")
                self._deliver(ev.OwnerRinging(self._now(), attempt))
            else:
                self._mark("refer_accepted_ms")  # the trunk took the REFER (202, then NOTIFY 100)
            if final:
                return

    async def _read(self, leg: Any, attempt: int = 0) -> None:
        """The owner's audio: recorded once bridged; before, listened to for a spoken yes or no."""
        ear = OwnerEar()
        async for frame in leg.frames():
            if self.bridged:
                self._record_owner(frame)
                continue
            listening = self.stt is not None and "answered_ms" in self.timings
            if listening and (said := ear.push(frame)) is not None:
                self._spawn(self._hear(attempt, said))

    async def _hear(self, attempt: int, pcm: np.ndarray) -> None:
        assert self.stt is not None
        try:
            heard = await asyncio.to_thread(self.stt.transcribe, pcm.astype(np.float32) / 32768.0,
                                            start_s=0.0, language=self.owner_language)
        except Exception as exc:  # the keys still work
            log.warning("ring-through: the owner's words could not be transcribed (%s)", type(exc).__name__)
            return
        if heard.text.strip() and not self.bridged:
            self._deliver(ev.OwnerSaid(self._now(), attempt, heard.text.strip()))

    async def _synthesize(self, text: str) -> None:
        started = time.monotonic()
        pcm = await asyncio.to_thread(self._speech, text)
        self._announcement = pcm
        self.timings["announcement_synth_ms"] = round((time.monotonic() - started) * 1000, 1)

    def _speech(self, text: str) -> np.ndarray:
        parts = [audio.resample(chunk.audio, chunk.sample_rate, audio.CALL_RATE)
                 for chunk in self.tts.synthesize(text, language=self.owner_language)]
        pcm = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        gap = np.zeros(int(REPEAT_AFTER_S * audio.CALL_RATE), np.int16)
        return np.concatenate([pcm, gap, pcm]).astype(np.int16)

    def _pull(self) -> np.ndarray:
        """The owner's line (the clock thread): the announcement, twice, then silence."""
        pcm, frame = self._announcement, audio.FRAME
        if pcm is None or self.bridged or self._played >= len(pcm):
            return np.zeros(frame, np.int16)
        out = pcm[self._played:self._played + frame]
        self._played += frame
        return out if len(out) == frame else np.concatenate([out, np.zeros(frame - len(out), np.int16)])


class OwnerEar:
    """Cuts the owner's line into stretches of voice by level: a stretch opens on a loud frame, holds
    `min_voice_s` of loud frames, and ends after `pause_s` quiet (or at ANSWER_MAX_S). A phone line to one
    person, after the announcement: level is enough, and it needs no model of its own."""

    def __init__(self, floor_dbfs: float = -42.0, min_voice_s: float = 0.12, pause_s: float = 0.5) -> None:
        self.floor = 32768.0 * 10 ** (floor_dbfs / 20)
        self.min_voice = round(min_voice_s * audio.CALL_RATE)
        self.pause = round(pause_s * audio.CALL_RATE)
        self._frames: list[np.ndarray] = []
        self._voice = 0
        self._quiet = 0

    def push(self, frame: np.ndarray) -> np.ndarray | None:
        loud = float(np.sqrt(np.mean(frame.astype(np.float64) ** 2))) >= self.floor
        if not self._frames and not loud:
            return None
        self._frames.append(frame)
        self._voice += len(frame) if loud else 0
        self._quiet = 0 if loud else self._quiet + len(frame)
        length = sum(len(f) for f in self._frames)
        if self._quiet < self.pause and length < ANSWER_MAX_S * audio.CALL_RATE:
            return None
        said, voice = np.concatenate(self._frames), self._voice
        self._frames, self._voice, self._quiet = [], 0, 0
        return said if voice >= self.min_voice else None


def _redacted(target: str) -> str:
    """The owner's phone as the record keeps it: a number's last three digits only."""
    scheme, _, rest = target.partition(":")
    user, at, host = rest.partition("@")
    if user.lstrip("+").isdigit():
        user = "…" + user[-3:]
    return f"{scheme}:{user}{at}{host}"


def with_missed_ring(taken: TakenMessage | None, ring: dict[str, Any] | None, *, caller: str,
                     started_at: datetime | None) -> TakenMessage | None:
    """A call whose ring-through missed the owner: its message says so first and is urgent; a caller who
    then said nothing still leaves one."""
    if not ring or ring.get("outcome") not in MISSED:
        return taken
    when = ""
    if started_at is not None and ring.get("started_s") is not None:
        local = (started_at + timedelta(seconds=float(ring["started_s"]))).astimezone()
        when = f" at {local:%H:%M}"
    note = (f"Missed ring-through: standin tried to put {caller or 'a caller'} through to you{when} "
            f"({ring['outcome']}).")
    if taken is None:
        return TakenMessage(caller_name="", callback_number="", text=note + " They left no message.",
                            urgency="high", language="en", source="standin", transcript="")
    return dataclasses.replace(taken, text=f"{note} {taken.text}", urgency="high")
