"""WhisperStt: the hallucination filter on synthetic segments, and the real loading and decoding path on a
tiny random Whisper (2 + 2 layers, d_model 64) built and converted to CTranslate2 at test time.

The tiny model's tokenizer is made here with `tokenizers`: Whisper's multilingual layout (50,257 text
tokens, then <|endoftext|>, <|startoftranscript|>, one token per language, the task tokens, <|nospeech|>,
<|notimestamps|> and 1,501 timestamps), with byte-level stand-ins for the text tokens. CTranslate2 calls a
model multilingual when its vocabulary holds the empty token that real multilingual vocabularies have
(id 50256), so the stand-ins end with one. A random model says gibberish: the tests check what reaches
the decoder and what comes back, not the words. The model is built in a child process, so torch and
transformers (test-only packages) never load into the test session.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from models.engines import EngineError, ModelMissingError, Transcript
from models.stt_whisper import (
    WhisperOptions,
    WhisperStt,
    build_prompt,
    confidence,
    encoder_frames,
    filter_segments,
    is_stock_phrase,
    normalize_phrase,
    sentence_words,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
JFK = SHARED / "audio" / "speech" / "jfk.wav"
NO_FILTERS = WhisperOptions(device="cpu", cpu_threads=2, no_speech_threshold=None, min_avg_logprob=None,
                            min_long_logprob=None, max_compression_ratio=None, drop_stock_phrases=False)


class Seg(NamedTuple):
    text: str
    start: float = 0.0
    end: float = 2.0
    avg_logprob: float = -0.3
    no_speech_prob: float = 0.01
    compression_ratio: float = 1.3


# --------------------------------------------------------------------------- helpers and fixtures


@contextlib.contextmanager
def _refuse_network(mp: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every way out to the network raises; the attempts are listed (in case something swallows them)."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args[:2]))
        raise OSError("network access is not allowed in this test")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket.socket, "connect_ex", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket, "getaddrinfo", refuse)
    yield attempts


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    with _refuse_network(monkeypatch) as attempts:
        yield attempts
    assert attempts == []


def _build_tiny_whisper(root: Path) -> Path:
    """Make the tiny model under `root`; runs in a child process (see `tiny_model_dir`)."""
    import ctranslate2
    import tokenizers
    import torch
    import transformers
    from faster_whisper.tokenizer import _LANGUAGE_CODES  # the languages faster-whisper knows

    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    while len(vocab) < 50256:
        vocab[f"Ġw{len(vocab)}"] = len(vocab)  # decodes as " w123": unreachable by encoding, fine
    vocab[""] = 50256
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    specials = (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in _LANGUAGE_CODES]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                   "<|notimestamps|>"] + [f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False) for s in specials])
    eot, sot = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|startoftranscript|>")

    hf, ct2 = root / "hf", root / "ct2"
    config = transformers.WhisperConfig(
        vocab_size=tok.get_vocab_size(), num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=sot)
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    gen = model.generation_config
    gen._from_model_config = False  # else from_pretrained rebuilds it from config.json, losing lang_to_id
    gen.suppress_tokens = []
    gen.begin_suppress_tokens = [tok.token_to_id("Ġ"), eot]
    gen.lang_to_id = {f"<|{c}|>": tok.token_to_id(f"<|{c}|>") for c in _LANGUAGE_CODES}
    model.save_pretrained(hf)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.save_pretrained(hf)  # what the converter's AutoTokenizer reads
    tok.save(str(hf / "tokenizer.json"))  # and faster-whisper gets exactly the tokenizer made above
    ctranslate2.converters.TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(str(ct2))
    return ct2


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, built once per session in a child process: torch and transformers (test-only
    packages) stay out of this one, where other tests check that nothing imported torch."""
    pytest.importorskip("faster_whisper", reason="pip install faster-whisper")
    for name in ("torch", "transformers", "tokenizers", "ctranslate2"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed: the tiny test model is made with torch==2.13.0, "
                        f"transformers and tokenizers (test-only packages)")
    root = tmp_path_factory.mktemp("tiny-whisper")
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, __file__, str(root)], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, f"building the tiny whisper failed:\n{done.stdout}\n{done.stderr}"
    return root / "ct2"


@pytest.fixture(scope="module")
def stt(tiny_model_dir: Path) -> WhisperStt:
    return WhisperStt(tiny_model_dir, WhisperOptions(device="cpu", cpu_threads=2))


@pytest.fixture(scope="module")
def raw_stt(tiny_model_dir: Path) -> WhisperStt:
    return WhisperStt(tiny_model_dir, NO_FILTERS)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    if not JFK.is_file():
        pytest.skip(f"test audio {JFK} is absent (the shared folder sits beside the checkout)")
    sf = pytest.importorskip("soundfile")
    x, rate = sf.read(str(JFK), dtype="float32", always_2d=True)
    assert rate == 16000
    return np.ascontiguousarray(x.mean(axis=1, dtype=np.float32))


def _copy_model(src: Path, dst: Path, *, without: str = "") -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.name != without:
            shutil.copyfile(f, dst / f.name)
    return dst


def _fake_model_dir(path: Path, *, without: str = "") -> Path:
    path.mkdir()
    for name in ("model.bin", "config.json", "vocabulary.json", "tokenizer.json"):
        if name != without:
            (path / name).write_text("{}")
    return path


# --------------------------------------------------------------------------- filter, prompt, confidence


def test_filter_keeps_good_segments() -> None:
    segs = [Seg("Hello, this is Mario."), Seg("Call me back.", no_speech_prob=0.9, avg_logprob=-0.4)]
    # a high no_speech_prob is not silence while the text is confident
    assert filter_segments(segs, WhisperOptions()) == segs


def test_a_dictated_digit_group_is_one_word_not_an_unsure_sentence() -> None:
    # tiny.en wrote these for digit groups it heard right, as unsure as an unsure sentence
    groups = [Seg("0 3 3 1", avg_logprob=-0.83), Seg("2-1-98", avg_logprob=-1.01),
              Seg("Um, 031", avg_logprob=-1.1)]
    assert filter_segments(groups, WhisperOptions()) == groups
    assert [sentence_words(s.text) for s in groups] == [1, 1, 2]
    # words around the digits still count: noise Whisper wrote as a sentence with a number in it goes
    noise = Seg("glizzania e 3.7", avg_logprob=-1.42)
    assert sentence_words(noise.text) == 3 and filter_segments([noise], WhisperOptions()) == []


@pytest.mark.parametrize("seg", [
    Seg("Hello.", no_speech_prob=0.8, avg_logprob=-1.2),  # silence
    Seg("Hello.", avg_logprob=-2.0),  # too unsure
    Seg("Please join me in the comments below.", avg_logprob=-1.1),  # many words, all of them unsure
    Seg("the the the the the the", compression_ratio=3.1),  # repeating itself
    Seg(" Sottotitoli a cura di QTSS"),  # credit line
    Seg("Subtitles by the Amara.org community"),
])
def test_filter_drops_bad_segments(seg: Seg) -> None:
    good = Seg("Sono Mario Rossi.")
    assert filter_segments([good, seg, good], WhisperOptions()) == [good, good]
    assert filter_segments([seg], NO_FILTERS) == [seg]  # every check can be turned off


@pytest.mark.parametrize(("text", "language"), [
    ("Thank you.", "en"), ("Thanks for watching!", "en"), (" you", "en"), ("you", "it"),
    ("Grazie per la visione", "it"), ("Grazie per la visione!", "it"), ("THANK YOU.", "it"),
    ("Sottotitoli creati dalla comunità Amara.org", "it"), ("Sottotitoli a cura di QTSS", "it"),
    ("sottotitoli a cura di...", "it"), ("Untertitel der Amara.org-Community", "de"), ("...", "en"),
    ("♪ ♪", "en"), ("Merci d'avoir regardé !", "fr"),
])
def test_stock_phrases(text: str, language: str) -> None:
    assert is_stock_phrase(text, language)


@pytest.mark.parametrize(("text", "language"), [
    ("Thank you, I'll call back tomorrow.", "en"), ("Okay.", "en"), ("Grazie", "it"), ("Sì.", "it"),
    ("Grazie per la visita di ieri", "it"), ("Sono Rossi, sottotitoli a cura di", "it"),
    ("Youssef here", "en"),
])
def test_real_words_are_not_stock_phrases(text: str, language: str) -> None:
    assert not is_stock_phrase(text, language)


def test_normalize_phrase() -> None:
    assert normalize_phrase("  Sottotitoli creati dalla COMUNITÀ Amara.org ") == \
        "sottotitoli creati dalla comunita amara org"
    assert normalize_phrase("Grazie per l'attenzione!") == "grazie per lattenzione"


def test_confidence() -> None:
    assert confidence([]) == 0.0
    assert confidence([Seg("a", avg_logprob=0.0)]) == 1.0
    segs = [Seg("a", 0.0, 1.0, avg_logprob=float(np.log(0.9))),
            Seg("b", 1.0, 4.0, avg_logprob=float(np.log(0.5)))]
    assert confidence(segs) == pytest.approx((0.9 * 1 + 0.5 * 3) / 4)
    assert confidence([Seg("a", 2.0, 2.0, avg_logprob=-50.0)]) == pytest.approx(0.0, abs=1e-9)


def test_build_prompt() -> None:
    assert build_prompt([], 120) is None
    assert build_prompt(["  ", ""], 120) is None
    assert build_prompt(["Mario  Rossi", "Milano", "mario rossi", "ACME Srl"], 120) == \
        "Mario Rossi, Milano, ACME Srl."
    assert build_prompt(["Mario Rossi", "Milano", "ACME Srl"], 20) == "Mario Rossi, Milano."
    assert build_prompt(["Marco"], 6) == "Marco."
    assert build_prompt(["Marco"], 5) is None
    assert build_prompt(["A very long company name indeed"], 10) is None


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="device"):
        WhisperOptions(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compute_type"):
        WhisperOptions(compute_type="int4")
    with pytest.raises(ValueError, match="temperatures"):
        WhisperOptions(temperatures=())
    for bad in ({"min_window_s": 0.5}, {"min_window_s": 31.0}, {"window_pad_s": -1.0}):
        with pytest.raises(ValueError, match="window"):
            WhisperOptions(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seconds", "options", "frames"), [
    (0.3, WhisperOptions(), 1500),  # at least min_window_s
    (2.0, WhisperOptions(), 1500),
    (13.0, WhisperOptions(), 1500),  # 13 s + 2 s of padding
    (13.01, WhisperOptions(), 1600),  # rounded up to a whole second
    (26.5, WhisperOptions(), 2900),
    (27.5, WhisperOptions(), None),  # no shorter than Whisper's own 30 s: faster-whisper's loop
    (45.0, WhisperOptions(), None),
    (2.0, WhisperOptions(min_window_s=None), None),
    (2.0, WhisperOptions(min_window_s=4.0, window_pad_s=0.0), 400),
    (2.0, WhisperOptions(min_window_s=1.0, window_pad_s=0.5), 300),
])
def test_encoder_window(seconds: float, options: WhisperOptions, frames: int | None) -> None:
    assert encoder_frames(round(seconds * 16000), options) == frames


# --------------------------------------------------------------------------- missing pieces


@pytest.mark.parametrize("missing", ["model.bin", "config.json", "tokenizer.json", "vocabulary.json"])
def test_missing_file_is_named(tmp_path: Path, offline: list[str], missing: str) -> None:
    folder = _fake_model_dir(tmp_path / "whisper", without=missing)
    with pytest.raises(ModelMissingError, match=rf"{missing}.*standin models pull"):
        WhisperStt(folder)


def test_missing_directory(tmp_path: Path, offline: list[str]) -> None:
    with pytest.raises(ModelMissingError, match=r"does not exist.*standin models pull"):
        WhisperStt(tmp_path / "nowhere")


def test_missing_tokenizer_never_reaches_the_hub(tiny_model_dir: Path, tmp_path: Path,
                                                  offline: list[str]) -> None:
    folder = _copy_model(tiny_model_dir, tmp_path / "whisper", without="tokenizer.json")
    with pytest.raises(ModelMissingError, match=r"tokenizer\.json.*standin models pull"):
        WhisperStt(folder, WhisperOptions(device="cpu"))


def test_wrong_mel_count_names_preprocessor_config(tiny_model_dir: Path, tmp_path: Path,
                                                   offline: list[str]) -> None:
    folder = _copy_model(tiny_model_dir, tmp_path / "whisper")
    (folder / "preprocessor_config.json").write_text('{"feature_size": 128}')
    with pytest.raises(ModelMissingError, match=r"preprocessor_config\.json"):
        WhisperStt(folder, WhisperOptions(device="cpu"))


def test_missing_package_names_pip_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import faster_whisper now fails
    with pytest.raises(EngineError, match="pip install faster-whisper"):
        WhisperStt(_fake_model_dir(tmp_path / "whisper"))


# --------------------------------------------------------------------------- the real path


def test_decodes_real_speech(raw_stt: WhisperStt, speech: np.ndarray, offline: list[str],
                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        result = raw_stt.transcribe(speech, start_s=12.5, language="en", hints=("Kennedy",))
    assert isinstance(result, Transcript)
    assert isinstance(result.text, str) and result.text.strip()  # unfiltered gibberish, but words
    assert 0.0 <= result.confidence <= 1.0
    for record in caplog.records:
        assert result.text not in record.getMessage()
        assert result.text.split()[0] not in record.getMessage()


@pytest.mark.parametrize("seconds", [3, 29])  # a short window, and faster-whisper's 30 s one
def test_default_filter_runs_on_the_decoded_segments(stt: WhisperStt, speech: np.ndarray,
                                                     seconds: int) -> None:
    speech = np.tile(speech, 3)[:seconds * 16000]
    raw = stt.decode(speech, language="it")
    assert raw  # the random model said something
    kept = filter_segments(raw, stt.options)
    expected = " ".join(" ".join(s.text.split()) for s in kept)
    if is_stock_phrase(expected, "it"):
        expected = ""
    result = stt.transcribe(speech, start_s=0.0, language="it")
    assert result.text == expected
    assert result.confidence == (confidence(kept) if expected else 0.0)
    assert 0.0 <= result.confidence <= 1.0


@pytest.mark.parametrize(("segments", "text"), [
    ([Seg(" Thank you.", no_speech_prob=0.8, avg_logprob=-0.7)], ""),  # Whisper filling silence
    ([Seg(" Thank you.", no_speech_prob=0.4, avg_logprob=-0.2)], "Thank you."),  # a caller's answer
    ([Seg(" Grazie per la visione!", avg_logprob=-0.1)], ""),
    ([Seg(" Sono Mario Rossi,", 0.0, 2.0), Seg(" richiamami.", 2.0, 3.0),
      Seg(" Sottotitoli creati dalla comunità Amara.org", 3.0, 5.0)], "Sono Mario Rossi, richiamami."),
    ([Seg(" Pronto?", no_speech_prob=0.9, avg_logprob=-1.3)], ""),
    ([], ""),
])
def test_transcript_from_segments(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                  segments: list[Seg], text: str) -> None:
    stt = WhisperStt(tiny_model_dir, WhisperOptions(device="cpu", cpu_threads=2, min_window_s=None))
    consumed: list[bool] = []

    def lazy() -> Iterator[Seg]:  # like faster-whisper's: decodes while iterated
        yield from segments
        consumed.append(True)

    monkeypatch.setattr(stt.model, "transcribe", lambda audio, **kwargs: (lazy(), None))
    result = stt.transcribe(np.zeros(16000, dtype=np.float32), start_s=3.0, language="it")
    assert consumed == [True]
    assert result.text == text
    expected = confidence([s for s in segments if s.end <= 3.0]) if text else 0.0
    assert result.confidence == pytest.approx(expected)


def test_the_decoder_pass_scores_as_faster_whisper_does(raw_stt: WhisperStt, speech: np.ndarray) -> None:
    """Given faster-whisper's own window (the log-mel padded with zeros to 30 s), the pass gives its text
    and scores: the same prompt, suppressed tokens and scoring."""
    clip = speech[:16000 * 3]
    mel = raw_stt.model.feature_extractor(clip)
    features = np.zeros((1, mel.shape[0], 3000), dtype=np.float32)
    features[0, :, :mel.shape[1] - 1] = mel[:, :-1]
    for hints in ((), ("Rossi", "Milano")):
        prompt = build_prompt(hints, 120)
        mine = raw_stt.decode_features(features, 3.0, "it", prompt)
        theirs, _ = raw_stt.model.transcribe(clip, language="it", beam_size=1, temperature=[0.0],
                                             condition_on_previous_text=False, without_timestamps=True,
                                             no_speech_threshold=None, hotwords=prompt)
        (segment,) = list(theirs)
        assert mine.text == segment.text.strip()
        assert mine.avg_logprob == pytest.approx(segment.avg_logprob, abs=1e-4)
        assert mine.no_speech_prob == pytest.approx(segment.no_speech_prob, abs=1e-4)
        assert mine.compression_ratio == pytest.approx(segment.compression_ratio)
        assert (mine.start, mine.end) == (0.0, 3.0)


def test_the_window_pads_with_silence(raw_stt: WhisperStt, speech: np.ndarray) -> None:
    clip = speech[:16000 * 2]
    window = raw_stt.window(clip, 1500)
    assert window.shape == (1, 80, 1500) and window.dtype == np.float32
    alone = raw_stt.model.feature_extractor(clip, padding=0)
    np.testing.assert_allclose(window[0, :, :150], alone[:, :150], atol=1e-5)  # the clip's own frames
    floor = window[0].max() - 2.0  # the log-mel's floor: 8 decades under its peak, scaled by 1/4
    assert np.allclose(window[0, :, 210:], floor, atol=1e-5)  # digital silence, not zeros
    assert not np.allclose(window[0, :, 210:], 0.0)


def test_short_fragments_take_the_short_window(stt: WhisperStt, speech: np.ndarray,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    full = stt.model.transcribe

    def counted(audio: np.ndarray, **kwargs: Any) -> Any:
        calls.append(audio.size / 16000)
        return full(audio, **kwargs)

    monkeypatch.setattr(stt.model, "transcribe", counted)
    long = np.tile(speech, 3)[:16000 * 29]
    stt.transcribe(speech[:16000 * 4], start_s=0.0, language="en")
    assert calls == []
    stt.transcribe(long, start_s=0.0, language="en")
    assert calls == [29.0]


class _GenerateSpy:
    """Stands in for the CTranslate2 model inside faster-whisper's WhisperModel, recording prompts."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.prompts: list[list[int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def generate(self, features: Any, prompts: list[list[int]], **kwargs: Any) -> Any:
        self.prompts.extend(list(p) for p in prompts)
        return self._inner.generate(features, prompts, **kwargs)


def test_language_is_locked_and_hints_bias_the_prompt(raw_stt: WhisperStt, speech: np.ndarray,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _GenerateSpy(raw_stt.model.model)
    monkeypatch.setattr(raw_stt.model, "model", spy)
    raw_stt.transcribe(speech[:16000 * 3], start_s=0.0, language="it-IT", hints=["Rossi", "Milano", ""])
    tok = raw_stt.model.hf_tokenizer
    sot, prev = tok.token_to_id("<|startoftranscript|>"), tok.token_to_id("<|startofprev|>")
    assert spy.prompts
    for prompt in spy.prompts:
        start = prompt.index(sot)
        assert prompt[start:] == [sot, tok.token_to_id("<|it|>"), tok.token_to_id("<|transcribe|>"),
                                  tok.token_to_id("<|notimestamps|>")]
        assert prompt[:start] == [prev, *tok.encode(" Rossi, Milano.", add_special_tokens=False).ids]

    spy.prompts.clear()
    raw_stt.transcribe(speech[:16000], start_s=0.0, language="en")
    assert all(tok.token_to_id("<|en|>") in p and prev not in p for p in spy.prompts)


def test_unknown_language_is_a_clear_error(stt: WhisperStt, speech: np.ndarray) -> None:
    with pytest.raises(EngineError, match=r"'xx'.*ISO 639-1"):
        stt.transcribe(speech, start_s=0.0, language="xx")


def test_audio_is_checked(stt: WhisperStt) -> None:
    assert stt.transcribe(np.zeros(0, dtype=np.float32), start_s=0.0, language="it") == Transcript("", 0.0)
    with pytest.raises(ValueError, match="float"):
        stt.transcribe(np.zeros(1600, dtype=np.int16), start_s=0.0, language="it")
    with pytest.raises(ValueError, match="mono"):
        stt.transcribe(np.zeros((2, 1600), dtype=np.float32), start_s=0.0, language="it")


def test_warm_up(stt: WhisperStt, offline: list[str]) -> None:
    stt.warm_up()
    assert stt.device == "cpu" and stt.compute_type == "int8"


def test_concurrent_calls_share_the_model(raw_stt: WhisperStt, speech: np.ndarray) -> None:
    clips = {"a": speech[:16000 * 4], "b": speech[16000 * 4:16000 * 9]}
    alone = {k: raw_stt.transcribe(x, start_s=0.0, language="en") for k, x in clips.items()}
    results: dict[str, Transcript] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(clips))

    def work(key: str) -> None:
        try:
            barrier.wait()
            results[key] = raw_stt.transcribe(clips[key], start_s=0.0, language="en")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in clips]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)  # a guard against a hang, not a latency check
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert results == alone  # greedy decoding: concurrency changes nothing


if __name__ == "__main__":  # the child process of `tiny_model_dir`
    with pytest.MonkeyPatch.context() as patch, _refuse_network(patch) as refused:
        _build_tiny_whisper(Path(sys.argv[1]))
    if refused:
        raise SystemExit(f"the tiny model build tried to reach the network: {refused}")
