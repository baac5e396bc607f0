"""Benchmarks of the SIP endpoint: the delay the SIP bridge adds, and how many calls two cores carry.

    python benchmarks/sip.py [--shared ../shared] [--json benchmarks/sip.json] [--runs 3] [--steps 1,2,4,...]

Everything runs on 127.0.0.1 with the engines `standin serve` would use for a test line: Silero VAD,
transcript STT, rules judge, scripted replies, espeak, no greeting.

1. Bridge overhead. Each shared scenario runs through `standin simulate` (every engine taking the time it
   really needs) and `--runs` times as a real call: a pjsua2 caller in a child process
   (tests/sip/pjsua2_caller.py) plays the WAV into a SipEndpoint + server.serve.answer in this process.
   The caller sends each 20 ms frame when its bridge asks for it, as a phone sends a frame once its last
   sample is spoken, so WAV time s is spoken at play_started_at - 20 ms + s (simulate likewise hears a
   frame when it is complete). The VAD works in 32 ms windows, so where they fall on the audio moves an end
   of speech by up to a window; the real call's timeline is offset from the WAV's (`timeline_offset_s`,
   found by correlating what standin recorded with the WAV), so each call is compared with `simulate` run
   on the WAV shifted by that offset (`simulate_aligned_v2v_s`). Two measures, from the end of the
   caller's last phrase (the transcript's end_s):
   - extra_wire_s = wire_v2v_s - simulate_aligned_v2v_s (the headline, target <= 40 ms): up to standin's
     first loud reply sample leaving on the wire (the bridge sends a frame in the tick that pulled it,
     within 0.1 ms; verified with a packet capture). This is what the SIP path in standin adds.
   - extra_s = sip_v2v_s - simulate_aligned_v2v_s (the measure before): up to the first bot sample above
     |500| the caller hears, each received frame at the monotonic time it reached the caller's bridge. It
     adds the test phone's own playout: the wait for its next 20 ms tick (20 ms minus standin's phase
     below), its decoder (G.722 and pjmedia's PLC, 6.6 ms) and whatever its jitter buffer holds. A real
     phone has all of these, simulate has none, and standin cannot change them.
   They split as sip_v2v_s = uplink_s + 20 ms + standin_s + downlink_s, wire_v2v_s = the same without
   downlink_s:
   - uplink_s: caller's frame sent -> on standin's call timeline: the wait for standin's next bridge tick
     (`clock_phase_ms`, 0-20 ms, random between two free-running clocks), the decoder (G.722 1.6 ms, PLC
     5 ms more when `plc` is on), a frame more whenever the jitter buffer holds one (`rx_jb_delay_ms`: 20
     for G.722's two 10 ms frames per packet, more when it holds extra);
   - 20 ms: pjmedia's conference bridge reads every port (SipCall.outbound, the runtime's pull) before it
     writes any (RTP out, SipCall.push), and the runtime handles a frame on the event loop after that, so a
     reaction to it goes out one bridge tick later at the earliest (simulate pulls right after feeding);
   - standin_s: end of speech -> first loud bot sample on standin's own timeline (what simulate measures).
     Its difference from simulate_aligned_v2v_s splits in two: `simulate_heard_v2v_s`, simulate on exactly
     what standin heard (codec, jitter buffer gaps, level normaliser), minus simulate on the WAV
     (`codec_and_normaliser`: the VAD's decision moving by a window), and standin_s minus that
     (`live_runtime`: the live runtime against the virtual clock; 0 so far);
   - downlink_s: standin's bridge pulled that frame -> the caller heard it (the phone's part above).
   `--variant` measures other [sip] settings side by side, interleaved call by call (a single variant's
   calls share one long-lived endpoint, as `standin serve` does). Medians over the runs per scenario, then
   the median over scenarios.
2. Concurrent calls. SIPp places N simultaneous calls (all started within a second) that play SIPp's
   A-law speech (g711a.pcap, 7 s), then listen to the bot's scripted reply (about 7 s) until they hang up
   at 14.6 s. One standin process takes at most --calls-per-process calls (4: today's pjsua2 build keeps
   pjsua's default PJSUA_MAX_CALLS = 4, see tests/sip/test_live_calls.py), so N calls go to ceil(N / 4)
   standin processes (child processes of this one, each a SipEndpoint + answer, one SIPp each). Steps
   above 4 therefore measure what the two cores carry with one GIL per 4 calls, not one `standin serve`
   process. The ramp 1, 2, 4, 8, 12, 16, ... goes on to one step past the first where a frame was not on
   time; the result is the last step before that one. A step keeps every frame on time when it has none of
   these and every call was answered and ended by the caller's BYE:
   - late frame: a pull (the bridge asking the runtime for the bot's next 20 ms frame) more than 20 ms behind
     its call's 20 ms schedule (anchored at the call's earliest pull). SipCall counts frames_out but
     exposes no lateness, so each standin process wraps the pull it attaches and timestamps every pull;
   - underrun: a frame that came out short while the bot was mid-utterance and more of its audio came
     later (the playout has no counter either: Playout.pull/add are wrapped in the standin processes);
   - SipCall.pull_errors (pulls that raised: silence sent) and SipCall.frames_dropped (caller frames lost
     because the event loop lagged a second behind).
   CPU per call: the standin processes' CPU time (all threads: SIP, clock, event loop, engines) while the
   calls ran, over the call-seconds they served (0.04 = 4 % of one core per call); SIPp's own CPU (it
   shares the two cores) is reported apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from models.stt_transcript import read_transcript
from server.audio import read_audio
from server.config import Config, load
from server.core.events import PlayoutProgress
from server.engines import build_engines, warm_up
from server.playout import Playout
from server.runtime import CallRuntime, Engines
from server.serve import answer
from server.simulate import simulate

THIS = Path(__file__).resolve()
ROOT = THIS.parents[1]
CALLER = ROOT / "tests" / "sip" / "pjsua2_caller.py"
SIPP_SHARE = Path("/usr/share/sip-tester")
RATE, FRAME, FRAME_S = 16000, 320, 0.02
LEVEL = 500  # |sample| above which the bot is speaking
LATE_S = FRAME_S  # a pull this far behind its schedule has missed its frame's slot
PCAP_SPEECH_S = 7.1  # g711a.pcap: speech from 0.7 s to its end at 7.05 s
HOLD_MS = 7500  # how long the SIPp caller listens after its speech
PCAP_TSV = "start_s\tend_s\tlabel\ttext\n0.6\t7.05\tCOMPLETE\tHello, I am calling about my order. " \
           "Could you take a message?\n"
LONG_REPLY = ("Of course, I have noted your message, and I will pass it on this afternoon, together with "
              "your number, so that they can call you back.")
DEFAULT_STEPS = (1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64)

log = logging.getLogger("benchmarks.sip")


def config(tsv: Path, **tables: dict[str, Any]) -> Config:
    merged: dict[str, dict[str, Any]] = {
        "call": {"greeting": ""}, "vad": {"engine": "silero"},
        "stt": {"engine": "transcript", "transcript": str(tsv)}, "judge": {"engine": "rules"},
        "llm": {"engine": "script"}, "tts": {"engine": "espeak"}}
    for name, values in tables.items():
        merged.setdefault(name, {}).update(values)
    return load(None, merged)


# ---------------------------------------------------------------------------- what standin's side records


@dataclass
class CallStats:
    """One call as standin served it: the pull times, the playout's underruns, the SipCall counters."""

    call: Any
    pulls: list[float] = field(default_factory=list)
    runtime: CallRuntime | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    finished_at: float | None = None

    def lateness(self) -> np.ndarray:
        """How far each pull came behind its call's 20 ms schedule (anchored at the earliest)."""
        if not self.pulls:
            return np.zeros(0)
        behind = np.array(self.pulls) - np.arange(len(self.pulls)) * FRAME_S
        return behind - behind.min()

    def underruns(self) -> int | None:
        """None when the runtime could not be found (nothing measured)."""
        return None if self.runtime is None else getattr(self.runtime.playout, "bench_underruns", 0)


class Served:
    """on_call for the endpoint: times every pull of each call, then runs it as `standin serve` does."""

    def __init__(self) -> None:
        self.engines: Engines | None = None
        self.config: Config | None = None
        self.calls_dir = Path()
        self.calls: list[CallStats] = []
        self.changed = asyncio.Event()

    async def wait_finished(self, calls: int, timeout_s: float) -> None:
        """Until `calls` calls were served and all of them are over (or `timeout_s`)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while len(self.calls) < calls or any(c.finished_at is None for c in self.calls):
                    self.changed.clear()
                    await self.changed.wait()

    async def __call__(self, call: Any) -> None:
        stats = CallStats(call)
        self.calls.append(stats)
        attach = call.attach

        def timed_attach(pull: Any) -> None:
            stats.runtime = _runtime_of(pull)

            def timed() -> np.ndarray:
                stats.pulls.append(time.monotonic())
                return pull()  # type: ignore[no-any-return]

            attach(timed)

        call.attach = timed_attach
        assert self.engines is not None and self.config is not None
        try:
            stats.summary = await answer(call, self.engines, self.config, self.calls_dir)
        except Exception as exc:
            stats.error = f"{type(exc).__name__}: {exc}"
        finally:
            stats.finished_at = time.monotonic()
            self.changed.set()


def _runtime_of(pull: Any) -> CallRuntime | None:
    """The CallRuntime behind LiveCall's pull (a closure over it), for its playout's counters."""
    for cell in getattr(pull, "__closure__", None) or ():
        with contextlib.suppress(ValueError):
            if isinstance(cell.cell_contents, CallRuntime):
                return cell.cell_contents
    return None


def count_underruns() -> None:
    """Wrap Playout (in this process only) to count underruns: frames that came out short while the
    utterance at the head of the line was playing (started, not paused or stopped, all its audio so far
    played) and then more audio came for it. Short frames at an utterance's real end are not counted."""
    pull, add = Playout.pull, Playout.add

    def counted_pull(self: Playout, t: float) -> Any:
        frame, notes = pull(self, t)
        played = sum(n.last - n.first for n in notes if isinstance(n, PlayoutProgress))
        if played < self.frame:
            with self._lock:
                u = self._queue[0] if self._queue else None
                if u is not None and not u.paused and u.stop_at is None and 0 < u.length <= u.pos:
                    starved = self.__dict__.setdefault("bench_starved", defaultdict(int))
                    starved[u.id] += 1
        return frame, notes

    def counted_add(self: Playout, utterance: int, pcm: np.ndarray) -> None:
        self.__dict__.setdefault("bench_underruns", 0)
        if len(pcm):
            with self._lock:
                starved = self.__dict__.get("bench_starved", {}).pop(utterance, 0)
            self.bench_underruns += starved  # type: ignore[attr-defined]
        add(self, utterance, pcm)

    Playout.pull = counted_pull  # type: ignore[method-assign]
    Playout.add = counted_add  # type: ignore[method-assign]


# ---------------------------------------------------------------------------- 1. bridge overhead


def first_loud(x: np.ndarray, start: int) -> int | None:
    loud = np.flatnonzero(np.abs(x[max(start, 0):].astype(np.int32)) > LEVEL)
    return max(start, 0) + int(loud[0]) if len(loud) else None


def simulated_v2v(caller: np.ndarray, cfg: Config, engines: Engines, end_s: float, out: Path) -> float | None:
    """`standin simulate` on `caller`: its end of speech at `end_s` -> the first loud bot sample."""
    simulate(caller, engines, cfg, out)
    bot, _ = soundfile.read(out / "call.wav", dtype="int16")
    first = first_loud(bot[:, 1], round(end_s * RATE))
    shutil.rmtree(out, ignore_errors=True)
    return None if first is None else round(first / RATE - end_s, 3)


def shifted(caller: np.ndarray, delta_s: float) -> np.ndarray:
    """The caller's audio as it sits on a call timeline that has WAV time s at call time s + delta_s."""
    n = round(delta_s * RATE)
    return np.concatenate([np.zeros(n, np.int16), caller]) if n >= 0 else caller[-n:]


def timeline_offset(heard: np.ndarray, sent: np.ndarray, max_lag_s: float = 0.4) -> float:
    """delta_s such that the WAV's sample at s is at s + delta_s of the call's timeline: the best lag
    between envelopes (1 ms hops) of what standin heard (call.wav, left) and the WAV."""
    hop = RATE // 1000

    def envelope(x: np.ndarray) -> np.ndarray:
        k = len(x) // hop
        e = np.abs(x[:k * hop].astype(np.float64)).reshape(k, hop).mean(axis=1)
        return (e - e.mean()) / (e.std() or 1.0)

    a, b = envelope(heard), envelope(sent)
    lags = range(-int(max_lag_s * 1000), int(max_lag_s * 1000) + 1)

    def score(lag: int) -> float:
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        return float(np.dot(x[:n], y[:n]) / n) if n else -1.0

    return max(lags, key=score) / 1000


async def real_call(served: Served, endpoint: Any, wav: Path, out: Path) -> tuple[dict[str, Any], CallStats]:
    """A pjsua2 caller (child process) plays `wav` into standin and hangs up 1.2 s after its end."""
    duration = soundfile.info(str(wav)).duration
    before = len(served.calls)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CALLER), "--target", f"sip:standin@{endpoint.addresses['udp']}",
        "--wav", str(wav), "--out", str(out), "--hangup-after", f"{duration + 1.2:.2f}",
        "--rtp-port", str(free_port_pair()),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), 40)
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
    if proc.returncode != 0 or len(served.calls) <= before:
        raise RuntimeError(f"the pjsua2 caller failed ({proc.returncode}): {output.decode()[-2000:]}")
    await served.wait_finished(len(served.calls), 10.0)
    stats = served.calls[-1]
    if stats.summary is None:
        raise RuntimeError(f"the call failed on standin's side: {stats.error}")
    result = json.loads((out / "result.json").read_text())
    result["received"] = np.frombuffer((out / "received.raw").read_bytes(), "<i2")
    return result, stats


@dataclass(frozen=True)
class Variant:
    """SIP settings for the overhead measurement: SipOptions overrides, and `clock_restart` to restart the
    bridge's clock with each call's media, as pjsua did before standin kept it running."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    clock_restart: bool = False
    switch_interval_ms: float | None = None  # the interpreter's GIL switch interval during the call

    @classmethod
    def parse(cls, text: str) -> Variant:
        """'name' or 'name:key=value,key=value' (values: integers, numbers, true/false, else text)."""
        name, _, rest = text.partition(":")
        options: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, _, raw = item.partition("=")
            value: Any = raw
            with contextlib.suppress(ValueError):
                value = json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
            options[key.strip()] = value
        restart = bool(options.pop("clock_restart", False))
        switch = options.pop("switch_interval_ms", None)
        return cls(name or "default", options, restart, None if switch is None else float(switch))


BEFORE = "before:jb_max_ms=500,jb_max_prefetch_ms=400,plc=true,clock_restart=true"  # pjsua's defaults


@contextlib.asynccontextmanager
async def endpoint_for(served: Served, variant: Variant) -> Any:
    """A SipEndpoint on loopback with `variant`'s settings, for one call at a time."""
    from sip import library
    from sip.endpoint import SipEndpoint
    from sip.options import SipOptions

    options = SipOptions(**{"listen": f"127.0.0.1:{free_port_pair()}", "transports": ("udp",),
                            "rtp_port_start": free_port_pair(40), "rtp_port_count": 40,
                            "allow_from": ("127.0.0.1",), "max_calls": 1, **variant.options})
    endpoint = SipEndpoint(options, served, loop=asyncio.get_running_loop())
    media_state, auto_close = SipEndpoint.on_media_state, library.SND_AUTO_CLOSE_S
    if variant.clock_restart:
        def restart_clock(self: Any, leg: Any) -> None:
            if leg.port is None and leg.call is not None and not leg.disconnected:
                self._ep.audDevManager().setNullDev()  # what pjsua's reopen after an idle second does
            media_state(self, leg)

        endpoint.on_media_state = restart_clock.__get__(endpoint)  # type: ignore[method-assign]
        library.SND_AUTO_CLOSE_S = 1
    switch = sys.getswitchinterval()
    if variant.switch_interval_ms is not None:
        sys.setswitchinterval(variant.switch_interval_ms / 1000)
    try:
        endpoint.start()
        yield endpoint
    finally:
        library.SND_AUTO_CLOSE_S = auto_close
        sys.setswitchinterval(switch)
        await asyncio.to_thread(endpoint.stop)


class Endpoints:
    """One endpoint at a time (pjsua2 allows one per process), kept up while calls use the same variant:
    a single variant's calls all go to one long-lived endpoint, as in `standin serve`."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.variant: Variant | None = None
        self.endpoint: Any = None
        self._stack = contextlib.AsyncExitStack()

    async def get(self, variant: Variant) -> Any:
        if variant != self.variant:
            await self.close()
            self.endpoint = await self._stack.enter_async_context(endpoint_for(self.served, variant))
            self.variant = variant
        return self.endpoint

    async def close(self) -> None:
        await self._stack.aclose()
        self.variant = self.endpoint = None


def clock_phase_ms(pulls: list[float], caller_ticks: list[float]) -> float | None:
    """How long after the caller's bridge tick (when it sends a frame) standin's tick comes, modulo 20 ms:
    the median over a stretch of the call."""
    ticks = np.asarray(caller_ticks)
    phases = []
    for p in pulls[50:250]:
        j = int(np.searchsorted(ticks, p)) - 1
        if 0 <= j < len(ticks):
            phases.append(((p - ticks[j]) * 1000) % (FRAME_S * 1000))
    return round(float(np.median(phases)), 1) if phases else None


async def one_overhead_run(endpoints: Endpoints, variant: Variant, wav: Path, end_s: float, *, work: Path,
                           run: int) -> dict[str, Any]:
    """One real call of a scenario, compared with `simulate` at the same VAD phase."""
    served = endpoints.served
    served.calls_dir = work / "calls" / f"{wav.stem}-{variant.name}-{run}"  # call ids restart per endpoint
    endpoint = await endpoints.get(variant)
    result, stats = await real_call(served, endpoint, wav, work / f"caller-{wav.stem}-{variant.name}-{run}")
    [folder] = list(served.calls_dir.glob(f"*-{stats.call.call_id}"))
    recording, _ = soundfile.read(folder / "call.wav", dtype="int16")
    caller = read_audio(wav)
    delta = timeline_offset(recording[:, 0], caller)
    assert served.config is not None and served.engines is not None
    # The same scenario simulated on the call's timeline (WAV time s at s + delta): the VAD's 32 ms windows
    # then fall on the audio where they fell in the call, so only what the SIP path did differs.
    aligned = await asyncio.to_thread(simulated_v2v, shifted(caller, delta), served.config, served.engines,
                                      end_s + delta, work / f"aligned-{wav.stem}-{run}")
    # ... and on exactly what standin heard (the codec and the level normaliser included).
    heard_sim = await asyncio.to_thread(simulated_v2v, recording[:, 0].copy(), served.config, served.engines,
                                        end_s + delta, work / f"heard-{wav.stem}-{run}")
    row: dict[str, Any] = {"run": run, "variant": variant.name, "timeline_offset_s": delta,
                           "simulate_aligned_v2v_s": aligned, "simulate_heard_v2v_s": heard_sim,
                           "sip_v2v_s": None, "codec": stats.call.codec,
                           "clock_phase_ms": clock_phase_ms(stats.pulls, result["frame_times"]),
                           "pull_late_p99_ms": round(float(np.percentile(stats.lateness(), 99)) * 1000, 1),
                           "rx": dict(stats.call.rx_stats)}
    # The caller: its end of speech (WAV time end_s is spoken at play_started_at - 20 ms + end_s) -> the
    # first loud sample it hears (each frame at the monotonic time it reached its bridge).
    spoken_end = result["play_started_at"] - FRAME_S + end_s
    heard = None
    for i, t in enumerate(result["frame_times"]):
        j = first_loud(result["received"][i * FRAME:(i + 1) * FRAME], 0) if t >= spoken_end else None
        if j is not None:
            heard = t + j / RATE
            break
    # standin: the first loud bot sample after the end on its own timeline, and when its frame was pulled
    # (the bridge sends it to the caller in the same tick, within a tenth of a millisecond).
    k = first_loud(recording[:, 1], round((end_s + delta) * RATE))
    if heard is None or k is None or k // FRAME >= len(stats.pulls):
        return row
    sent = stats.pulls[k // FRAME] + (k % FRAME) / RATE
    row["sip_v2v_s"] = round(heard - spoken_end, 3)
    row["wire_v2v_s"] = round(sent - spoken_end, 3)
    row["extra_s"] = None if aligned is None else round(row["sip_v2v_s"] - aligned, 3)
    row["extra_wire_s"] = None if aligned is None else round(row["wire_v2v_s"] - aligned, 3)
    # WAV time s reaches the call's timeline (standin's jitter buffer, bridge, runtime) at s + delta, and
    # call time c is pulled at pulls[0] + c; a caller frame is handed over just after its tick's pull, so
    # the earliest a reaction can go out is the next tick (one frame, the `tick` in the sum below).
    row["uplink_s"] = round(stats.pulls[0] + delta - result["play_started_at"], 3)
    row["standin_s"] = round(k / RATE - (end_s + delta), 3)  # on the call's timeline
    row["downlink_s"] = round(heard - sent, 3)
    return row


OVERHEAD_KEYS = ("simulate_aligned_v2v_s", "simulate_heard_v2v_s", "sip_v2v_s", "wire_v2v_s", "extra_s",
                 "extra_wire_s", "uplink_s", "standin_s", "downlink_s", "clock_phase_ms", "pull_late_p99_ms")


async def bridge_overhead(served: Served, shared: Path, work: Path, *, runs: int, only: list[str],
                          variants: list[Variant]) -> dict[str, Any]:
    """Every scenario `runs` times per variant, the variants interleaved call by call (the machine's load
    then weighs on them alike)."""
    endpoints = Endpoints(served)
    try:
        rows = await _overhead_rows(endpoints, shared, work, runs=runs, only=only, variants=variants)
    finally:
        await endpoints.close()
    summaries = {name: overhead_summary(found, runs) for name, found in rows.items()}
    if len(summaries) == 1:
        return next(iter(summaries.values()))
    return {"variants": summaries, "settings": {v.name: {**v.options, "clock_restart": v.clock_restart,
                                                         "switch_interval_ms": v.switch_interval_ms}
                                                for v in variants},
            "order": "interleaved: each run of a scenario calls once with every variant"}


async def _overhead_rows(endpoints: Endpoints, shared: Path, work: Path, *, runs: int, only: list[str],
                         variants: list[Variant]) -> dict[str, list[dict[str, Any]]]:
    served = endpoints.served
    rows: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    for scenario in json.loads((shared / "scenarios" / "scenarios.json").read_text()):
        name = scenario["name"]
        if only and name not in only:
            continue
        wav, tsv = shared / "scenarios" / f"{name}.wav", shared / "scenarios" / f"{name}.tsv"
        end_s = read_transcript(tsv)[-1].end_s
        cfg = config(tsv)
        engines = build_engines(cfg)
        await asyncio.to_thread(warm_up, engines)
        plain = await asyncio.to_thread(simulated_v2v, read_audio(wav), cfg, engines, end_s,
                                        work / f"sim-{name}")
        served.engines, served.config = engines, cfg
        calls: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
        for run in range(runs):
            for variant in variants:
                calls[variant.name].append(
                    await one_overhead_run(endpoints, variant, wav, end_s, work=work, run=run))
        for variant in variants:
            done = calls[variant.name]
            log.warning("bridge overhead %s (%s), every run: %s", name, variant.name, done)
            row: dict[str, Any] = {"scenario": name, "simulate_v2v_s": plain}
            for key in OVERHEAD_KEYS:
                values = [c[key] for c in done if c.get(key) is not None]
                row[key] = round(statistics.median(values), 3) if values else None
            for key in ("jb_delay_ms", "jb_empty", "lost"):
                values = [c["rx"][key] for c in done if key in c["rx"]]
                row[f"rx_{key}"] = statistics.median(values) if values else None
            row["extra_runs_s"] = [c.get("extra_s") for c in done]
            row["extra_wire_runs_s"] = [c.get("extra_wire_s") for c in done]
            row["codec"] = done[0]["codec"]
            rows[variant.name].append(row)
            log.warning("bridge overhead %s (%s): %s", name, variant.name, row)
    return rows


def overhead_summary(rows: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    def median_diff(a: str, b: str) -> float | None:
        values = [r[a] - r[b] for r in rows if r.get(a) is not None and r.get(b) is not None]
        return round(statistics.median(values), 3) if values else None

    extras = [r["extra_s"] for r in rows if r["extra_s"] is not None]
    return {"rows": rows, "runs_per_scenario": runs,
            "median_extra_s": median("extra_s"), "median_extra_wire_s": median("extra_wire_s"),
            "median_uplink_s": median("uplink_s"), "median_downlink_s": median("downlink_s"),
            "median_standin_minus_simulate_s": median_diff("standin_s", "simulate_aligned_v2v_s"),
            "median_codec_and_normaliser_s": median_diff("simulate_heard_v2v_s", "simulate_aligned_v2v_s"),
            "median_live_runtime_s": median_diff("standin_s", "simulate_heard_v2v_s"),
            "median_clock_phase_ms": median("clock_phase_ms"),
            "median_rx_jb_delay_ms": median("rx_jb_delay_ms"),
            "target_s": 0.040, "complete": len(extras) == len(rows)}


# ---------------------------------------------------------------------------- 2. concurrent calls




async def run_sipp(target: str, calls: int, work: Path, timeout_s: float) -> tuple[int, str, float | None]:
    """SIPp placing `calls` simultaneous calls (its scenario and pcap/ in work's parent's parent); (exit
    status, output tail, its CPU seconds if GNU time can tell)."""
    scenario_dir = work.parents[1]
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("SIPp is not installed (apt-get install sip-tester)")
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    gnu_time = shutil.which("time")  # GNU time, for SIPp's CPU seconds
    timed = [gnu_time, "-f", "cpu %U %S"] if gnu_time else []
    proc = await asyncio.create_subprocess_exec(
        *timed, sipp, "-sf", str(scenario_dir / "caller.xml"), target,
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_port_pair(4 * calls + 8)), "-m", str(calls),
        "-l", str(calls), "-r", str(calls), "-rp", "1000", "-nostdin", "-timeout", f"{int(timeout_s)}s",
        "-timeout_error", "-trace_err", "-error_file", str(work / "errors.log"),
        cwd=scenario_dir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s + 15)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    cpu = sum(float(x) for x in text.rsplit("cpu ", 1)[-1].split()[:2]) if timed and "cpu " in text else None
    log_file = work / "errors.log"
    errors = log_file.read_text(errors="replace")[-1500:] if log_file.exists() else ""
    return proc.returncode if proc.returncode is not None else -1, text[-1500:] + errors, cpu


async def serve_shard(calls: int, out: Path, timeout_s: float) -> None:
    """A child process: one standin (SipEndpoint + answer, as `standin serve`) that takes `calls` calls,
    then writes what standin saw of them into out/stats.json."""
    from sip.endpoint import SipEndpoint
    from sip.options import SipOptions

    count_underruns()
    served = Served()
    cfg = config(out.parents[1] / "pcap.tsv", llm={"replies": [LONG_REPLY, LONG_REPLY]})
    served.engines, served.config, served.calls_dir = build_engines(cfg), cfg, out / "calls"
    await asyncio.to_thread(warm_up, served.engines)
    options = SipOptions(listen=f"127.0.0.1:{free_port_pair()}", transports=("udp",),
                         rtp_port_start=free_port_pair(4 * calls + 8), rtp_port_count=4 * calls + 8,
                         allow_from=("127.0.0.1",), max_calls=calls)
    endpoint = SipEndpoint(options, served, loop=asyncio.get_running_loop())
    endpoint.start()
    try:
        cpu = time.process_time()
        (out / "ready").write_text(endpoint.addresses["udp"])
        await served.wait_finished(calls, timeout_s)
        cpu = time.process_time() - cpu
    finally:
        await asyncio.to_thread(endpoint.stop)
    rows = []
    for c in served.calls:
        summary = c.summary or {}
        rows.append({
            "lateness_ms": [round(x * 1000, 2) for x in c.lateness()], "underruns": c.underruns(),
            "pull_errors": c.call.pull_errors, "frames_dropped": c.call.frames_dropped,
            "duration_s": summary.get("duration_s", 0.0), "ended": summary.get("ended"), "error": c.error,
            "bot_speech_s": sum(b["end_s"] - b["start_s"] for b in summary.get("bot_turns", [])
                                if b["start_s"] is not None and b["end_s"] is not None)})
    (out / "stats.json").write_text(json.dumps({"cpu_s": cpu, "calls": rows}))


async def start_shard(calls: int, out: Path) -> tuple[asyncio.subprocess.Process, str]:
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    with (out / "stderr.log").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(THIS), "--shard-calls", str(calls), "--shard-out", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
    async with asyncio.timeout(60):
        while not (out / "ready").exists():
            if proc.returncode is not None:
                raise RuntimeError(f"a standin shard failed: {(out / 'stderr.log').read_text()[-2000:]}")
            await asyncio.sleep(0.1)
    return proc, (out / "ready").read_text()


async def one_step(calls: int, per_process: int, work: Path) -> dict[str, Any]:
    """`calls` simultaneous SIPp calls into ceil(calls / per_process) standin processes."""
    shards = -(-calls // per_process)
    sizes = [calls // shards + (i < calls % shards) for i in range(shards)]
    step = work / f"step-{calls}"
    started = await asyncio.gather(*(start_shard(n, step / f"standin-{i}") for i, n in enumerate(sizes)))
    wall = time.monotonic()
    limit = PCAP_SPEECH_S + HOLD_MS / 1000 + 30
    sipp = await asyncio.gather(*(run_sipp(address, n, step / f"sipp-{i}", limit)
                                  for i, ((_, address), n) in enumerate(zip(started, sizes, strict=True))))
    for proc, _ in started:
        try:
            async with asyncio.timeout(30):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    wall = time.monotonic() - wall
    stats = [json.loads(p.read_text()) if (p := step / f"standin-{i}" / "stats.json").exists() else None
             for i in range(shards)]
    per_call = [c for s in stats if s for c in s["calls"]]
    late = np.array([x for c in per_call for x in c["lateness_ms"]]) / 1000
    call_s = sum(c["duration_s"] for c in per_call)
    cpu = sum(s["cpu_s"] for s in stats if s)
    completed = sum(1 for c in per_call if c["ended"] == "caller hung up")
    underruns = [c["underruns"] for c in per_call]
    row: dict[str, Any] = {
        "calls": calls, "standin_processes": shards, "answered": len(per_call), "completed": completed,
        "sipp_ok": all(rc == 0 for rc, _, _ in sipp),
        "frames": len(late), "late_frames": int((late > LATE_S).sum()),
        "max_late_ms": round(float(late.max()) * 1000, 1) if len(late) else None,
        "p99_late_ms": round(float(np.percentile(late, 99)) * 1000, 1) if len(late) else None,
        "underruns": sum(u or 0 for u in underruns) if all(u is not None for u in underruns) else None,
        "pull_errors": sum(c["pull_errors"] for c in per_call),
        "frames_dropped": sum(c["frames_dropped"] for c in per_call),
        "bot_speech_s": round(sum(c["bot_speech_s"] for c in per_call), 1),
        "call_s": round(call_s, 1), "standin_cpu_s": round(cpu, 2), "wall_s": round(wall, 1),
        "cpu_per_call_s": round(cpu / call_s, 4) if call_s else None,
        "standin_cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "sipp_cpu_s": round(sum(c for _, _, c in sipp if c is not None), 2)
        if all(c is not None for _, _, c in sipp) else None,
    }
    row["on_time"] = bool(row["sipp_ok"] and completed == calls and row["late_frames"] == 0
                          and row["underruns"] == 0 and row["pull_errors"] == 0
                          and row["frames_dropped"] == 0)
    if not row["sipp_ok"]:
        row["sipp_output"] = next(out for rc, out, _ in sipp if rc != 0)[-600:]
    log.warning("concurrent calls: %s", row)
    return row


async def concurrent_calls(steps: list[int], per_process: int, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))  # the tests' SIPp scenarios
    from tests.sip.sipp import pcap_call

    if not (SIPP_SHARE / "g711a.pcap").is_file():
        raise RuntimeError(f"{SIPP_SHARE / 'g711a.pcap'} is missing (apt-get install sip-tester)")
    (work / "pcap").mkdir(parents=True, exist_ok=True)
    shutil.copy(SIPP_SHARE / "g711a.pcap", work / "pcap" / "g711a.pcap")
    (work / "caller.xml").write_text(pcap_call(int(PCAP_SPEECH_S * 1000) + HOLD_MS))
    (work / "pcap.tsv").write_text(PCAP_TSV)
    rows: list[dict[str, Any]] = []
    for calls in steps:  # on to one step past the first that was not on time, to show the trend
        rows.append(await one_step(calls, per_process, work))
        shutil.rmtree(work / f"step-{calls}", ignore_errors=True)
        if sum(not r["on_time"] for r in rows) >= 2:
            break
    good = list(itertools.takewhile(lambda r: r["on_time"], rows))
    best = good[-1] if good else None
    single = [r for r in good if r["standin_processes"] == 1]
    return {"rows": rows, "max_calls_on_time": best["calls"] if best else 0,
            "cpu_per_call_s": best["cpu_per_call_s"] if best else None,
            "max_calls_on_time_one_process": single[-1]["calls"] if single else 0,
            "calls_per_process": per_process, "cores": os.cpu_count(), "late_threshold_ms": LATE_S * 1000,
            "stopped": "end of the ramp" if best is rows[-1] else
            "one step past the first with a late frame, an underrun or a failed call"}


# ---------------------------------------------------------------------------- plumbing


def free_port_pair(count: int = 2) -> int:
    """An even UDP port with `count` free ports from it on 127.0.0.1."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            start = probe.getsockname()[1] & ~1
        if start + count < 65000 and all(_udp_free(p) for p in range(start, start + count)):
            return start
    raise RuntimeError("no free UDP ports")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _shadowless_path() -> None:
    """Run as `python benchmarks/sip.py`, this file's folder comes first on sys.path, where `sip` is this
    file: take that folder off so `import sip` finds the project's package."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != here]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if getattr(sys.modules.get("sip"), "__file__", None) == str(here / "sip.py"):
        del sys.modules["sip"]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if not args.skip_overhead:
            results["bridge_overhead"] = await overhead_in_process(args, work)
        if not args.skip_concurrency:
            results["concurrent_calls"] = await concurrent_calls(args.steps, args.calls_per_process,
                                                                 work / "concurrent")
    return results


async def overhead_in_process(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    count_underruns()
    variants = [Variant.parse(v) for v in args.variant] or [Variant("default")]
    return await bridge_overhead(Served(), args.shared, work, runs=args.runs, only=args.scenarios,
                                 variants=variants)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=list(DEFAULT_STEPS),
                        help="numbers of simultaneous calls to ramp through")
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=[],
                        help="only these scenarios (comma-separated names)")
    parser.add_argument("--runs", type=int, default=3, help="real calls per scenario (medians reported)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                        help="SIP settings to measure the overhead with ([sip] keys, and clock_restart=true "
                             "for pjsua's clock that restarts with each call); several are interleaved call "
                             f"by call. The settings before standin tuned them: --variant {BEFORE}")
    parser.add_argument("--work", type=Path, help="keep the calls' files here (default: a temporary folder)")
    parser.add_argument("--calls-per-process", type=int, default=4,
                        help="calls one standin process takes (4: pjsua's PJSUA_MAX_CALLS in today's build)")
    parser.add_argument("--shard-calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shard-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-concurrency", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    _shadowless_path()
    if args.shard_calls:
        asyncio.run(serve_shard(args.shard_calls, args.shard_out, PCAP_SPEECH_S + HOLD_MS / 1000 + 60))
        return
    # pjlib prints its first lines to stdout before its log settings apply: keep stdout for the JSON.
    sys.stdout.flush()
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        results = asyncio.run(run(args))
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
        os.close(stdout)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
