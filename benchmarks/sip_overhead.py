"""Bridge overhead: the delay the SIP path adds to voice-to-voice over `standin simulate`.

    python benchmarks/sip_overhead.py [--shared ../shared] [--json FILE] [--runs 3] [--scenarios a,b]
                                      [--variant NAME:KEY=VALUE,...]

Everything runs on 127.0.0.1 with the engines `standin serve` would use for a test line: Silero VAD,
transcript STT, rules judge, scripted replies, espeak, no greeting. benchmarks/sip_all.py runs this and
benchmarks/sip_calls.py together.

Each shared scenario runs through `standin simulate` (every engine taking the time it really needs) and
`--runs` times as a real call: a pjsua2 caller in a child process (tests/sip/pjsua2_caller.py) plays the
WAV into a SipEndpoint + server.serve.answer in this process. The caller sends each 20 ms frame when its
bridge asks for it, as a phone sends a frame once its last sample is spoken, so WAV time s is spoken at
play_started_at - 20 ms + s (simulate likewise hears a frame when it is complete). The VAD works in 32 ms
windows, so where they fall on the audio moves an end of speech by up to a window; the real call's
timeline is offset from the WAV's (`timeline_offset_s`, found by correlating what standin recorded with
the WAV), so each call is compared with `simulate` run on the WAV shifted by that offset
(`simulate_aligned_v2v_s`). Two measures, from the end of the caller's last phrase (the transcript's
end_s):
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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import sip_kit as kit
from benchmarks.sip_kit import FRAME, FRAME_S, RATE, ROOT, CallStats, Served
from models.stt_transcript import read_transcript
from server.audio import read_audio
from server.config import Config
from server.engines import build_engines, warm_up
from server.runtime import Engines
from server.simulate import simulate

CALLER = ROOT / "tests" / "sip" / "pjsua2_caller.py"
LEVEL = 500  # |sample| above which the bot is speaking


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
        normal: np.ndarray = (e - e.mean()) / (e.std() or 1.0)
        return normal

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
        "--rtp-port", str(kit.free_port_pair()),
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

    options = kit.loopback_options(40, 1, **variant.options)
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
        cfg = kit.config(tsv)
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
            kit.log.warning("bridge overhead %s (%s), every run: %s", name, variant.name, done)
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
            kit.log.warning("bridge overhead %s (%s): %s", name, variant.name, row)
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


def add_arguments(found: argparse.ArgumentParser) -> None:
    found.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    found.add_argument("--scenarios", type=lambda s: s.split(","), default=[],
                       help="only these scenarios (comma-separated names)")
    found.add_argument("--runs", type=int, default=3, help="real calls per scenario (medians reported)")
    found.add_argument("--variant", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                       help="SIP settings to measure the overhead with ([sip] keys, and clock_restart=true "
                            "for pjsua's clock that restarts with each call); several are interleaved call "
                            f"by call. The settings before standin tuned them: --variant {BEFORE}")


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The bridge overhead, served in this process (the callers are child processes)."""
    kit.count_underruns()
    variants = [Variant.parse(v) for v in args.variant] or [Variant("default")]
    return await bridge_overhead(Served(), args.shared, work, runs=args.runs, only=args.scenarios,
                                 variants=variants)


def main() -> None:
    found = kit.parser(__doc__)
    add_arguments(found)
    kit.measure_and_write(kit.parse(found), {"bridge_overhead": measure})


if __name__ == "__main__":
    main()
