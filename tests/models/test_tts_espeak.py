from __future__ import annotations

import threading

import numpy as np
import pytest

from models.engines import EngineError, SpeechChunk
from models.tts_espeak import _EVENT_END, _EVENT_WORD, EspeakTts, Event, split_clauses, word_spans

try:
    next(EspeakTts().synthesize("ok", language="en"))
except EngineError as exc:
    pytest.skip(f"espeak-ng cannot be used here: {exc}", allow_module_level=True)

TTS = EspeakTts()
SILENT = 32  # int16 amplitude


def speak(text: str, language: str = "en", tts: EspeakTts = TTS) -> list[SpeechChunk]:
    return list(tts.synthesize(text, language=language))


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) if len(audio) else 0.0


def check_chunk(chunk: SpeechChunk) -> None:
    assert chunk.audio.dtype == np.int16
    assert chunk.sample_rate == 22050
    assert chunk.words
    previous_end = 0
    for word in chunk.words:
        assert previous_end <= word.start < word.end <= len(chunk.audio), word
        assert rms(chunk.audio[word.start:word.end]) > 20 * SILENT, word
        previous_end = word.end
    tail = chunk.audio[chunk.words[-1].end:]  # a sentence's end pause, or a few ms after "Mr."
    assert np.abs(tail.astype(np.int32)).max(initial=0) <= SILENT


def tokens(chunks: list[SpeechChunk]) -> list[str]:
    return [token for chunk in chunks for w in chunk.words for token in w.text.split()]


@pytest.mark.parametrize(("language", "text"), [
    ("en", "The delivery is confirmed for Tuesday, at 10:30."),
    ("en", "Call me back at 555 0199 -- it's about the 3.5% x-ray e.g. Mr. Smith's."),
    ("it", "Perché è già così tardi? Richiamo domani alle 9, grazie."),
])
def test_every_token_once_in_order_with_sounding_spans(language: str, text: str) -> None:
    chunks = speak(text, language)
    assert tokens(chunks) == text.split()
    for chunk in chunks:
        check_chunk(chunk)


def test_numbers_and_punctuation_come_back_as_written() -> None:
    [chunk] = speak("The delivery is confirmed for Tuesday, at 10:30.")
    assert [w.text for w in chunk.words] == ["The", "delivery", "is", "confirmed", "for", "Tuesday,",
                                             "at", "10:30."]
    assert len(chunk.audio) - chunk.words[-1].end > 0.2 * chunk.sample_rate  # the sentence's pause
    tuesday, at = chunk.words[5:7]
    pause = chunk.audio[tuesday.end:at.start]
    assert len(pause) > 0.05 * chunk.sample_rate  # the comma's pause is in neither word
    assert np.abs(pause.astype(np.int32)).max() <= SILENT
    inner = [(a.end, b.start) for a, b in zip(chunk.words[:5], chunk.words[1:6], strict=True)]
    assert all(end == start for end, start in inner)


def test_sentences_are_separate_chunks_with_their_own_offsets() -> None:
    text = "Hello. Is Anna there? I'll call again tomorrow; thanks: bye!"
    chunks = speak(text)
    assert [" ".join(w.text for w in c.words) for c in chunks] == split_clauses(text)
    assert len(chunks) == 5
    assert tokens(chunks) == text.split()
    for chunk in chunks:
        check_chunk(chunk)
        assert chunk.words[0].start < 0.05 * chunk.sample_rate


def test_empty_text_yields_nothing() -> None:
    assert speak("") == []
    assert speak("  \n\t ") == []


def test_word_spans_follow_the_energy() -> None:
    alone = {}
    for word in ("Monday", "morning"):
        [chunk] = speak(word)
        [span] = chunk.words
        loud = np.flatnonzero(np.abs(chunk.audio.astype(np.int32)) > SILENT)
        assert span.start <= loud[0] < span.start + 0.03 * chunk.sample_rate
        assert span.end == loud[-1] + 1
        alone[word] = span.end - span.start
    for pair in ("Monday morning", "morning Monday"):
        [chunk] = speak(pair)
        first, last = chunk.words
        assert (last.end - last.start) == pytest.approx(alone[last.text], rel=0.3)
        total = (first.end - first.start) + (last.end - last.start)
        assert total == pytest.approx(alone["Monday"] + alone["morning"], rel=0.3)


def test_voice_and_rate_options() -> None:
    slow = speak("This is a test of the rate.", tts=EspeakTts(rate=120))[0]
    fast = speak("This is a test of the rate.", tts=EspeakTts(voice="en-us", rate=300))[0]
    assert len(fast.audio) < 0.6 * len(slow.audio)
    with pytest.raises(ValueError, match="rate"):
        EspeakTts(rate=1000)


def test_unknown_language_or_voice_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match=r"no voice for 'xx-nowhere'.*espeak-ng --voices"):
        speak("Hello.", "xx-nowhere")
    with pytest.raises(EngineError, match="espeak-ng --voices"):
        speak("Hello.", tts=EspeakTts(voice="no-such-voice"))


def test_concurrent_use_matches_sequential_use() -> None:
    # espeak-ng's wave generator carries its pitch flutter and noise state from one call to the next,
    # so the same text never comes out bit-identical twice (lengths vary by whole pitch periods, up
    # to ~25 ms): compare the words and their timing.
    texts = {"en": "The delivery is confirmed for Tuesday, at 10:30. Thank you!",
             "it": "La consegna è confermata per martedì, alle 10:30. Grazie!"}
    sequential = {lang: speak(text, lang) for lang, text in texts.items()}
    results: dict[str, list[list[SpeechChunk]]] = {lang: [] for lang in texts}
    errors: list[BaseException] = []

    def work(lang: str) -> None:
        try:
            for _ in range(5):
                results[lang].append(speak(texts[lang], lang))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(lang,)) for lang in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    tolerance = 0.05 * 22050
    for lang, runs in results.items():
        assert len(runs) == 5
        for chunks in runs:
            assert len(chunks) == len(sequential[lang])
            for got, want in zip(chunks, sequential[lang], strict=True):
                assert abs(len(got.audio) - len(want.audio)) < tolerance
                assert [w.text for w in got.words] == [w.text for w in want.words]
                for a, b in zip(got.words, want.words, strict=True):
                    assert abs(a.start - b.start) < tolerance and abs(a.end - b.end) < tolerance


# --------------------------------------------------------------------------- pure helpers


def test_split_clauses() -> None:
    assert split_clauses("At 10:30. OK? Fine! Yes; no: maybe") == [
        "At 10:30.", "OK?", "Fine!", "Yes;", "no:", "maybe"]
    assert split_clauses('He said "hi." Then left') == ['He said "hi."', "Then left"]
    assert split_clauses("... Hello. ?! Bye") == ["... Hello. ?!", "Bye"]
    assert split_clauses("3.5 is 10:30") == ["3.5 is 10:30"]


def test_word_spans_merge_tokens_without_their_own_event() -> None:
    text = "— Hi 10:30 & x-ray you"
    audio = np.zeros(1000, np.int16)
    audio[100:900] = 1000
    events = [
        Event(_EVENT_WORD, 3, 100),  # Hi (the dash before it has no event)
        Event(_EVENT_WORD, 6, 300),  # 10
        Event(_EVENT_WORD, 9, 350),  # 30, inside the same token
        Event(_EVENT_WORD, 12, 350),  # & at the same sample as 10:30
        Event(_EVENT_WORD, 19, 600),  # the space before "you"
        Event(_EVENT_END, 23, 1000),
        Event(_EVENT_WORD, 0, 1000),  # espeak-ng's stray word at the clause end
    ]
    spans = word_spans(text, audio, events)
    assert [(s.text, s.start, s.end) for s in spans] == [
        ("— Hi", 100, 300), ("10:30 & x-ray", 300, 600), ("you", 600, 900)]
