"""The real starter models on this machine's CPU: what each stage costs, and what a call feels like.

    python benchmarks/real_cpu.py [--shared ../shared] [--models DIR] [--json benchmarks/real_cpu.json]
                                  [--only stages,calls,wer,judge,barge_in,memory]

1. stages: whisper tiny.en and base per 2 s fragment; the judge's verdict with its prompt prefix cached;
   each reply model's first token and first clause with the prefix cached; piper's first audio of a clause.
2. calls: voice-to-voice over the shared scenarios with config/starter.toml, whisper hearing the audio (no
   transcript): the caller's last word to the bot's first audio, for every reply and for the answer
   after each scenario's finished last turn; median and p90.
3. wer: word error rate of both whispers on the transcribed clips in ../shared/audio/speech.
4. judge: the starter judge's accuracy and ROC AUC on the labelled lines (tests/data/turns, and
   ../shared/turns/dev.tsv held out), with and without punctuation.
5. barge_in: truncation fidelity with piper's word spans (words in the story = words whose audio played).
6. memory: resident memory of one `standin serve` with the starter set loaded and warmed up.

Every figure comes from one run on one machine; medians, with p90 where a tail matters.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.engines import CallContext, Line, ReplyDelta  # noqa: E402
from server.audio import read_audio, to_float  # noqa: E402
from server.config import Config, load  # noqa: E402

STARTER = ROOT / "config" / "starter.toml"
SPEECH = {  # the clips ../shared/audio/MANIFEST.md gives words for
    "jfk.wav": "And so my fellow Americans, ask not what your country can do for you, ask what you can do "
               "for your country.",
    "ldc93s1_8k.wav": "She had your dark suit in greasy wash water all year.",
    "quilter.wav": "Mr. Quilter is the apostle of the middle classes and we are glad to welcome his gospel.",
    "spk1_snt1.wav": "THE CHILD ALMOST HURT THE SMALL DOG",
    "spk1_snt2.wav": "DROP THE TUE WHEN YOU ADD THE FIGURES",
}
STORY = (Line("caller", "Hi, this is Anna from the bakery."),
         Line("bot", "Hello Anna, how can I help?"),
         Line("caller", "I'm calling about the cake for Saturday. Could you ask Marco to call me back?"))
GGUFS = ("llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "llm/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def summary(values: Sequence[float]) -> dict[str, float]:
    v = sorted(values)
    return {"median": round(statistics.median(v), 1), "p90": round(v[min(len(v) - 1, int(0.9 * len(v)))], 1),
            "n": len(v)}


def starter(models: Path, **tables: dict[str, Any]) -> Config:
    merged: dict[str, dict[str, Any]] = {"models": {"dir": str(models)}}
    for name, values in tables.items():
        merged.setdefault(name, {}).update(values)
    return load(STARTER, merged)


# --------------------------------------------------------------------------- 1. stages


def fragments(shared: Path, seconds: float = 2.0) -> list[np.ndarray]:
    """2 s pieces of real speech at 16 kHz."""
    pieces = []
    n = int(seconds * 16000)
    for name in SPEECH:
        x = to_float(read_audio(shared / "audio" / "speech" / name))
        pieces += [x[i:i + n] for i in range(0, len(x) - n + 1, n)]
    return pieces


def stt_stage(models: Path, shared: Path, threads: int) -> dict[str, Any]:
    """Each whisper on the 2 s fragments, in its own short window (the default) and, side by side in the
    same loop, in Whisper's fixed 30 s one."""
    from models.stt_whisper import WhisperOptions, WhisperStt

    out = {}
    pieces = fragments(shared)
    for size in ("tiny.en", "base"):
        stts = {"window": WhisperStt(models / "whisper" / size, WhisperOptions(cpu_threads=threads)),
                "30 s": WhisperStt(models / "whisper" / size, WhisperOptions(cpu_threads=threads,
                                                                              min_window_s=None))}
        times: dict[str, list[float]] = {name: [] for name in stts}
        for stt in stts.values():
            stt.transcribe(pieces[0], start_s=0.0, language="en")
        for piece in pieces:
            for name, stt in stts.items():
                t0 = time.perf_counter()
                stt.transcribe(piece, start_s=0.0, language="en")
                times[name].append(ms_since(t0))
        out[size] = summary(times["window"])
        out[f"{size}, 30 s window"] = summary(times["30 s"])
    return out


def judge_stage(config: Config, shared: Path) -> dict[str, Any]:
    from server.engines import build_judge

    judge = build_judge(config)
    getattr(judge, "warm_up", lambda: None)()
    lines = [row[2] for row in _tsv(shared / "turns" / "dev.tsv") if row[1] == "en"]
    times = []
    for text in lines:
        t0 = time.perf_counter()
        judge.judge((Line("caller", text),), language="en")
        times.append(ms_since(t0))
    return summary(times)


def reply_stage(models: Path, threads: int) -> dict[str, Any]:
    from models.llama import LlamaOptions, load_llama
    from models.llm_llamacpp import LlamaCppReplies, LlamaCppRepliesOptions

    out = {}
    context = CallContext(language="en", owner_name="Marco")
    for gguf in GGUFS:
        model = load_llama(models / gguf, LlamaOptions(n_threads=threads))
        replies = LlamaCppReplies(model, LlamaCppRepliesOptions(max_tokens=60, temperature=0.0))
        getattr(replies, "warm_up", lambda: None)()
        first_token, first_clause, texts = [], [], []
        for k in range(5):
            story = (*STORY[:-1], Line("caller", STORY[-1].text + " " + ("Thanks." if k % 2 else "")))
            t0 = time.perf_counter()
            text, token_ms, clause_ms = "", None, None
            for event in replies.reply(story, context):
                if isinstance(event, ReplyDelta):
                    token_ms = token_ms if token_ms is not None else ms_since(t0)
                    text += event.text
                    if clause_ms is None and re.search(r"[.,!?;:]\s*$", text.strip()[-1:] or ""):
                        clause_ms = ms_since(t0)
            first_token.append(token_ms or 0.0)
            first_clause.append(clause_ms if clause_ms is not None else ms_since(t0))
            texts.append(text.strip())
        out[Path(gguf).name] = {"first_token_ms": summary(first_token),
                                "first_clause_ms": summary(first_clause), "sample_reply": texts[0]}
    return out


def tts_stage(models: Path) -> dict[str, Any]:
    from models.tts_piper import PiperOptions, PiperTts

    tts = PiperTts(PiperOptions(voices={"en": models / "piper" / "en_US-joe-medium.onnx"}))
    clauses = ["Hello Anna,", "I will ask Marco to call you back this afternoon.", "Thank you, goodbye.",
               "Could you tell me your number?", "Of course."]
    next(iter(tts.synthesize("Warm up.", language="en")))
    times = []
    for _ in range(3):
        for clause in clauses:
            t0 = time.perf_counter()
            next(iter(tts.synthesize(clause, language="en")))
            times.append(ms_since(t0))
    return summary(times)


# --------------------------------------------------------------------------- 2. calls


def calls(models: Path, shared: Path, reply_model: str = "") -> dict[str, Any]:
    from models.stt_transcript import read_transcript
    from server.demo import turn_latencies
    from server.engines import build_engines, warm_up
    from server.simulate import simulate

    llm = {"model": reply_model} if reply_model else {}
    config = starter(models, call={"greeting": "Hello, Marco's phone, how can I help?"}, llm=llm)
    engines = build_engines(config)
    warm_up(engines)
    every, final, rows = [], [], []
    for scenario in json.loads((shared / "scenarios" / "scenarios.json").read_text()):
        name = scenario["name"]
        wav, tsv = shared / "scenarios" / f"{name}.wav", shared / "scenarios" / f"{name}.tsv"
        end = read_transcript(tsv)[-1].end_s
        with tempfile.TemporaryDirectory() as out:
            result = simulate(read_audio(wav), engines, config, Path(out))
            latencies = turn_latencies(result.summary)
        answers = [b["start_s"] for b in result.summary["bot_turns"]
                   if b["kind"] == "reply" and b["start_s"] and b["start_s"] >= end]
        every += [r["voice_to_voice_ms"] for r in latencies if r["voice_to_voice_ms"] is not None]
        if answers:
            final.append((answers[0] - end) * 1000)
        rows.append({"scenario": name, "ended": result.summary["ended"],
                     "heard": [f["text"] for f in result.summary["caller_fragments"]],
                     "after_last_turn_ms": round((answers[0] - end) * 1000) if answers else None,
                     "replies": latencies})
    return {"every_reply_ms": summary(every) if every else None,
            "after_finished_turn_ms": summary(final) if final else None, "scenarios": rows}


# --------------------------------------------------------------------------- 3. wer


def wer(models: Path, shared: Path, threads: int) -> dict[str, Any]:
    from models.stt_whisper import WhisperOptions, WhisperStt
    from tests.models.whisper_material import edit_distance, words

    out: dict[str, Any] = {}
    for size in ("tiny.en", "base"):
        stt = WhisperStt(models / "whisper" / size, WhisperOptions(cpu_threads=threads))
        errors = total = 0
        heard = {}
        for name, truth in SPEECH.items():
            x = to_float(read_audio(shared / "audio" / "speech" / name))
            text = stt.transcribe(x, start_s=0.0, language="en").text
            heard[name] = text
            errors += edit_distance(words(truth), words(text))
            total += len(words(truth))  # the word error rate the whisper tests bound, summed over clips
        out[size] = {"wer": round(errors / total, 3), "words": total, "heard": heard}
    return out


# --------------------------------------------------------------------------- 4. judge


def _tsv(path: Path) -> list[list[str]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows[1:] if len(r) >= 3]


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else float("nan")


def judge_quality(config: Config, shared: Path) -> dict[str, Any]:
    from models.judge_cases import load_cases, unpunctuated
    from server.engines import build_judge

    judge = build_judge(config)
    getattr(judge, "warm_up", lambda: None)()
    sets = {"dev.tsv (held out)": load_cases(shared / "turns" / "dev.tsv")}
    for path in sorted((ROOT / "tests" / "data" / "turns").glob("*.tsv")):
        sets[path.name] = load_cases(path)
    out: dict[str, Any] = {}
    for name, cases in sets.items():
        for punctuated in (True, False):
            scores, labels = [], []
            for case in cases:
                line = case.text if punctuated else unpunctuated(case.text)
                story = (*case.context, Line("caller", line))
                scores.append(judge.judge(story, language=case.language).p_complete)
                labels.append(case.label == "COMPLETE")
            right = sum((s >= config.turns.threshold) == y for s, y in zip(scores, labels, strict=True))
            out[f"{name}, {'punctuated' if punctuated else 'bare'}"] = {
                "lines": len(cases), "accuracy": round(right / len(cases), 3),
                "auc": round(auc(scores, labels), 3)}
    return out


# --------------------------------------------------------------------------- 5. barge-in


def barge_in(models: Path, shared: Path) -> dict[str, Any]:
    from benchmarks.call_brain import barge_in as measure

    return measure(shared, trials=12, tts={"engine": "piper",
                                           "voice": str(models / "piper" / "en_US-joe-medium.onnx")})


# --------------------------------------------------------------------------- 6. memory


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory(models: Path, timeout_s: float = 300.0) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "serve.toml"
        web = free_port()
        text = STARTER.read_text(encoding="utf-8").replace("[models]\n", f'[models]\ndir = "{models}"\n', 1)
        text += (f'\n[storage]\ncalls_dir = "{work}/calls"\ndatabase = "sqlite:///{work}/standin.db"\n'
                 f'\n[web]\nlisten = "127.0.0.1:{web}"\npassword_file = "{work}/pw"\n'
                 f'secret_file = "{work}/secret"\n'
                 f'\n[sip]\nlisten = "127.0.0.1:{free_port(socket.SOCK_DGRAM)}"\ntransports = ["udp"]\n'
                 f'rtp_port_start = {free_port(socket.SOCK_DGRAM) // 2 * 2}\nrtp_port_count = 4\n')
        config.write_text(text, encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--config", str(config)],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < timeout_s and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/health", timeout=2):
                        break
                except (urllib.error.URLError, OSError):
                    time.sleep(0.5)
            else:
                return {"error": f"standin serve did not come up (exit code {proc.poll()})"}
            started = time.monotonic() - t0
            time.sleep(2.0)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            kb = {k: int(v) for k, v in re.findall(r"(VmRSS|VmHWM):\s+(\d+)", status)}
            return {"rss_mb": round(kb["VmRSS"] / 1024, 1), "peak_rss_mb": round(kb["VmHWM"] / 1024, 1),
                    "ready_after_s": round(started, 1)}
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "real_cpu.json")
    parser.add_argument("--only", default="stages,calls,wer,judge,barge_in,memory")
    args = parser.parse_args()
    from models.manager import default_models_dir

    models = args.models or default_models_dir()
    parts = args.only.split(",")
    config = starter(models)
    results: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    steps: dict[str, Callable[[], Any]] = {
        "stages": lambda: {"stt_per_2s_fragment_ms": stt_stage(models, args.shared, args.threads),
                           "judge_verdict_ms": judge_stage(config, args.shared),
                           "reply": reply_stage(models, args.threads),
                           "tts_first_audio_ms": tts_stage(models)},
        "calls": lambda: calls(models, args.shared),
        "calls_0.5b": lambda: calls(models, args.shared, "llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        "wer": lambda: wer(models, args.shared, args.threads),
        "judge": lambda: judge_quality(config, args.shared),
        "barge_in": lambda: barge_in(models, args.shared),
        "memory": lambda: memory(models),
    }
    results["machine"] = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    for name in parts:
        t0 = time.monotonic()
        print(f"{name}...", file=sys.stderr, flush=True)
        results[name] = steps[name]()
        print(f"{name}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "calls"}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
