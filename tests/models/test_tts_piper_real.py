"""PiperTts on a real voice (piper's en_US joe, from the test set): the model's own per-phoneme durations
add up to exactly the audio it made, so every word span it gives is where that word is spoken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.tts_piper import PiperOptions, PiperTts
from tests.real_models import JOE, real_model

pytest.importorskip("piper", reason="piper-tts is not installed")

TEXTS = ("Hello, you have reached Marco's phone.",
         "The delivery is confirmed for Tuesday, at 10:30, and the driver will call you first.",
         "Could you spell your surname for me?")


@pytest.fixture(scope="module")
def tts() -> PiperTts:
    return PiperTts(PiperOptions(voices={"en": real_model(JOE)}))


@pytest.mark.parametrize("text", TEXTS)
def test_joes_durations_sum_to_its_audio_and_spans_hold_words(tts: PiperTts, text: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    per_clause: list[tuple[int, int]] = []  # (sum of the model's id durations, audio samples)
    loaded = tts._voice("en")
    assert loaded.aligned, "joe exposes its phoneme durations"
    voice = loaded._voice  # the piper voice behind the clause speaker
    real = voice.phoneme_ids_to_audio

    def watched(*args: Any, **kwargs: Any) -> Any:
        audio, id_samples = real(*args, **kwargs)
        assert id_samples is not None
        per_clause.append((int(np.sum(id_samples)), int(np.asarray(audio).size)))
        return audio, id_samples

    monkeypatch.setattr(voice, "phoneme_ids_to_audio", watched)
    chunks = list(tts.synthesize(text, language="en"))
    assert per_clause and all(total == samples for total, samples in per_clause), per_clause
    assert " ".join(w.text for c in chunks for w in c.words) == text
    for chunk in chunks:
        x = chunk.audio.astype(np.float64)
        previous = 0
        for w in chunk.words:
            assert previous <= w.start < w.end <= len(chunk.audio), (w, len(chunk.audio))
            previous = w.end
            # each span holds speech: its loudest 10 ms well above the clause's quiet floor
            frames = x[w.start:w.end][: (w.end - w.start) // 220 * 220].reshape(-1, 220)
            assert np.sqrt((frames ** 2).mean(axis=1)).max() > 1000, w


def test_a_language_without_a_piper_voice_is_spoken_by_espeak(tmp_path: Path) -> None:
    from models.tts_espeak import EspeakTts
    from models.tts_languages import ByLanguage
    from server.config import load
    from server.engines import build_tts

    config = load(None, {"tts": {"engine": "piper", "voice": str(real_model(JOE))}})
    tts = build_tts(config)
    assert isinstance(tts, ByLanguage)
    assert type(tts.engine_for("en")).__name__ == "PiperTts"
    assert isinstance(tts.engine_for("it"), EspeakTts)
    chunks = list(tts.synthesize("Grazie, arrivederci.", language="it"))
    assert " ".join(w.text for c in chunks for w in c.words) == "Grazie, arrivederci."
    assert sum(len(c.audio) for c in chunks) > 0.3 * chunks[0].sample_rate
