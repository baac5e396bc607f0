"""`standin demo`: a whole call with nothing but this machine. espeak-ng plays a caller leaving a message
(written to caller.wav with its timed transcript), and standin answers it through `simulate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from server import audio
from server.config import Config
from server.engines import build_engines
from server.simulate import simulate

# (seconds of silence before the line, the line)
CALLER = (
    (6.0, "Hi, this is Anna from the bakery."),
    (0.9, "I'm calling about the cake for Saturday."),
    (1.1, "Could you ask Marco to call me back this afternoon?"),
    (6.0, "Great, thanks. Bye!"),
)


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


def run_demo(config: Config, out: Path) -> dict[str, Any]:
    caller, transcript = make_caller(out, config.language)
    return simulate(caller, build_engines(config, transcript=transcript), config, out,
                    meta={"caller_file": "caller.wav"}).summary
