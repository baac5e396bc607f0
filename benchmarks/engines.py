"""What each engine costs outside its model, per call, on this CPU; and the judges' accuracy.

    python benchmarks/engines.py [--judge-model FILE.gguf] [--json results.json]

Each engine runs on a tiny random model built here (the same builders the tests use), with its model
call timed separately; the wrapper's cost is the rest: audio conversion, prompt building, hallucination
filtering, phonemizing and word mapping, and the runtime's resampling and trimming of TTS audio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from models.engines import CallContext, Line, SpeechChunk, WordSpan  # noqa: E402
from server.runtime import prepare_speech  # noqa: E402

RUNS = 50


class Timed:
    """Wraps a model call and adds up the seconds spent inside it."""

    def __init__(self, fn: Callable[..., Any], drain: bool = False) -> None:
        self.fn, self.drain, self.seconds = fn, drain, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = self.fn(*args, **kwargs)
        if self.drain:  # faster-whisper decodes while its segments are iterated
            segments, info = result
            result = (iter(list(segments)), info)
        self.seconds += time.perf_counter() - start
        return result


def overhead(call: Callable[[], Any], timed: Timed | None) -> float:
    """Median milliseconds per call spent outside the model."""
    call()  # warm
    costs = []
    for _ in range(RUNS):
        inside = timed.seconds if timed else 0.0
        start = time.perf_counter()
        call()
        total = time.perf_counter() - start
        costs.append(total - ((timed.seconds - inside) if timed else 0.0))
    return round(statistics.median(costs) * 1000, 3)


def whisper(work: Path) -> float:
    from models.stt_whisper import WhisperStt

    subprocess.run([sys.executable, str(ROOT / "tests" / "models" / "test_stt_whisper.py"), str(work)],
                   check=True, capture_output=True, env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                                                         "PATH": "/usr/bin:/bin"})
    stt = WhisperStt(work / "ct2")
    timed = Timed(stt.model.transcribe, drain=True)
    stt.model.transcribe = timed
    fragment = np.random.default_rng(0).normal(0, 0.05, 32000).astype(np.float32)  # 2 s
    return overhead(lambda: stt.transcribe(fragment, start_s=0.0, language="en",
                                           hints=["Marco Rossi", "Vodafone"]), timed)


def piper(work: Path) -> float:
    from models.tts_piper import PiperOptions, PiperTts
    from tests.models.test_tts_piper import write_voice  # the tests' piper-shaped voice

    tts = PiperTts(PiperOptions(voices={"en": write_voice(work, "en")}))
    voice = tts._voice("en")
    timed = Timed(voice._voice.phoneme_ids_to_audio)
    voice._voice.phoneme_ids_to_audio = timed  # type: ignore[method-assign]
    text = "The delivery is confirmed for Tuesday, at 10:30, and the driver will call first."
    return overhead(lambda: list(tts.synthesize(text, language="en")), timed)


def espeak() -> float:
    import models.tts_espeak as espeak_module
    from models.tts_espeak import EspeakTts

    library = espeak_module._library()
    timed = Timed(library.synth)
    library.synth = timed  # type: ignore[method-assign]
    tts = EspeakTts()
    text = "The delivery is confirmed for Tuesday, at 10:30, and the driver will call first."
    return overhead(lambda: list(tts.synthesize(text, language="en")), timed)


def replies_prompt() -> float:
    from models.prompts import MarkerFilter, build_messages

    story = [Line("bot" if i % 2 else "caller", f"line number {i} of the call, with some words in it.")
             for i in range(12)]
    context = CallContext(language="en", caller_number="+39 333 000 0000", owner_name="Marco")
    reply = "Of course, I will tell him you called about the order, and he will call you back. [END_CALL]"

    def once() -> None:
        build_messages(story, context)
        f = MarkerFilter()
        for i in range(0, len(reply), 4):
            f.feed(reply[i:i + 4])
        f.flush()

    return overhead(once, None)


def runtime_tts() -> float:
    rate = 22050
    audio = (np.sin(np.arange(2 * rate) * 0.05) * 8000).astype(np.int16)
    words = tuple(WordSpan(f"w{i}", i * 4000, i * 4000 + 3500) for i in range(10))
    chunk = SpeechChunk(audio, rate, words)
    return overhead(lambda: prepare_speech(chunk, 16000, trim_level=40), None)


def judge_accuracy(model: Path | None) -> dict[str, Any]:
    from models.judge_rules import RulesJudge

    rows = [line.split("\t") for line in (SHARED / "turns" / "dev.tsv").read_text().splitlines()[1:]]
    judges: dict[str, Any] = {"rules": RulesJudge()}
    if model is not None:
        from models.judge_llm import make_judge

        judges["llm"] = make_judge(model)
    out: dict[str, Any] = {}
    for name, judge in judges.items():
        right = sum(
            (judge.judge([Line("caller", text)], language=lang).p_complete >= 0.5) == (label == "COMPLETE")
            for label, lang, text in rows)
        out[name] = {"accuracy": round(right / len(rows), 3), "lines": len(rows)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge-model", type=Path, help="a GGUF to measure the LLM judge's accuracy with")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "whisper").mkdir()
        (work / "piper").mkdir()
        results = {
            "overhead_ms": {
                "stt_whisper": whisper(work / "whisper"),
                "tts_piper": piper(work / "piper"),
                "tts_espeak": espeak(),
                "llm_prompt_and_marker": replies_prompt(),
                "runtime_tts_resample_trim_words": runtime_tts(),
            },
            "judge_dev_tsv": judge_accuracy(args.judge_model),
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
