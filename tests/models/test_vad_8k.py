"""Silero VAD's native 8 kHz path (256-sample windows) decides like its 16 kHz path on the same speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.vad_silero import SileroVad, default_model_path
from server.audio import read_audio, resample, to_float

SHARED = Path(__file__).resolve().parents[3] / "shared"
SPEECH_8K = SHARED / "audio" / "speech" / "ldc93s1_8k.wav"

pytestmark = pytest.mark.skipif(default_model_path() is None,
                                reason="silero-vad wheel not installed (pip install --no-deps silero-vad)")


def decisions(vad: SileroVad, audio: np.ndarray, rate: int) -> np.ndarray:
    """Speech (p >= 0.5) or not, per 32 ms window of int16 `audio`."""
    stream = vad.stream(rate)
    x = to_float(audio)
    n = len(x) // stream.window
    return np.array([stream.probability(x[i * stream.window:(i + 1) * stream.window]) >= 0.5
                     for i in range(n)])


def test_8k_and_16k_agree_on_speech_windows() -> None:
    if not SPEECH_8K.is_file():
        pytest.skip(f"the shared recordings are not at {SHARED} (they sit beside the checkout)")
    audio_8k = read_audio(SPEECH_8K, rate=8000)
    vad = SileroVad()
    at_8k = decisions(vad, audio_8k, 8000)
    assert vad.stream(8000).window == 256
    at_16k = decisions(vad, resample(audio_8k, 8000, 16000), 16000)
    n = min(len(at_8k), len(at_16k))
    assert n >= 50 and abs(len(at_8k) - len(at_16k)) <= 1
    assert at_8k[:n].any() and not at_8k[:n].all()  # the file has speech and pauses
    agreement = float(np.mean(at_8k[:n] == at_16k[:n]))
    assert agreement >= 0.9, f"8 kHz and 16 kHz decisions agree on only {agreement:.0%} of windows"
