"""PiperTts on tiny piper-shaped ONNX voices made at test time (no downloads).

The voice's model has piper's signature (inputs `input`, `input_lengths`, `scales`, optionally `sid`;
output audio [1, 1, samples]) and, like a real VITS export, a `Ceil` node computing frames per phoneme
id, which piper marks as an output when it loads the voice with alignments. Id i lasts `frames(i)`
frames (times length_scale) of `HOP` samples, and the audio is a tone exactly that long, so a word's span
is known: the model sees BOS and a pad, then each phoneme and a pad, then EOS. Durations differ from id
to id, so spans spread evenly over the audio would not pass for the model's own.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from models.engines import EngineError, ModelMissingError, SpeechChunk
from models.tts_espeak import split_clauses
from models.tts_piper import WARM_UP_TEXT, PiperOptions, PiperTts, group_tokens, use_cuda

if TYPE_CHECKING:
    import onnx
    import piper
else:
    onnx = pytest.importorskip("onnx", reason="the onnx package builds the test voice (pip install onnx)")
    piper = pytest.importorskip("piper", reason="piper-tts is not installed (pip install piper-tts)")
from onnx import TensorProto, helper

RATE = 22050
HOP = 256


def frames(phoneme_id: int, length_scale: float = 1.0) -> int:
    """How long the tiny model makes each phoneme id, in frames of HOP samples."""
    return math.ceil((1 + phoneme_id % 3) * length_scale)


TUESDAY = "The delivery is confirmed for Tuesday, at 10:30."
TEXTS = {
    "en": [TUESDAY,
           "Call me back at 555 0199 -- it's about the 3.5% x-ray e.g. Mr. Smith's.",
           "hello -- world … ok & stuff \"quoted\" (paren) 1,000,000 $5 #1 @home; 10 : 30",
           "I want a cup of tea and to go to the USA at 3 pm, Dr. Who."],
    "it": ["Perché è già così tardi? Richiamo domani alle 9, grazie.",
           "L'amico dell'uomo è qui: 10:30, 3,5% sì."],
}
ESPEAK = {"en": "en-us", "it": "it"}


def phonemize(language: str, text: str) -> list[str]:
    """The phonemes piper's own phonemizer makes for `text`, sentences joined by a space."""
    from piper import PiperConfig, PiperVoice

    config = PiperConfig(num_symbols=0, num_speakers=1, sample_rate=RATE, espeak_voice=ESPEAK[language],
                         phoneme_id_map={}, phoneme_type=piper.PhonemeType.ESPEAK)
    phonemes: list[str] = []
    for sentence in PiperVoice(session=None, config=config).phonemize(text):
        if phonemes and phonemes[-1] != " ":
            phonemes.append(" ")
        phonemes.extend(sentence)
    return phonemes


@functools.cache
def phoneme_id_map(language: str) -> dict[str, list[int]]:
    """piper's special symbols, then every phoneme espeak-ng makes for this language's test texts."""
    seen = {p for text in [*TEXTS[language], WARM_UP_TEXT]
            for clause in split_clauses(text) for p in phonemize(language, clause)}
    specials = ["_", "^", "$", " "]
    return {p: [i] for i, p in enumerate(specials + sorted(seen - set(specials)))}


def _constant(name: str, dims: list[int], values: list[float] | list[int]) -> onnx.NodeProto:
    kind = TensorProto.INT64 if isinstance(values[0], int) else TensorProto.FLOAT
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, kind, dims, values))


def tiny_model(*, speakers: int = 1, durations: str = "hidden") -> onnx.ModelProto:
    """durations: "hidden" (a Ceil node piper must expose), "output" (already exposed), "none"."""
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
              helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
              helper.make_tensor_value_info("scales", f, [3])]
    scalars = {"three": 3, "one_i": 1, "one": 1.0, "hop": float(HOP), "start": 0.0, "step": 1.0,
               "omega": 2 * math.pi * 220.0 / RATE, "half": 0.5}
    nodes = [_constant(name, [], [value]) for name, value in scalars.items()]
    nodes += [
        _constant("axis1", [1], [1]),
        _constant("shape", [3], [1, 1, -1]),
        helper.make_node("Mod", ["input", "three"], ["m"]),  # frames(id) = 1 + id % 3
        helper.make_node("Cast", ["m"], ["m_f"], to=f),
        helper.make_node("Add", ["m_f", "one"], ["w_base"]),
        helper.make_node("Gather", ["scales", "one_i"], ["length_scale"], axis=0),
        helper.make_node("Mul", ["w_base", "length_scale"], ["w2"]),
        helper.make_node("Unsqueeze", ["w2", "axis1"], ["w"]),
    ]
    if durations == "none":
        nodes.append(helper.make_node("Identity", ["w"], ["w_frames"]))
    else:
        nodes.append(helper.make_node("Ceil", ["w"], ["w_frames"]))
    nodes += [
        helper.make_node("ReduceSum", ["w_frames"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "hop"], ["samples"]),
        helper.make_node("Range", ["start", "samples", "step"], ["t"]),
    ]
    if speakers > 1:  # speaker k sings at (k + 1) times the base frequency
        inputs.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
        nodes += [helper.make_node("Cast", ["sid"], ["sid_f"], to=f),
                  helper.make_node("Add", ["sid_f", "one"], ["k"]),
                  helper.make_node("Mul", ["k", "omega"], ["omega_k"]),
                  helper.make_node("Mul", ["t", "omega_k"], ["phase"])]
    else:
        nodes.append(helper.make_node("Mul", ["t", "omega"], ["phase"]))
    nodes += [helper.make_node("Sin", ["phase"], ["tone"]),
              helper.make_node("Mul", ["tone", "half"], ["quiet"]),
              helper.make_node("Reshape", ["quiet", "shape"], ["output"])]
    outputs = [helper.make_tensor_value_info("output", f, [1, 1, "samples"])]
    if durations == "output":
        outputs.append(helper.make_tensor_value_info("w_frames", f, [1, 1, "phonemes"]))
    graph = helper.make_graph(nodes, "tiny_piper", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_voice(folder: Path, language: str, **kwargs: Any) -> Path:
    speakers = kwargs.get("speakers", 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{language}_tiny.onnx"
    onnx.save(tiny_model(**kwargs), str(path))
    id_map = phoneme_id_map(language)
    config = {"audio": {"sample_rate": RATE}, "espeak": {"voice": ESPEAK[language]},
              "phoneme_type": "espeak", "num_symbols": len(id_map), "num_speakers": speakers,
              "speaker_id_map": {f"s{i}": i for i in range(speakers)} if speakers > 1 else {},
              "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
              "phoneme_id_map": id_map, "hop_length": HOP}
    path.with_name(path.name + ".json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voices")
    return {language: write_voice(folder, language) for language in TEXTS}


@pytest.fixture(scope="module")
def tts(voices: dict[str, Path]) -> PiperTts:
    return PiperTts(PiperOptions(voices=voices, use_cuda=False))


def speak(tts: PiperTts, text: str, language: str) -> list[SpeechChunk]:
    return list(tts.synthesize(text, language=language))


def tokens(chunks: list[SpeechChunk]) -> list[str]:
    return [token for chunk in chunks for w in chunk.words for token in w.text.split()]


def spoken(chunk: SpeechChunk, language: str, length_scale: float = 1.0) -> list[str]:
    """The phonemes under each span of `chunk`, checking the spans against the known durations: the
    audio is BOS + pad, a phoneme + pad per phoneme, then EOS; a span starts where a word's first
    phoneme starts and ends after its last sounding one, its pad included."""
    text = " ".join(w.text for w in chunk.words)
    phonemes = phonemize(language, text)
    id_map = phoneme_id_map(language)

    def samples(*symbols: str) -> int:
        return HOP * sum(frames(id_map[p][0], length_scale) for p in symbols)

    edges = list(itertools.accumulate([samples(p, "_") for p in phonemes], initial=samples("^", "_")))
    assert len(chunk.audio) == edges[-1] + samples("$")
    starts = {edge: k for k, edge in enumerate(edges)}
    result = []
    previous_end = 0
    for word in chunk.words:
        assert previous_end <= word.start < word.end <= len(chunk.audio), word
        assert word.start in starts and word.end in starts, word
        a, b = starts[word.start], starts[word.end]
        assert a == 0 or phonemes[a - 1] == " ", (word, phonemes[a - 1:b])
        assert not phonemes[a].isspace() and phonemes[b - 1] not in " ,.;:!?", (word, phonemes[a:b])
        assert b == len(phonemes) or phonemes[b] in " ,.;:!?", (word, phonemes[a:b + 1])
        result.append("".join(phonemes[a:b]))
        previous_end = word.end
    assert len(chunk.audio) - chunk.words[-1].end >= samples("$")  # trailing silence: not the word's
    return result


@pytest.mark.parametrize(("language", "text"), [(lang, t) for lang, texts in TEXTS.items() for t in texts])
def test_every_token_once_in_order_with_spans_on_its_phonemes(tts: PiperTts, language: str,
                                                              text: str) -> None:
    chunks = speak(tts, text, language)
    assert tokens(chunks) == text.split()
    assert len(chunks) == len(split_clauses(text))  # one chunk per clause
    for chunk in chunks:
        assert chunk.audio.dtype == np.int16 and chunk.sample_rate == RATE
        assert np.abs(chunk.audio.astype(np.int32)).max() > 30000  # piper's peak normalisation
        words = spoken(chunk, language)
        assert all(w.strip() for w in words)


def test_numbers_and_punctuation_come_back_as_written(tts: PiperTts) -> None:
    [chunk] = speak(tts, TUESDAY, "en")
    assert [w.text for w in chunk.words] == ["The", "delivery", "is", "confirmed", "for", "Tuesday,",
                                             "at", "10:30."]
    words = spoken(chunk, "en")
    assert [w.count(" ") for w in words] == [0] * 7 + [1]  # "10:30" is said as two words
    id_map = phoneme_id_map("en")
    lengths = [w.end - w.start for w in chunk.words]
    assert lengths == [HOP * sum(frames(id_map[p][0]) + frames(0) for p in w) for w in words]


def test_italian_clauses(tts: PiperTts) -> None:
    chunks = speak(tts, "Perché è già così tardi? Richiamo domani alle 9, grazie.", "it")
    assert [[w.text for w in c.words] for c in chunks] == [
        ["Perché", "è", "già", "così", "tardi?"], ["Richiamo", "domani", "alle", "9,", "grazie."]]


def test_words_espeak_runs_together_share_a_span(tts: PiperTts) -> None:
    chunks = speak(tts, TEXTS["en"][2], "en")
    texts = [w.text for c in chunks for w in c.words]
    # espeak-ng says "world … ok" as one phoneme word; "--" has no sound of its own; ":" alone says
    # "colon" but after "10" nothing
    assert "hello --" in texts and "world … ok" in texts and "10 :" in texts
    assert "1,000,000" in texts and "$5" in texts


def test_group_tokens() -> None:
    # counts add up: words dealt out in order, a silent token joins the span before it
    assert group_tokens([["a"], [], ["bc", "d"], ["e"]], ["a", "bc", "d", "e"]) == [
        (0, 1, 0, 0), (2, 2, 1, 2), (3, 3, 3, 3)]
    # a silent token first joins the span after it
    assert group_tokens([[], ["a"]], ["a"]) == [(0, 1, 0, 0)]
    # counts differ: the alignment decides ("wɜːld" and "oʊkeɪ" said as one word)
    assert group_tokens([["həloʊ"], ["wɜːld"], [], ["oʊkeɪ"], ["ænd"]],
                        ["həloʊ", "wɜːldoʊkeɪ", "ænd"]) == [(0, 0, 0, 0), (1, 3, 1, 1), (4, 4, 2, 2)]
    assert group_tokens([["tɛn", "θɜːɾi"], ["æt"]], ["tɛnθɜːɾi", "æt"]) == [(0, 0, 0, 0), (1, 1, 1, 1)]
    assert group_tokens([["x"]], ["a", "b", "c"]) == [(0, 0, 0, 2)]


def test_length_scale_stretches_every_phoneme(voices: dict[str, Path]) -> None:
    slow = PiperTts(PiperOptions(voices=voices, length_scale=1.5, use_cuda=False))
    [chunk] = speak(slow, TUESDAY, "en")
    assert spoken(chunk, "en", length_scale=1.5) == spoken(speak(slow, TUESDAY, "en")[0], "en", 1.5)
    with pytest.raises(AssertionError):
        spoken(chunk, "en")


@pytest.mark.parametrize("durations", ["output", "none"])
def test_voice_already_patched_or_without_durations(tmp_path: Path, durations: str) -> None:
    voice = PiperTts(PiperOptions(voices={"en": write_voice(tmp_path, "en", durations=durations)},
                                  use_cuda=False))
    [chunk] = speak(voice, TUESDAY, "en")
    assert [w.text for w in chunk.words][-1] == "10:30."
    if durations == "output":
        spoken(chunk, "en")
    else:  # spans spread evenly over the ids: in order, inside the chunk, but not the model's own
        ends = [0] + [x for w in chunk.words for x in (w.start, w.end)]
        assert ends == sorted(ends) and ends[-1] <= len(chunk.audio)
        with pytest.raises(AssertionError):
            spoken(chunk, "en")


def test_speaker_id_reaches_the_model(tmp_path: Path) -> None:
    path = write_voice(tmp_path, "en", speakers=2)
    chunks = [speak(PiperTts(PiperOptions(voices={"en": path}, speaker_id=sid, use_cuda=False)), "ok.", "en")
              for sid in (None, 0, 1)]
    audio = [c[0].audio for c in chunks]
    assert np.array_equal(audio[0], audio[1]) and not np.array_equal(audio[1], audio[2])
    with pytest.raises(EngineError, match=r"speakers 0\.\.1"):
        speak(PiperTts(PiperOptions(voices={"en": path}, speaker_id=2, use_cuda=False)), "ok.", "en")


def test_concurrent_synthesis_matches_sequential(tts: PiperTts) -> None:
    jobs = [(lang, text) for lang, texts in TEXTS.items() for text in texts] * 2
    expected = [speak(tts, text, lang) for lang, text in jobs]
    results: list[list[SpeechChunk] | None] = [None] * len(jobs)

    def run(i: int) -> None:
        results[i] = speak(tts, jobs[i][1], jobs[i][0])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for got, want in zip(results, expected, strict=True):
        assert got is not None
        assert [c.words for c in got] == [c.words for c in want]
        assert all(np.array_equal(a.audio, b.audio) for a, b in zip(got, want, strict=True))


def test_warm_up_and_language_lookup(tts: PiperTts) -> None:
    tts.warm_up()
    assert tts.languages == ("en", "it")
    assert tokens(speak(tts, "Ciao.", "it_IT")) == ["Ciao."]
    assert tokens(speak(tts, "Hi.", "EN-us")) == ["Hi."]
    assert speak(tts, "", "en") == []
    [chunk] = speak(tts, "...", "en")  # nothing to say: no audio, the token still in a span
    assert [(w.text, w.start, w.end) for w in chunk.words] == [("...", 0, 0)] and len(chunk.audio) == 0
    american = PiperTts(PiperOptions(voices={"en_US": tts.options.voices["en"]}, use_cuda=False))
    assert american.languages == ("en-us",)
    assert tokens(speak(american, "Hi there.", "en")) == ["Hi", "there."]


def test_unknown_language_lists_the_configured_ones(tts: PiperTts) -> None:
    with pytest.raises(EngineError, match="configured languages: en, it"):
        tts.synthesize("Hallo.", language="de")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
def test_missing_voice_names_the_pull_command(tmp_path: Path, voices: dict[str, Path]) -> None:
    with pytest.raises(ModelMissingError, match="standin models pull") as info:
        PiperTts(PiperOptions(voices={"en": voices["en"], "it": tmp_path / "it_IT-paola-medium.onnx"}))
    assert "it_IT-paola-medium.onnx" in str(info.value)
    lonely = tmp_path / "en_US-lessac-medium.onnx"
    lonely.write_bytes(voices["en"].read_bytes())  # the model without its .onnx.json
    with pytest.raises(ModelMissingError, match=r"\.onnx\.json.*standin models pull"):
        PiperTts(PiperOptions(voices={"en": lonely}))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    broken.with_name("broken.onnx.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ModelMissingError, match="could not be loaded"):
        PiperTts(PiperOptions(voices={"en": broken})).synthesize("Hi.", language="en")


def test_missing_packages_are_named(voices: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(EngineError, match="pip install piper-tts"):
        PiperTts(PiperOptions(voices=voices)).synthesize("Hi.", language="en")
    monkeypatch.undo()
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "onnx" else object())
    with pytest.raises(EngineError, match="pip install onnx"):
        PiperTts(PiperOptions(voices=voices)).synthesize("Hi.", language="en")


def test_options_are_checked(voices: dict[str, Path]) -> None:
    with pytest.raises(EngineError, match="no piper voices"):
        PiperTts(PiperOptions())
    with pytest.raises(ValueError, match="length_scale"):
        PiperTts(PiperOptions(voices=voices, length_scale=0))


def test_cuda_is_used_when_onnxruntime_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert use_cuda(None) is False and use_cuda(False) is False
    with pytest.raises(EngineError, match="onnxruntime-gpu"):
        use_cuda(True)
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert use_cuda(None) is True and use_cuda(False) is False
