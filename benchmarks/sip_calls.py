"""Concurrent calls per standin process: a ramp of simultaneous SIPp calls, late frames, CPU per call.

    python benchmarks/sip_calls.py [--json FILE] [--steps 1,2,4,...] [--calls-per-process 4]

Everything runs on 127.0.0.1 with the engines `standin serve` would use for a test line: Silero VAD,
transcript STT, rules judge, scripted replies, espeak, no greeting. benchmarks/sip_all.py runs this and
benchmarks/sip_overhead.py together.

SIPp places N simultaneous calls (all started within a second) that play SIPp's A-law speech (g711a.pcap,
7 s), then listen to the bot's scripted reply (about 7 s) until they hang up at 14.6 s. One standin
process takes at most --calls-per-process calls (default 28, `[sip] max_calls`' limit with the 32-call
pjsua2 build), so N calls go to ceil(N / that) standin processes (child processes of this one, each a
SipEndpoint + answer, one SIPp each). With the default every step up to 28 calls runs in one process,
as `standin serve` would take them. The ramp 1,
2, 4, 8, 12, 16, ... goes on to one step past the first where a frame was not on time; the result is the
last step before that one. A step keeps every frame on time when it has none of these and every call was
answered and ended by the caller's BYE:
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
import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import sip_kit as kit
from benchmarks.sip_kit import FRAME_S, ROOT, Served
from server.engines import build_engines, warm_up
from sip.options import MAX_CALLS_LIMIT

THIS = Path(__file__).resolve()
LATE_S = FRAME_S  # a pull this far behind its schedule has missed its frame's slot
PCAP_SPEECH_S = 7.1  # g711a.pcap: speech from 0.7 s to its end at 7.05 s
HOLD_MS = 7500  # how long the SIPp caller listens after its speech
PCAP_TSV = "start_s\tend_s\tlabel\ttext\n0.6\t7.05\tCOMPLETE\tHello, I am calling about my order. " \
           "Could you take a message?\n"
LONG_REPLY = ("Of course, I have noted your message, and I will pass it on this afternoon, together with "
              "your number, so that they can call you back.")
DEFAULT_STEPS = (1, 2, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64)


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
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(kit.free_port_pair(4 * calls + 8)),
        "-m", str(calls), "-l", str(calls), "-r", str(calls), "-rp", "1000", "-nostdin",
        "-timeout", f"{int(timeout_s)}s",
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

    kit.count_underruns()
    served = Served()
    cfg = kit.config(out.parents[1] / "pcap.tsv", llm={"replies": [LONG_REPLY, LONG_REPLY]})
    served.engines, served.config, served.calls_dir = build_engines(cfg), cfg, out / "calls"
    await asyncio.to_thread(warm_up, served.engines)
    options = kit.loopback_options(4 * calls + 8, calls)
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
    kit.log.warning("concurrent calls: %s", row)
    return row


async def concurrent_calls(steps: list[int], per_process: int, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))  # the tests' SIPp scenarios
    from tests.sip.sipp import SIPP_SHARE, pcap_call

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


def add_arguments(found: argparse.ArgumentParser) -> None:
    found.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=list(DEFAULT_STEPS),
                       help="numbers of simultaneous calls to ramp through")
    found.add_argument("--calls-per-process", type=int, default=MAX_CALLS_LIMIT,
                       help=f"calls one standin process takes (default {MAX_CALLS_LIMIT}, as one "
                            "`standin serve` takes at most)")


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The ramp of concurrent calls, served by standin processes that are children of this one."""
    return await concurrent_calls(args.steps, args.calls_per_process, work / "concurrent")


def main() -> None:
    found = kit.parser(__doc__)
    add_arguments(found)
    found.add_argument("--shard-calls", type=int, help=argparse.SUPPRESS)  # how start_shard runs this file
    found.add_argument("--shard-out", type=Path, help=argparse.SUPPRESS)
    args = kit.parse(found)
    if args.shard_calls:
        asyncio.run(serve_shard(args.shard_calls, args.shard_out, PCAP_SPEECH_S + HOLD_MS / 1000 + 60))
        return
    kit.measure_and_write(args, {"concurrent_calls": measure})


if __name__ == "__main__":
    main()
