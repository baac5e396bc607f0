"""A pjsua2 caller, run as its own process by test_sip_caller.py (pjsua2 allows one Endpoint per process).

It calls --target, plays a 16 kHz mono 16-bit WAV into the call through an AudioMediaPort (silence after
its end), records every frame it receives with the monotonic time it arrived, hangs up --hangup-after
seconds after its media started, and writes `received.raw` (int16) and `result.json` into --out.
Monotonic clocks are shared by all processes of the machine, so the test can compare times.

Options for test_live_calls.py: --wav-delay S plays S seconds of silence before the WAV; --echo-delay-ms
and --echo-gain-db make the caller a leaky phone (what it receives is mixed back into what it sends,
that much later and quieter, as a speakerphone or a PSTN hybrid does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

FRAME = 320


class Echo:
    """The line as the caller's phone heard it, one frame per bridge tick (silence where nothing came),
    to be sent back `delay_frames` ticks later at `gain`."""

    def __init__(self, delay_ms: float, gain_db: float) -> None:
        self.delay_frames = max(1, round(delay_ms / 20))
        self.gain = 10 ** (gain_db / 20)
        self.heard: deque[np.ndarray] = deque(maxlen=self.delay_frames)

    def hear(self, pcm: np.ndarray) -> None:
        self.heard.append(pcm)

    def leak(self) -> np.ndarray | None:
        if len(self.heard) < self.delay_frames:
            return None
        return self.heard[0].astype(np.float64) * self.gain  # received `delay_frames` ticks ago


class Player(pj.AudioMediaPort):  # type: ignore[misc]
    def __init__(self, pcm: np.ndarray, echo: Echo | None = None) -> None:
        super().__init__()
        self.pcm = pcm
        self.pos = 0
        self.started_at: float | None = None
        self.echo = echo

    def onFrameRequested(self, frame: Any) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
        chunk = self.pcm[self.pos:self.pos + FRAME]
        self.pos += FRAME
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        leak = self.echo.leak() if self.echo is not None else None
        if leak is not None:
            chunk = np.clip(chunk + leak, -32768, 32767).astype(np.int16)
        frame.standinSetBytes(np.ascontiguousarray(chunk, dtype="<i2"))


class Recorder(pj.AudioMediaPort):  # type: ignore[misc]
    def __init__(self, echo: Echo | None = None) -> None:
        super().__init__()
        self.frames: list[bytes] = []
        self.times: list[float] = []
        self.echo = echo

    def onFrameRequested(self, frame: Any) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE

    def onFrameReceived(self, frame: Any) -> None:
        pcm = None
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
            self.times.append(time.monotonic())
            data = frame.standinGetBytes()
            self.frames.append(data)
            pcm = np.frombuffer(data, "<i2")
        if self.echo is not None:
            self.echo.hear(pcm if pcm is not None and len(pcm) == FRAME else np.zeros(FRAME, np.int16))


class Caller(pj.Call):  # type: ignore[misc]
    def __init__(self, account: pj.Account, pcm: np.ndarray, echo: Echo | None = None) -> None:
        super().__init__(account)
        self.pcm = pcm
        self.echo = echo
        self.player: Player | None = None
        self.recorder: Recorder | None = None
        self.media_at: float | None = None
        self.states: list[str] = []
        self.disconnected = False
        self.last_status = 0

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            self.states.append(info.stateText)
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.disconnected = True
                self.last_status = info.lastStatusCode
        except Exception as exc:  # never into C++
            print("onCallState:", exc, file=sys.stderr)

    def onCallMediaState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            for media in info.media:
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE \
                        and self.player is None:
                    audio = self.getAudioMedia(media.index)
                    fmt = pj.MediaFormatAudio()
                    fmt.type, fmt.clockRate, fmt.channelCount = pj.PJMEDIA_TYPE_AUDIO, 16000, 1
                    fmt.bitsPerSample, fmt.frameTimeUsec = 16, 20000
                    self.player, self.recorder = Player(self.pcm, self.echo), Recorder(self.echo)
                    self.player.createPort("caller-player", fmt)
                    self.recorder.createPort("caller-recorder", fmt)
                    self.player.startTransmit(audio)
                    audio.startTransmit(self.recorder)
                    self.media_at = time.monotonic()
        except Exception as exc:
            print("onCallMediaState:", exc, file=sys.stderr)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
            raise SystemExit(f"{path}: need 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def start(rtp_port: int, user: str) -> tuple[pj.Endpoint, pj.Account]:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0  # SIP and RTP are polled below, on this thread
    cfg.logConfig.level = cfg.logConfig.consoleLevel = 1
    cfg.medConfig.clockRate = cfg.medConfig.sndClockRate = 16000
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.hasIoqueue = False  # pjmedia's own worker would see a new RTP socket ~0.4 s late
    cfg.medConfig.threadCnt = 0
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.boundAddress, tcfg.port = "127.0.0.1", 0
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.libStart()
    ep.audDevManager().setNullDev()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{user}@127.0.0.1"
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.port = rtp_port
    acfg.mediaConfig.transportConfig.portRange = 10
    account = pj.Account()
    account.create(acfg, True)
    return ep, account


def run_call(ep: pj.Endpoint, call: Caller, hangup_after: float) -> float | None:
    """Poll until the call is over; hang up `hangup_after` s after media started. When it hung up."""
    hung_up_at = None
    deadline = time.monotonic() + max(20.0, hangup_after + 10.0)
    while not call.disconnected and time.monotonic() < deadline:
        ep.libHandleEvents(10)
        media_for = time.monotonic() - call.media_at if call.media_at is not None else -1.0
        if hung_up_at is None and media_for >= hangup_after:
            hung_up_at = time.monotonic()
            call.hangup(pj.CallOpParam())
    return hung_up_at


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--wav", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hangup-after", type=float, required=True)
    ap.add_argument("--rtp-port", type=int, required=True)
    ap.add_argument("--user", default="+15550002222")
    ap.add_argument("--wav-delay", type=float, default=0.0, help="seconds of silence before the WAV")
    ap.add_argument("--echo-delay-ms", type=float, default=None, help="send back what is heard, this late")
    ap.add_argument("--echo-gain-db", type=float, default=-15.0)
    args = ap.parse_args()
    pcm = read_wav(args.wav)
    if args.wav_delay > 0:
        pcm = np.concatenate([np.zeros(round(args.wav_delay * 16000), np.int16), pcm])
    echo = Echo(args.echo_delay_ms, args.echo_gain_db) if args.echo_delay_ms is not None else None

    ep, account = start(args.rtp_port, args.user)
    call = Caller(account, pcm, echo)
    call.makeCall(args.target, pj.CallOpParam(True))
    hung_up_at = run_call(ep, call, args.hangup_after)

    recorder, player = call.recorder, call.player
    call.recorder = call.player = None
    frames = list(recorder.frames) if recorder else []
    times = list(recorder.times) if recorder else []
    play_started_at = player.started_at if player else None
    del recorder, player  # ports before the library
    result = {"states": call.states, "last_status": call.last_status, "disconnected": call.disconnected,
              "media_at": call.media_at, "play_started_at": play_started_at, "hung_up_at": hung_up_at,
              "frame_times": times, "wav_delay_s": args.wav_delay}
    del call, account
    ep.libDestroy()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "received.raw").write_bytes(b"".join(frames))
    (args.out / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
