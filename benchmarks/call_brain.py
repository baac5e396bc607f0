"""Benchmarks of the call brain: answer latency, barge-in reaction, and the cost of the real-time path.

    python benchmarks/call_brain.py [--shared ../shared] [--json results.json]

1. Voice-to-voice on the shared scenarios under the reference latency profile (STT 150, judge 20, LLM
   150, TTS 80 ms): from the end of the caller's last phrase (the scenario's timing) to the first bot
   sample on the line; standin against a naive pipeline (500 ms of silence, then transcribe -> judge ->
   reply -> speak, one after the other) in the same run.
2. Barge-in: recorded speech cuts into a spoken reply at many points; caller speech start -> fade start,
   and whether the words in the story are exactly the words whose audio played.
3. The real-time path (VAD, resampling, core, runtime, playout, recording) on minutes of audio: CPU time
   of the thread that runs it per second of call, and the memory a call allocates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from models.engines import Line
from models.judge_rules import RulesJudge
from models.stt_transcript import read_transcript
from models.vad_silero import SileroVad
from server.audio import read_audio, resample, to_float
from server.config import Config, load
from server.engines import build_engines
from server.simulate import simulate

REFERENCE = {"stt": 150, "judge": 20, "llm": 150, "tts": 80}
NAIVE = {  # the same engines, used the obvious way
    "turns": {"speculate_ms": 500, "question_shortcut": False, "draft_while_judging": False,
              "min_gap_ms": 0, "unsure_gap_ms": 0},
}
REPLY = ("The parcel is confirmed for Tuesday, at ten in the morning, and the driver will call you about "
         "twenty minutes before arriving at your door.")


def config(**tables: dict[str, Any]) -> Config:
    merged: dict[str, dict[str, Any]] = {"call": {"greeting": ""}}
    for name, values in tables.items():
        merged.setdefault(name, {}).update(values)
    return load(None, merged)


def voice_to_voice(shared: Path) -> dict[str, Any]:
    rows = []
    for scenario in json.loads((shared / "scenarios" / "scenarios.json").read_text()):
        name = scenario["name"]
        wav, tsv = shared / "scenarios" / f"{name}.wav", shared / "scenarios" / f"{name}.tsv"
        caller = read_audio(wav)
        end = read_transcript(tsv)[-1].end_s
        row: dict[str, Any] = {"scenario": name}
        for label, extra in (("standin", {}), ("naive", NAIVE)):
            cfg = config(simulate={"latency_ms": REFERENCE}, **extra)
            with tempfile.TemporaryDirectory() as out:
                summary = simulate(caller, build_engines(cfg, transcript=tsv), cfg, Path(out)).summary
            answers = [b["start_s"] for b in summary["bot_turns"] if b["start_s"] and b["start_s"] >= end]
            row[label] = round(answers[0] - end, 3) if answers else None
        rows.append(row)
    ours = [r["standin"] for r in rows if r["standin"] is not None]
    naive = [r["naive"] for r in rows if r["naive"] is not None]
    return {"rows": rows, "median_s": statistics.median(ours), "naive_median_s": statistics.median(naive),
            "ratio": round(statistics.median(ours) / statistics.median(naive), 3)}


def espeak(text: str) -> np.ndarray:
    from models.tts_espeak import EspeakTts

    return np.concatenate([resample(c.audio, c.sample_rate, 16000)
                           for c in EspeakTts().synthesize(text, language="en")])


def speech_start(clip: np.ndarray) -> float:
    stream = SileroVad().stream(16000)
    x = to_float(clip)
    return next(i / 16000 for i in range(0, len(x) - 511, 512) if stream.probability(x[i:i + 512]) >= 0.5)


def barge_in(shared: Path, trials: int = 12, tts: dict[str, Any] | None = None) -> dict[str, Any]:
    """`tts`: the [tts] table to speak the reply with (default: espeak-ng)."""
    question = espeak("When will the parcel arrive?")
    speech = shared / "audio" / "speech"
    clips = [read_audio(speech / f) for f in ("spk1_snt1.wav", "spk1_snt2.wav", "quilter.wav")]
    q_end = 0.5 + len(question) / 16000
    reactions, exact = [], 0
    cfg = config(llm={"replies": [REPLY, "Understood."]}, simulate={"latency_ms": REFERENCE}, tts=tts or {})
    for k in range(trials):
        clip = clips[k % len(clips)]
        cut_in = q_end + 1.0 + 4.0 * k / trials  # spread over the reply
        caller = np.zeros(int((cut_in + len(clip) / 16000 + 8) * 16000), np.int16)
        caller[int(0.5 * 16000):int(0.5 * 16000) + len(question)] += question
        caller[int(cut_in * 16000):int(cut_in * 16000) + len(clip)] += clip
        onset = cut_in + speech_start(clip)
        with tempfile.TemporaryDirectory() as out:
            tsv = Path(out) / "t.tsv"
            tsv.write_text(f"start_s\tend_s\tlabel\ttext\n0.5\t{q_end:.3f}\tCOMPLETE\tWhen will it arrive?\n"
                           f"{cut_in:.3f}\t{cut_in + len(clip) / 16000:.3f}\tCOMPLETE\tNo, the other one.\n")
            summary = simulate(caller, build_engines(cfg, transcript=tsv), cfg, Path(out) / "c").summary
            bot, _ = soundfile.read(Path(out) / "c" / "call.wav", dtype="int16")
        reply = next(b for b in summary["bot_turns"] if b["kind"] == "reply")
        if not summary["barge_ins"]:
            continue
        b = summary["barge_ins"][0]
        reactions.append(b["fade_start_s"] - onset)
        # The words whose audio went out before the fade, read back from the recording.
        right = bot[:, 1].astype(np.float64)
        played = [w for w in reply["words"]
                  if np.sqrt(np.mean(right[int(w["start_s"] * 16000):int(w["end_s"] * 16000)] ** 2)) > 300]
        exact += " ".join(w["text"] for w in played) == reply["text_heard"]
    return {"trials": len(reactions), "median_s": round(statistics.median(reactions), 3),
            "max_s": round(max(reactions), 3), "truncation_fidelity": exact / len(reactions)}


def realtime_path(shared: Path) -> dict[str, Any]:
    caller = read_audio(shared / "audio" / "speech" / "voxconverse_8k.wav")  # 169 s, several speakers
    tsv_rows = "start_s\tend_s\tlabel\ttext\n" + "".join(
        f"{t:.1f}\t{t + 2:.1f}\tCOMPLETE\tsome words here\n" for t in range(0, len(caller) // 16000, 3))
    with tempfile.TemporaryDirectory() as out:
        tsv = Path(out) / "t.tsv"
        tsv.write_text(tsv_rows)
        cfg = config(call={"max_duration_s": 600.0})
        engines = build_engines(cfg, transcript=tsv)
        tracemalloc.start()
        cpu = {}

        def run() -> None:
            start = time.thread_time()
            simulate(caller, engines, cfg, Path(out) / "c")
            cpu["s"] = time.thread_time() - start

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        call_s = json.loads((Path(out) / "c" / "summary.json").read_text())["duration_s"]
    return {"call_s": call_s, "cpu_s": round(cpu["s"], 3), "cpu_percent": round(100 * cpu["s"] / call_s, 3),
            "peak_mb": round(peak / 2**20, 1)}


def judge_cost() -> dict[str, Any]:
    judge = RulesJudge()
    story = [Line("caller", "I need three things."), Line("caller", "The quote."),
             Line("caller", "And my number is three three three, four five six.")]
    times = []
    for _ in range(2000):
        start = time.perf_counter()
        judge.judge(story, language="en")
        times.append(time.perf_counter() - start)
    return {"median_us": round(statistics.median(times) * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = {"voice_to_voice": voice_to_voice(args.shared), "barge_in": barge_in(args.shared),
               "realtime_path": realtime_path(args.shared), "rules_judge": judge_cost()}
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
