"""Callers and the owner's phone for the ring-through tests, as one pjsua2 endpoint in a child process
(pjsua2 allows one Endpoint per process; the test process runs standin's).

Each of --calls callers calls --target, sends a steady tone (or --wav, then silence), presses --press
(0) --press-at seconds after its media started, and hangs up --hangup-after seconds after that start.
Every call standin places to this endpoint is the owner's phone: it rings (180) and then, by --owner:
`accept` answers after --answer-after s and presses 1 --decide-after s later; `decline` answers and
presses 2; `hangup` answers and hangs up without a key; `reject` answers 603; `busy` 486; `never` rings
until standin gives up. An answered owner sends a steady tone of its own and hangs up --owner-hangup-after
s after answering (0: never). Every call records what it receives with arrival times (monotonic, shared
by the machine's processes). Out: `result.json` and one `<role>-<i>.raw` (int16, 16 kHz) per call.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

FRAME = 320
RATE = 16000


def tone(freq: float, seconds: float, amplitude: float = 6000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


class Player(pj.AudioMediaPort):  # type: ignore[misc]
    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__()
        self.pcm = pcm
        self.pos = 0

    def onFrameRequested(self, frame: Any) -> None:
        chunk = self.pcm[self.pos:self.pos + FRAME]
        self.pos += FRAME
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        frame.standinSetBytes(np.ascontiguousarray(chunk, dtype="<i2"))


class Recorder(pj.AudioMediaPort):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[bytes] = []
        self.times: list[float] = []

    def onFrameRequested(self, frame: Any) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE

    def onFrameReceived(self, frame: Any) -> None:
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self.times.append(time.monotonic())
            self.frames.append(frame.standinGetBytes())


def audio_format() -> Any:
    fmt = pj.MediaFormatAudio()
    fmt.type, fmt.clockRate, fmt.channelCount = pj.PJMEDIA_TYPE_AUDIO, RATE, 1
    fmt.bitsPerSample, fmt.frameTimeUsec = 16, 20000
    return fmt


class Peer(pj.Call):  # type: ignore[misc]
    """One call, either way: plays `pcm` once media is up, records what comes in."""

    def __init__(self, account: pj.Account, role: str, index: int, pcm: np.ndarray,
                 call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.role, self.index, self.pcm = role, index, pcm
        self.player: Player | None = None
        self.recorder: Recorder | None = None
        self.events: dict[str, float] = {"created": time.monotonic()}
        self.states: list[str] = []
        self.last_status = 0
        self.disconnected = False
        self.digits: list[tuple[float, str]] = []

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            self.states.append(info.stateText)
            if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
                self.events.setdefault("confirmed", time.monotonic())
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.disconnected = True
                self.last_status = info.lastStatusCode
                self.events.setdefault("disconnected", time.monotonic())
        except Exception as exc:  # never into C++
            print("onCallState:", exc, file=sys.stderr)

    def onCallMediaState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            for media in info.media:
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE \
                        and self.player is None:
                    audio = self.getAudioMedia(media.index)
                    self.player, self.recorder = Player(self.pcm), Recorder()
                    self.player.createPort(f"{self.role}-{self.index}-player", audio_format())
                    self.recorder.createPort(f"{self.role}-{self.index}-recorder", audio_format())
                    self.player.startTransmit(audio)
                    audio.startTransmit(self.recorder)
                    self.events["media"] = time.monotonic()
        except Exception as exc:
            print("onCallMediaState:", exc, file=sys.stderr)

    def onDtmfDigit(self, prm: Any) -> None:
        self.digits.append((time.monotonic(), str(prm.digit)))

    def since(self, event: str) -> float:
        at = self.events.get(event)
        return -1.0 if at is None else time.monotonic() - at

    def answer_with(self, code: int) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        self.answer(prm)
        self.events[f"sent_{code}"] = time.monotonic()

    def press(self, digit: str) -> None:
        self.dialDtmf(digit)
        self.events[f"pressed_{digit}"] = time.monotonic()

    def digits_sent(self) -> bool:
        return any(key.startswith("pressed_") for key in self.events)

    def hang_up(self) -> None:
        self.events.setdefault("hung_up", time.monotonic())
        self.hangup(pj.CallOpParam())

    def result(self) -> dict[str, Any]:
        recorder = self.recorder
        return {"role": self.role, "index": self.index, "events": self.events, "states": self.states,
                "last_status": self.last_status, "disconnected": self.disconnected,
                "digits": self.digits, "frame_times": list(recorder.times) if recorder else []}


class Account(pj.Account):  # type: ignore[misc]
    def __init__(self, owner_pcm: list[np.ndarray]) -> None:
        super().__init__()
        self.owner_pcm = owner_pcm
        self.owners: list[Peer] = []

    def onIncomingCall(self, prm: Any) -> None:
        try:
            i = len(self.owners)
            peer = Peer(self, "owner", i, self.owner_pcm[i % len(self.owner_pcm)], prm.callId)
            peer.events["invite"] = time.monotonic()
            self.owners.append(peer)
            peer.answer_with(180)
        except Exception as exc:
            print("onIncomingCall:", exc, file=sys.stderr)


def start(port: int, rtp_port: int, user: str, owner_pcm: list[np.ndarray]) -> tuple[pj.Endpoint, Account]:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0  # SIP and RTP polled below, on this thread
    cfg.uaConfig.maxCalls = 32
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = RATE
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.hasIoqueue = False
    cfg.medConfig.threadCnt = 0
    cfg.medConfig.maxMediaPorts = 96
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.boundAddress, tcfg.port = "127.0.0.1", port
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{user}@127.0.0.1"
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.port = rtp_port
    acfg.mediaConfig.transportConfig.portRange = 64
    account = Account(owner_pcm)
    account.create(acfg, True)
    return ep, account


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{path}: need 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def owner_step(owner: Peer, a: argparse.Namespace) -> None:
    """What the owner's phone does next, by --owner and the time since it rang or answered."""
    if owner.disconnected or a.owner in ("never",):
        return
    answered = "sent_200" in owner.events
    if not answered:
        if owner.since("invite") < a.answer_after:
            return
        if a.owner == "busy":
            owner.answer_with(486)
        elif a.owner == "reject":
            owner.answer_with(603)
        else:
            owner.answer_with(200)
        return
    if owner.since("media") < 0:
        return
    after = owner.since("sent_200")
    if a.owner in ("accept", "decline") and after >= a.decide_after and not owner.digits_sent():
        owner.press("1" if a.owner == "accept" else "2")
    elif "hung_up" not in owner.events:
        hang_up_at = a.decide_after if a.owner == "hangup" else a.owner_hangup_after or float("inf")
        if after >= hang_up_at:
            owner.hang_up()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True, help="SIP UDP port (the owner's phone is here)")
    ap.add_argument("--rtp-port", type=int, required=True)
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--user", default="+15550002222")
    ap.add_argument("--wav", type=Path, default=None, help="the callers play this, then silence")
    ap.add_argument("--caller-tone", type=float, default=440.0, help="Hz (+40 Hz per further caller)")
    ap.add_argument("--owner-tone", type=float, default=1000.0, help="Hz (+40 Hz per further call)")
    ap.add_argument("--press", default="0")
    ap.add_argument("--press-at", type=float, default=1.0, help="s after media; < 0: never")
    ap.add_argument("--hangup-after", type=float, required=True)
    ap.add_argument("--owner", default="accept",
                    choices=("accept", "decline", "hangup", "reject", "busy", "never"))
    ap.add_argument("--answer-after", type=float, default=1.0)
    ap.add_argument("--decide-after", type=float, default=1.0)
    ap.add_argument("--owner-hangup-after", type=float, default=0.0)
    a = ap.parse_args()
    seconds = a.hangup_after + 30
    owner_pcm = [tone(a.owner_tone + 40 * i, seconds) for i in range(a.calls)]
    ep, account = start(a.port, a.rtp_port, a.user, owner_pcm)
    callers = []
    for i in range(a.calls):
        pcm = read_wav(a.wav) if a.wav is not None else tone(a.caller_tone + 40 * i, seconds)
        caller = Peer(account, "caller", i, pcm)
        caller.makeCall(a.target, pj.CallOpParam(True))
        callers.append(caller)
    deadline = time.monotonic() + a.hangup_after + 25
    while time.monotonic() < deadline:
        ep.libHandleEvents(5)
        for caller in callers:
            media_for = caller.since("media")
            if a.press_at >= 0 and media_for >= a.press_at and not caller.digits_sent():
                caller.press(a.press)
            if media_for >= a.hangup_after and "hung_up" not in caller.events and not caller.disconnected:
                caller.hang_up()
        for owner in account.owners:
            owner_step(owner, a)
        if all(c.disconnected for c in [*callers, *account.owners]):
            break
    for call in [*callers, *account.owners]:
        if not call.disconnected:
            call.hang_up()
    for _ in range(100):
        ep.libHandleEvents(10)
    result = {"callers": [c.result() for c in callers], "owners": [o.result() for o in account.owners]}
    a.out.mkdir(parents=True, exist_ok=True)
    for call in [*callers, *account.owners]:
        recorder = call.recorder
        (a.out / f"{call.role}-{call.index}.raw").write_bytes(b"".join(recorder.frames) if recorder else b"")
        call.player = call.recorder = None
    del callers
    account.owners.clear()
    (a.out / "result.json").write_text(json.dumps(result))
    ep.libDestroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
