"""Ring-through against issue 13's targets, on loopback: from the caller's request to the owner's phone
ringing (<= 1 s), and audio frames lost or late in the bridge with 4 bridged calls at once (target 0).

standin runs in this process, as `standin serve` does (SipEndpoint, `server.serve.answer`, the live
runtime with Silero VAD, the transcript STT, the rules judge, the scripted LLM and espeak); a second
pjsua2 endpoint in a child process (tests/sip/pjsua2_peers.py) places --calls calls, each caller with
a tone of its own, presses 0, and is the owner's phone for every call standin places: it answers and
presses 1, then sends a tone of its own. Measured:

- trigger -> ringing: the caller's 0 leaving the peer -> standin's INVITE reaching the owner's phone
  (one monotonic clock, both processes), and standin's own trigger -> 180 Ringing (`wall_ms`);
- the bridge, over each call's bridged span (from 0.5 s after the owner's 1 to 0.5 s before the hang-up),
  in both directions: 20 ms slots in which the receiving phone got no frame (lost or late), got one
  without the other side's tone (lost audio), and arrival gaps over 40 ms; standin's receive side of
  both legs over the same span (RTP packets lost, jitter-buffer underruns and discards, from the
  1-second stats snapshots closest inside it).

    python benchmarks/ring_through.py [--calls 4] [--bridged-s 20] [--out benchmarks/ring_through.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.config import load  # noqa: E402
from server.engines import build_engines, warm_up  # noqa: E402
from server.serve import answer  # noqa: E402
from tests.sip.endpoint_kit import loopback_options  # noqa: E402
from tests.sip.sipp import free_port, free_rtp_range  # noqa: E402

PEERS = ROOT / "tests" / "sip" / "pjsua2_peers.py"
CALLER_HZ, OWNER_HZ, STEP_HZ = 440.0, 1000.0, 40.0
PRESS_AT_S, ANSWER_AFTER_S, DECIDE_AFTER_S = 1.5, 0.5, 1.5


def tone_frames(x: np.ndarray, hz: float) -> np.ndarray:
    """Per 20 ms frame of `x`: whether its loudest frequency is `hz` (within 20 Hz) and it is not quiet."""
    k = len(x) // 320
    frames = x[: k * 320].astype(np.float64).reshape(k, 320)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(320), n=3200, axis=1))
    peak = np.argmax(spectrum, axis=1) * 16000 / 3200
    toned: np.ndarray = (np.abs(peak - hz) <= 20) & (np.sqrt(np.mean(frames ** 2, axis=1)) >= 300)
    return toned


def direction(peer: dict[str, Any], audio: np.ndarray, hz: float, start: float, end: float) -> dict[str, Any]:
    """What `peer` received of the other side's tone between monotonic `start` and `end`. A missing frame
    is a 20 ms slot left empty inside an arrival gap (or before the first, after the last): the two
    processes' media clocks drift apart by about a frame in 20 s, so counting frames against the span's
    length would call that drift a loss."""
    times = np.asarray(peer["frame_times"])
    inside = (times >= start) & (times < end)
    slots = round((end - start) / 0.02)
    got = int(inside.sum())
    has_tone = tone_frames(audio, hz)[: len(times)][inside[: len(audio) // 320]]
    gaps = np.diff(times[inside]) if got > 1 else np.zeros(0)
    spans = np.concatenate(([times[inside][0] - start], gaps, [end - times[inside][-1]])) if got else \
        np.array([end - start])
    missing = int(np.maximum(0, np.round(spans / 0.02) - 1).sum())
    return {"slots": slots, "frames": got, "missing": missing,
            "without_tone": int((~has_tone).sum()), "gaps_over_40ms": int((gaps > 0.040).sum()),
            "max_gap_ms": round(float(gaps.max()) * 1000, 1) if len(gaps) else None}


def rx_delta(snapshots: list[tuple[float, dict[str, float]]], start: float, end: float) -> dict[str, Any]:
    """standin's receive stats of one leg between the first snapshot after `start` and the last before
    `end` (the stats are refreshed every second)."""
    inside = [(t, s) for t, s in snapshots if start <= t <= end and s]
    if len(inside) < 2:
        return {"span_s": 0.0}
    (t0, a), (t1, b) = inside[0], inside[-1]
    return {"span_s": round(t1 - t0, 1), **{k: int(b[k] - a[k]) for k in
                                            ("packets", "lost", "jb_discarded", "jb_empty")},
            "jb_delay_ms": b["jb_delay_ms"]}


async def run(calls: int, bridged_s: float, workdir: Path, sip: dict[str, Any]) -> dict[str, Any]:
    from sip.endpoint import SipEndpoint

    owner_port = free_port()
    transcript = workdir / "nothing.tsv"
    transcript.write_text("start_s\tend_s\tlabel\ttext\n900.0\t901.0\tCOMPLETE\tNothing.\n")
    config = load(None, {"call": {"greeting": "Hello, this is standin.", "max_duration_s": 600.0},
                         "stt": {"transcript": str(transcript)},
                         "owner": {"phone": f"sip:owner@127.0.0.1:{owner_port}", "ring_timeout_s": 10.0}})
    engines = build_engines(config)
    await asyncio.to_thread(warm_up, engines)
    summaries: list[dict[str, Any]] = []
    snapshots: dict[str, list[tuple[float, dict[str, float]]]] = {}
    endpoint: SipEndpoint | None = None

    async def on_call(call: Any) -> None:
        summaries.append(await answer(call, engines, config, workdir / "calls", switchboard=endpoint))

    async def watch() -> None:
        """Every 0.5 s, each leg's receive stats (caller legs and standin's calls to the owner)."""
        assert endpoint is not None
        while True:
            now = time.monotonic()
            for name, leg in list(endpoint._legs.items()):  # a benchmark may look inside
                if leg.call is not None and leg.call.rx_stats:
                    snapshots.setdefault(name, []).append((now, dict(leg.call.rx_stats)))
            await asyncio.sleep(0.5)

    endpoint = SipEndpoint(loopback_options(answer_after_s=0.2, max_calls=2 * calls + 2, **sip), on_call,
                           loop=asyncio.get_running_loop())
    endpoint.start()
    watcher = asyncio.create_task(watch())
    hangup_after = PRESS_AT_S + ANSWER_AFTER_S + DECIDE_AFTER_S + bridged_s
    out = workdir / "peers"
    load_before = os.getloadavg()
    cpu_before = time.process_time()
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(PEERS), "--target", f"sip:standin@{endpoint.addresses['udp']}",
            "--out", str(out), "--port", str(owner_port), "--rtp-port", str(free_rtp_range()),
            "--calls", str(calls), "--hangup-after", f"{hangup_after:.2f}", "--press-at", str(PRESS_AT_S),
            "--owner", "accept", "--answer-after", str(ANSWER_AFTER_S), "--decide-after", str(DECIDE_AFTER_S),
            "--caller-tone", str(CALLER_HZ), "--owner-tone", str(OWNER_HZ),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(proc.communicate(), hangup_after + 60)
        if proc.returncode != 0:
            raise SystemExit(f"the peers failed:\n{output.decode(errors='replace')[-3000:]}")
        for _ in range(400):
            if len(summaries) >= calls:
                break
            await asyncio.sleep(0.05)
    finally:
        watcher.cancel()
        await asyncio.to_thread(endpoint.stop)
    machine = {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in os.getloadavg()],
               "standin_cpu_s": round(time.process_time() - cpu_before, 2),
               "wall_s": round(time.monotonic() - started, 1), "python": platform.python_version(),
               "sip": sip}
    result = json.loads((out / "result.json").read_text())
    return {"calls": calls, **analyse(result, out, summaries, snapshots, machine)}


def per_call_frames(per_call: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median and max over the calls' directions: frames lost (a slot with no frame, or one without the
    other side's tone) and late (arrival gaps over 40 ms)."""
    directions = [c[k] for c in per_call for k in ("caller_to_owner", "owner_to_caller")]
    lost = [d["missing"] + d["without_tone"] for d in directions]
    late = [d["gaps_over_40ms"] for d in directions]
    return {"lost": {"median": statistics.median(lost), "max": max(lost)},
            "late": {"median": statistics.median(late), "max": max(late)}}


def analyse(result: dict[str, Any], out: Path, summaries: list[dict[str, Any]],
            snapshots: dict[str, list[tuple[float, dict[str, float]]]], machine: dict[str, Any]
            ) -> dict[str, Any]:
    callers, owners = result["callers"], result["owners"]
    audio = {(p["role"], p["index"]): np.frombuffer((out / f"{p['role']}-{p['index']}.raw").read_bytes(),
                                                    "<i2")
             for p in [*callers, *owners]}
    rings = [s["ring_through"] for s in summaries if s.get("ring_through")]
    presses = [c["events"]["pressed_0"] for c in callers if "pressed_0" in c["events"]]
    # each owner's INVITE against the latest 0 pressed before it
    trigger_to_invite = sorted(
        round((o["events"]["invite"] - max(p for p in presses if p <= o["events"]["invite"])) * 1000, 1)
        for o in owners)
    per_call = []
    for owner in owners:
        i = owner["index"]
        # which caller: the one whose tone this owner hears
        heard = audio[("owner", i)]
        ks = [c["index"] for c in callers]
        k = max(ks, key=lambda j: int(tone_frames(heard, CALLER_HZ + STEP_HZ * j).sum()))
        caller = callers[k]
        start = owner["events"]["pressed_1"] + 0.5
        end = min(caller["events"].get("hung_up", 1e18), owner["events"].get("disconnected", 1e18)) - 0.5
        per_call.append({
            "caller": k, "owner": i, "bridged_s": round(end - start, 2),
            "caller_to_owner": direction(owner, heard, CALLER_HZ + STEP_HZ * k, start, end),
            "owner_to_caller": direction(caller, audio[("caller", k)], OWNER_HZ + STEP_HZ * i, start, end)})
    legs = {name: rx_delta(snaps, min(c["events"]["pressed_1"] for c in owners) + 0.5,
                           max(c["events"].get("hung_up", 0) for c in callers) - 0.5)
            for name, snaps in sorted(snapshots.items())}
    directions = [d for c in per_call for d in (c["caller_to_owner"], c["owner_to_caller"])]
    ringing_ms = [r["wall_ms"].get("ringing_ms") for r in rings if r.get("wall_ms")]
    return {
        "accepted": sum(r.get("outcome") == "accepted" for r in rings),
        "trigger_to_owner_invite_ms": {"median": statistics.median(trigger_to_invite),
                                       "max": max(trigger_to_invite), "all": trigger_to_invite},
        "standin_trigger_to_180_ms": {"median": statistics.median(ringing_ms), "max": max(ringing_ms)},
        "bridge": {
            "slots": sum(d["slots"] for d in directions),
            "missing": sum(d["missing"] for d in directions),
            "without_tone": sum(d["without_tone"] for d in directions),
            "gaps_over_40ms": sum(d["gaps_over_40ms"] for d in directions),
            "standin_rx_lost": sum(v.get("lost", 0) for v in legs.values()),
            "standin_jb_empty": sum(v.get("jb_empty", 0) for v in legs.values()),
            "standin_jb_discarded": sum(v.get("jb_discarded", 0) for v in legs.values()),
        },
        "per_call_frames": per_call_frames(per_call), "per_call": per_call, "standin_legs": legs,
        "machine": machine,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--bridged-s", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--jb-init-ms", type=int, default=None, help="[sip] jb_init_ms for standin (default 0)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "ring_through.json")
    args = ap.parse_args()
    sip = {} if args.jb_init_ms is None else {"jb_init_ms": args.jb_init_ms}
    runs = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(run(args.calls, args.bridged_s, Path(tmp), sip))
        b, t = r["bridge"], r["trigger_to_owner_invite_ms"]
        print(f"run {n + 1}: {r['accepted']}/{r['calls']} bridged; 0 -> owner's INVITE median "
              f"{t['median']} ms (max {t['max']}); "
              f"bridge: {b['missing']} of {b['slots']} slots missing, {b['without_tone']} without the tone, "
              f"{b['gaps_over_40ms']} gaps > 40 ms; standin rx: {b['standin_rx_lost']} lost, "
              f"{b['standin_jb_empty']} jb empty, {b['standin_jb_discarded']} discarded; load "
              f"{r['machine']['loadavg_before']} -> {r['machine']['loadavg_after']}; per call direction: "
              f"lost {r['per_call_frames']['lost']}, late {r['per_call_frames']['late']}", flush=True)
        runs.append(r)
    target = {"trigger_to_ringing_ms": 1000, "bridge_frames_lost_or_late": 0}
    args.out.write_text(json.dumps({"target": target, "runs": runs}, indent=1) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
