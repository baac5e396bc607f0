"""`standin demo`: a whole call with nothing but this machine. espeak-ng plays a caller leaving a message
(written to caller.wav, with its timed transcript beside it), and standin answers it through `simulate`.

The call runs on the best models present: the configuration given, else `config/starter.toml` (the
starter set, chosen by measurement for a 2-core box). A role whose model file is missing falls back to
the next model present for it, then to its stand-in (the timed transcript for ears, the rules judge,
scripted replies, espeak), and the demo says which ran. `stand_ins=True` runs the stand-ins alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server import audio
from server.config import Config, load
from server.engines import build_engines, models_dir
from server.simulate import simulate

STARTER_CONFIG = Path(__file__).resolve().parents[1] / "config" / "starter.toml"

# (seconds of silence before the line, the line)
CALLER = (
    (6.0, "Hi, this is Anna from the bakery."),
    (0.9, "I'm calling about the cake for Saturday."),
    (1.1, "Could you ask Marco to call me back this afternoon?"),
    (6.0, "Great, thanks. Bye!"),
)

# Other model files that can stand in for a role's configured one, best first (paths in the models dir).
WHISPER = ("whisper/tiny.en", "whisper/base", "whisper/small", "whisper/large-v3-turbo")
GGUF = ("llm/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "llm/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        "llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
PIPER = ("piper/en_US-joe-medium.onnx", "piper/en_US-lessac-medium.onnx")
STAND_INS = {"stt": {"engine": "transcript"}, "judge": {"engine": "rules"}, "llm": {"engine": "script"},
             "tts": {"engine": "espeak"}}


@dataclass(frozen=True, slots=True)
class Choice:
    role: str
    engine: str
    model: str  # a path in the models dir, "" for an engine without one
    note: str = ""  # why it is not the configured one


def make_caller(folder: Path, language: str = "en") -> tuple[np.ndarray, Path]:
    from models.tts_espeak import EspeakTts

    tts = EspeakTts(voice="en+f3")
    track: list[np.ndarray] = []
    rows = ["start_s\tend_s\tlabel\ttext"]
    t = 0.0
    for pause, line in CALLER:
        track.append(np.zeros(int(pause * audio.CALL_RATE), np.int16))
        t += pause
        speech = np.concatenate([audio.resample(c.audio, c.sample_rate, audio.CALL_RATE)
                                 for c in tts.synthesize(line, language=language)])
        track.append(speech)
        rows.append(f"{t:.3f}\t{t + len(speech) / audio.CALL_RATE:.3f}\tCOMPLETE\t{line}")
        t += len(speech) / audio.CALL_RATE
    track.append(np.zeros(audio.CALL_RATE, np.int16))
    caller = np.concatenate(track)
    folder.mkdir(parents=True, exist_ok=True)
    import soundfile

    soundfile.write(folder / "caller.wav", caller, audio.CALL_RATE, subtype="PCM_16")
    transcript = folder / "caller.tsv"
    transcript.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return caller, transcript


def demo_config(config_path: Path | None, *, stand_ins: bool = False) -> tuple[Config, list[Choice]]:
    """The configuration the demo runs on, and what serves each role."""
    if stand_ins:
        config = load(config_path, {k: dict(v) for k, v in STAND_INS.items()})
        return config, [Choice(role, values["engine"], "") for role, values in STAND_INS.items()]
    config = load(config_path if config_path is not None else STARTER_CONFIG)
    folder = models_dir(config)
    overrides: dict[str, dict[str, Any]] = {}
    choices: list[Choice] = []
    for role, engine, key, configured, candidates in _roles(config):
        if not configured:
            choices.append(Choice(role, engine, ""))
            continue
        present = [m for m in dict.fromkeys((configured, *candidates)) if (folder / m).exists()]
        if present and present[0] == configured:
            choices.append(Choice(role, engine, configured))
        elif present:
            overrides.setdefault(role, {})[key] = present[0]
            choices.append(Choice(role, engine, present[0], f"{configured} is not in {folder}"))
        else:
            overrides[role] = dict(STAND_INS[role])
            choices.append(Choice(role, STAND_INS[role]["engine"], "", f"{configured} is not in {folder}"))
    if config.judge.engine == "llm" and not config.judge.model and "llm" in overrides:
        overrides.setdefault("judge", {}).update(overrides["llm"])  # the judge followed [llm] model
    if not overrides:
        return config, choices
    return load(config_path if config_path is not None else STARTER_CONFIG, overrides), choices


def _roles(config: Config) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """(role, engine, config key of its model, the configured model, fallbacks) for each role that
    loads a file from the models dir."""
    whisper = WHISPER if config.language == "en" else tuple(m for m in WHISPER if not m.endswith(".en"))
    rows: list[tuple[str, str, str, str, tuple[str, ...]]] = []
    rows.append(("stt", config.stt.engine, "model",
                 config.stt.model if config.stt.engine == "whisper" else "", whisper))
    judge_model = config.judge.model or config.llm.model
    rows.append(("judge", config.judge.engine, "model", judge_model if config.judge.engine == "llm" else "",
                 GGUF))
    llm_model = config.llm.model if config.llm.engine == "llama_cpp" else ""
    rows.append(("llm", config.llm.engine, "model", llm_model, GGUF))
    rows.append(("tts", config.tts.engine, "voice", config.tts.voice if config.tts.engine == "piper" else "",
                 PIPER if config.language == "en" else ()))
    return rows


def run_demo(config: Config, out: Path) -> dict[str, Any]:
    caller, transcript = make_caller(out, config.language)
    engines = build_engines(config, transcript=transcript)
    from server.engines import warm_up

    warm_up(engines)
    return simulate(caller, engines, config, out, meta={"caller_file": "caller.wav"}).summary


def turn_latencies(summary: dict[str, Any]) -> list[dict[str, float | None]]:
    """Each reply's voice-to-voice time and stage latencies, as the database stores them."""
    from server.callrecord import rows as call_rows
    from server.store.schema import TurnLatency

    result = []
    for row in call_rows(0, summary):
        if isinstance(row, TurnLatency):
            assert row.first_audio_s is not None  # rows() sets it to the reply's start
            result.append({"voice_to_voice_ms": (row.first_audio_s - row.caller_end_s) * 1000,
                           "stt_ms": row.stt_ms, "judge_ms": row.judge_ms,
                           "llm_first_token_ms": row.llm_first_token_ms,
                           "llm_first_clause_ms": row.llm_first_clause_ms,
                           "tts_first_audio_ms": row.tts_first_audio_ms})
    return result
