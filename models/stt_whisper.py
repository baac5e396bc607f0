"""Speech to text with faster-whisper (Whisper converted to CTranslate2), one fragment at a time.

The model is a local directory as `ct2-transformers-converter` writes it: `model.bin`, `config.json`,
`vocabulary.json` (or `.txt`), `tokenizer.json`, and `preprocessor_config.json` for models with 128 mel
bins (large-v3, turbo). Every required file is checked before faster-whisper sees the directory: it would
fetch a missing `tokenizer.json` from the Hugging Face hub, and nothing is downloaded at run time
(`standin models pull` fetches models). faster-whisper is only ever given a directory, with
`local_files_only`, so it never has a name it could look up on the hub.

Each fragment is decoded greedily in the call's language (never detected), without timestamps, without
conditioning on earlier text and without faster-whisper's own VAD (the runtime cut the fragment with
Silero already). A fragment is encoded in a window just longer than itself (`encoder_frames`, 15 s for
anything up to 13 s) instead of Whisper's fixed 30 s, padded with digital silence as OpenAI's code pads
(`WhisperStt.window`), and decoded here; a longer one goes to faster-whisper, which skips nothing itself.
Then the silence and noise hallucinations go. The rules and their thresholds (`WhisperOptions`) were
chosen on measurements of tiny.en and base, in those windows, on silence, line hiss, room noise, music
on hold, line tones, SIPp's pcaps and real short answers (benchmarks/whisper_noise.py; the margins are
in benchmarks/whisper_noise.json):

1. silence: `no_speech_prob` at least `no_speech_threshold` while `avg_logprob` is below
   `silence_logprob` (Whisper's own rule; a confident text with a high no_speech_prob stays);
2. unsure: `avg_logprob` below `min_avg_logprob`, whatever the text;
3. unsure and long: `avg_logprob` below `min_long_logprob` in a segment of `long_words` words or more
   (a run of numerals is one word: `sentence_words`).
   Over a few tokens the average is noisy (a right "Sure." on a bad line scores -1.4), over many it is
   not: noise and speech in a language the model does not know came out as fluent English sentences
   (or "BEEP BEEP BEEP BEEP") at -0.87 and below, real speech at -0.56 and above;
4. looping: gzip compression ratio above `max_compression_ratio`;
5. credits and stock phrases: a subtitle credit line ("Sottotitoli a cura di ...") goes wherever it is;
   a whole transcript that is a stock phrase nobody says on a call ("Thanks for watching", "Grazie per
   la visione") goes; one a caller may say ("Thank you.", "you") goes only when Whisper was unsure of
   it (`stock_no_speech`, `stock_logprob`): said alone on a silent line it is Whisper filling silence,
   said by a caller it is an answer.

`Transcript.confidence` is exp(average token log-probability) of the kept segments, averaged over them by
duration (0 when nothing is kept): roughly the probability Whisper gave each token it chose. Below
`UNSURE_BELOW` the hearing is unsure (DESIGN.md rule 11: ask the caller to repeat): on the benchmark's
held-out answers, 88 % of those heard right scored above it and 90 % of those heard wrong below it.

The names in `hints` (the owner, places, companies) bias the decoder as faster-whisper's `hotwords` (an
`initial_prompt` for versions without them), cut to a short prompt.

One `WhisperModel` serves every call: its `transcribe` may run in several threads at once (CTranslate2
queues the work; `num_workers` > 1 lets calls run in parallel). Its segments come from a generator that
decodes while it is iterated, so `transcribe` consumes it before returning. Nothing here logs what was
said.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import numpy as np

from models.engines import EngineError, ModelMissingError, Transcript

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

__all__ = ["SAID_ON_CALLS", "UNSURE_BELOW", "Decoded", "WhisperOptions", "WhisperStt", "build_prompt",
           "compression_ratio", "confidence", "encoder_frames", "filter_segments", "is_filler",
           "is_stock_phrase", "normalize_phrase", "segment_fault", "sentence_words", "transcript_of"]

_LOG = logging.getLogger(__name__)

PULL_HINT = "run `standin models pull` to fetch the speech-to-text model"
INSTALL_HINT = "pip install faster-whisper"
SAMPLE_RATE = 16000
WINDOW_S = 30.0  # Whisper's own window
HOP = 160  # samples per mel frame (Whisper's feature extractor); the encoder halves the frames
UNSURE_BELOW = 0.5  # a Transcript.confidence below this is unsure hearing (see the module docstring)

_COMPUTE_TYPES = frozenset({"default", "auto", "int8", "int8_float16", "int8_float32", "int8_bfloat16",
                            "int16", "float16", "bfloat16", "float32"})
_REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
_VOCABULARIES = ("vocabulary.json", "vocabulary.txt")


@dataclass(frozen=True, slots=True)
class WhisperOptions:
    """How the model is loaded and how a fragment is decoded and filtered. A threshold set to None is off."""

    device: Literal["cpu", "cuda", "auto"] = "auto"  # auto: CUDA when CTranslate2 sees a GPU
    compute_type: str | None = None  # None: int8 on CPU, float16 on CUDA (int8_float16 saves memory)
    device_index: int = 0
    cpu_threads: int = 0  # 0: CTranslate2's default (OMP_NUM_THREADS, else 4)
    num_workers: int = 1  # model replicas that decode concurrent calls in parallel
    beam_size: int = 1  # greedy
    temperatures: tuple[float, ...] = (0.0,)  # more values: faster-whisper's fallback loop
    # The hallucination filter (see the module docstring); benchmarks/whisper_noise.py measured these.
    no_speech_threshold: float | None = 0.5  # silence: no_speech_prob at least this ...
    silence_logprob: float | None = -1.1  # ... while avg_logprob is below this
    min_avg_logprob: float | None = -1.9  # any segment this unsure is dropped outright
    long_words: int = 3  # a segment of at least this many words ...
    min_long_logprob: float | None = -0.7  # ... is dropped below this avg_logprob
    max_compression_ratio: float | None = 2.4  # gzip ratio: higher means Whisper is repeating itself
    drop_stock_phrases: bool = True
    stock_no_speech: float | None = 0.7  # a stock phrase a caller may say goes at this no_speech_prob
    stock_logprob: float | None = -0.8  # ... or below this avg_logprob
    max_prompt_chars: int = 120  # hints beyond this are left out of the prompt
    # The encoder's window (see `encoder_frames`): a fragment and `window_pad_s` of padding, at least
    # `min_window_s`; None, or a fragment too long for it: Whisper's fixed 30 s window.
    min_window_s: float | None = 15.0
    window_pad_s: float = 2.0

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"whisper device must be 'cpu', 'cuda' or 'auto', not {self.device!r}")
        if self.compute_type is not None and self.compute_type not in _COMPUTE_TYPES:
            raise ValueError(f"whisper compute_type {self.compute_type!r} is not one of "
                             f"{', '.join(sorted(_COMPUTE_TYPES))}")
        if (self.beam_size < 1 or self.num_workers < 1 or self.long_words < 1 or self.cpu_threads < 0
                or self.device_index < 0):
            raise ValueError("whisper beam_size, num_workers and long_words must be >= 1, cpu_threads and "
                             "device_index >= 0")
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ValueError(f"whisper temperatures must be one or more values >= 0, "
                             f"not {self.temperatures!r}")
        if self.max_prompt_chars < 0:
            raise ValueError("whisper max_prompt_chars must be >= 0")
        window = self.min_window_s
        if (window is not None and not 1.0 <= window <= WINDOW_S) or self.window_pad_s < 0:
            raise ValueError(f"whisper min_window_s must be None or 1 to {WINDOW_S:g} s, window_pad_s >= 0")


# --------------------------------------------------------------------------- hallucination filter


class SegmentLike(Protocol):
    """What the filter reads of a segment (faster-whisper's `Segment` has all of it)."""

    @property
    def text(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def no_speech_prob(self) -> float: ...
    @property
    def compression_ratio(self) -> float: ...


S = TypeVar("S", bound=SegmentLike)

# Whole transcripts that, alone, are Whisper filling silence (normalised: see `normalize_phrase`).
_STOCK_PHRASES: dict[str, frozenset[str]] = {
    "en": frozenset({"you", "thank you", "thank you very much", "thanks for watching",
                     "thank you for watching", "thank you so much for watching", "please subscribe",
                     "like and subscribe"}),
    "it": frozenset({"grazie per la visione", "grazie a tutti", "grazie per aver guardato",
                     "grazie per aver guardato il video", "iscriviti al canale", "ciao a tutti",
                     "sottotitoli"}),
    "de": frozenset({"danke furs zuschauen", "vielen dank furs zuschauen", "bis zum nachsten mal"}),
    "fr": frozenset({"merci davoir regarde", "merci davoir regarde cette video", "abonnez vous"}),
    "es": frozenset({"gracias por ver", "gracias por ver el video", "suscribete al canal"}),
}
# The stock phrases a caller may really say: they go only when Whisper was not sure it heard them.
SAID_ON_CALLS = frozenset({"you", "thank you", "thank you very much"})
# Subtitle credit lines, matched as the start of a segment in any language.
_CREDIT_PREFIXES: tuple[str, ...] = (
    "sottotitoli a cura di", "sottotitoli creati dalla comunita amara org", "sottotitoli e revisione",
    "sottotitoli di", "sottotitolato da", "a cura di qtss",
    "subtitles by", "subtitled by", "transcription by", "captions by", "translated by",
    "untertitel der amara org community", "untertitel im auftrag", "untertitelung",
    "sous titres realises par", "sous titrage", "subtitulos realizados por", "subtitulado por",
    "amara org",
)
_APOSTROPHES = re.compile(r"['’‘`´]")
_NOT_WORD = re.compile(r"[^\w]+")


def normalize_phrase(text: str) -> str:
    """Lower case, no accents, no apostrophes, other punctuation and symbols as single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    bare = _APOSTROPHES.sub("", bare).replace("_", " ")
    return _NOT_WORD.sub(" ", bare).strip()


def _is_credit_line(normalized: str) -> bool:
    return any(normalized == p or normalized.startswith(p + " ") for p in _CREDIT_PREFIXES)


def is_stock_phrase(text: str, language: str) -> bool:
    """Whether `text`, as a whole transcript, is a known silence hallucination: a stock phrase of
    `language` or of English (Whisper falls back to English ones), a credit line, or no word at all."""
    normalized = normalize_phrase(text)
    if not normalized or _is_credit_line(normalized):
        return True
    phrases = _STOCK_PHRASES.get(language, frozenset()) | _STOCK_PHRASES["en"]
    return normalized in phrases


def sentence_words(text: str) -> int:
    """How many words `text` has for rule 3, a run of numerals counting as one: a dictated "0 3 3 1" is
    one number, not the fluent sentence the rule is about. tiny.en wrote digit groups it heard right
    (espeak and piper voices dictating phone numbers) at -0.7 to -1.0; rule 3 dropped them."""
    count, numeral = 0, False
    for word in normalize_phrase(text).split():
        if not (word.isdigit() and numeral):
            count += 1
        numeral = word.isdigit()
    return count


def segment_fault(s: SegmentLike, options: WhisperOptions) -> str | None:
    """Why the segment is not worth keeping (rules 1-4 of the module docstring), or None to keep it."""
    o = options
    lp = s.avg_logprob
    if (o.no_speech_threshold is not None and s.no_speech_prob >= o.no_speech_threshold
            and (o.silence_logprob is None or lp < o.silence_logprob)):
        return "silence"
    if o.min_avg_logprob is not None and lp < o.min_avg_logprob:
        return "unsure"
    if (o.min_long_logprob is not None and lp < o.min_long_logprob
            and sentence_words(s.text) >= o.long_words):
        return "unsure-long"
    if o.max_compression_ratio is not None and s.compression_ratio > o.max_compression_ratio:
        return "looping"
    if o.drop_stock_phrases and _is_credit_line(normalize_phrase(s.text)):
        return "credit"
    return None


def filter_segments(segments: Iterable[S], options: WhisperOptions) -> list[S]:
    """The segments worth keeping (see `segment_fault`), in order."""
    return [s for s in segments if segment_fault(s, options) is None]


def is_filler(text: str, kept: Sequence[SegmentLike], language: str, options: WhisperOptions) -> bool:
    """Whether the whole transcript `text` (of the `kept` segments) is Whisper filling silence (rule 5):
    a stock phrase nobody says on a call, or one a caller could say heard without conviction (the
    least sure segment at `stock_no_speech` or below `stock_logprob`)."""
    if not options.drop_stock_phrases or not is_stock_phrase(text, language):
        return False
    normalized = normalize_phrase(text)
    if normalized not in SAID_ON_CALLS or not kept:
        return True
    o = options
    return ((o.stock_no_speech is not None and max(s.no_speech_prob for s in kept) >= o.stock_no_speech)
            or (o.stock_logprob is not None and min(s.avg_logprob for s in kept) < o.stock_logprob))


def transcript_of(segments: Iterable[S], language: str, options: WhisperOptions) -> tuple[list[S], str]:
    """The segments kept and the transcript they make, after the whole filter (rules 1-5)."""
    kept = filter_segments(segments, options)
    text = " ".join(" ".join(s.text.split()) for s in kept).strip()
    if not normalize_phrase(text) or is_filler(text, kept, language, options):
        return [], ""
    return kept, text


def confidence(segments: Sequence[SegmentLike]) -> float:
    """exp(average token log-probability), averaged over segments weighted by duration; 0 when none.
    Measured against the answers the filter keeps, this alone told right from wrong hearing better than
    with no_speech_prob folded in (which the filter has already used): see the module docstring."""
    if not segments:
        return 0.0
    weights = [max(s.end - s.start, 0.0) for s in segments]
    if sum(weights) <= 0.0:
        weights = [1.0] * len(segments)
    mean = sum(w * math.exp(min(s.avg_logprob, 0.0)) for w, s in zip(weights, segments, strict=True))
    return min(max(mean / sum(weights), 0.0), 1.0)


def build_prompt(hints: Sequence[str], max_chars: int) -> str | None:
    """The hints as one short comma-separated prompt ending in a period: blanks and repeats dropped,
    whole names only. Whisper writes in the style of its prompt: after a bare "Marco" tiny.en ended 47
    of 84 finished caller lines with a mark, after "Marco." 83 (none: 73), and the turn judge reads
    those marks."""
    seen: set[str] = set()
    parts: list[str] = []
    length = 0
    for hint in hints:
        name = " ".join(str(hint).split())
        if not name or name.casefold() in seen:
            continue
        extra = len(name) + (2 if parts else 1)
        if length + extra > max_chars:
            break
        seen.add(name.casefold())
        parts.append(name)
        length += extra
    return ", ".join(parts).rstrip(".") + "." if parts else None


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True, slots=True)
class Decoded:
    """One segment as Whisper decoded it, with the scores the filter reads (a `SegmentLike`)."""

    text: str
    start: float
    end: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def check_model_dir(model_dir: Path) -> None:
    """Raise `ModelMissingError` naming the first file faster-whisper needs that `model_dir` lacks."""
    if not model_dir.is_dir():
        raise ModelMissingError(f"whisper model directory {str(model_dir)!r} does not exist; {PULL_HINT}")
    for name in _REQUIRED_FILES:
        if not (model_dir / name).is_file():
            raise ModelMissingError(f"whisper model file {str(model_dir / name)!r} is missing; {PULL_HINT}")
    if not any((model_dir / name).is_file() for name in _VOCABULARIES):
        raise ModelMissingError(f"whisper model file {str(model_dir / _VOCABULARIES[0])!r} is missing; "
                                f"{PULL_HINT}")


class WhisperStt:
    """`SpeechToText` backed by one faster-whisper model, shared by every call."""

    def __init__(self, model_dir: str | os.PathLike[str], options: WhisperOptions | None = None) -> None:
        self.options = options = options or WhisperOptions()
        self.model_dir = path = Path(model_dir)
        check_model_dir(path)
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise EngineError(f"faster-whisper is not installed ({exc}); {INSTALL_HINT}") from exc

        device = options.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute_type = options.compute_type or ("float16" if device == "cuda" else "int8")
        try:
            model = WhisperModel(str(path), device=device, device_index=options.device_index,
                                 compute_type=compute_type, cpu_threads=options.cpu_threads,
                                 num_workers=options.num_workers, local_files_only=True)
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for many unrelated causes
            raise EngineError(f"whisper model {str(path)!r} could not be loaded on {device} as "
                              f"{compute_type} ({exc}); check the device and compute_type, or fetch the "
                              f"model again: {PULL_HINT}") from exc
        mels = model.feature_extractor.mel_filters.shape[0]
        if model.model.n_mels != mels:
            raise ModelMissingError(f"whisper model {str(path)!r} takes {model.model.n_mels} mel bins but "
                                    f"its preprocessor_config.json is missing or says {mels}; {PULL_HINT}")
        self.model: WhisperModel = model
        self.device, self.compute_type = device, compute_type
        tokenizer = model.hf_tokenizer  # a 99-language model lacks <|yue|>, which faster-whisper lists
        self.languages = frozenset(c for c in model.supported_languages
                                   if not model.model.is_multilingual
                                   or tokenizer.token_to_id(f"<|{c}|>") is not None)
        self._hotwords = "hotwords" in inspect.signature(model.transcribe).parameters

    def warm_up(self) -> None:
        """Decode one second of silence, so the first caller pays no first-run cost."""
        self.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), start_s=0.0, language="en")

    def transcribe(self, audio: np.ndarray, *, start_s: float, language: str,
                   hints: Sequence[str] = ()) -> Transcript:
        """Transcribe float32 mono 16 kHz `audio` in `language` (an ISO 639-1 code; "it-IT" reads as
        "it"). `start_s` is not needed: segment times are not reported."""
        del start_s
        lang = self._language(language)
        decoded = self.decode(audio, language=lang, hints=hints)
        kept, text = transcript_of(decoded, lang, self.options)
        _LOG.debug("whisper: %.2f s of audio, %d segment(s), %d kept", audio.size / SAMPLE_RATE,
                   len(decoded), len(kept))
        return Transcript(text=text, confidence=confidence(kept))

    def decode(self, audio: np.ndarray, *, language: str, hints: Sequence[str] = ()) -> list[Decoded]:
        """Every segment Whisper decodes from `audio`, with its scores, before any filtering (what
        `transcribe` filters; benchmarks/whisper_noise.py measures these). A fragment that fits a short
        window (`encoder_frames`) is decoded here as one segment; a longer one by faster-whisper, asked to
        skip nothing: its thresholds only choose when to retry at the next temperature."""
        lang = self._language(language)
        samples = _as_samples(audio)
        if samples.size == 0:
            return []
        o = self.options
        prompt = build_prompt(hints, o.max_prompt_chars)
        frames = encoder_frames(samples.size, o)
        if frames is not None:
            return [self._decode_window(samples, frames, lang, prompt)]
        bias = {"hotwords": prompt} if self._hotwords else {"initial_prompt": prompt}
        segments, _info = self.model.transcribe(
            samples, language=lang, task="transcribe", beam_size=o.beam_size,
            temperature=list(o.temperatures), compression_ratio_threshold=o.max_compression_ratio,
            log_prob_threshold=o.silence_logprob, no_speech_threshold=None,
            condition_on_previous_text=False, without_timestamps=True, word_timestamps=False,
            vad_filter=False, suppress_blank=True, suppress_tokens=[-1], log_progress=False, **bias)
        # the generator decodes as it is iterated: finish here, in this thread
        return [Decoded(s.text, s.start, s.end, s.avg_logprob, s.no_speech_prob, s.compression_ratio)
                for s in segments]

    def window(self, samples: np.ndarray, frames: int) -> np.ndarray:
        """The encoder's input for `samples`: `frames` log-mel frames, shape (1, mels, frames), of the
        fragment followed by digital silence, as OpenAI's own code prepares a window (the log-mel of the
        audio padded with zeros, whose floor is 8 decades under its peak). faster-whisper pads the log-mel
        itself with zeros instead, a level louder than silence: in windows under 30 s that cost short
        answers ("No.", "Sure.") and brought "I'm sorry." out of line noise (benchmarks/whisper_noise.py,
        README)."""
        extractor = self.model.feature_extractor
        audio = np.zeros(frames * extractor.hop_length, dtype=np.float32)
        audio[:min(samples.size, audio.size)] = samples[:audio.size]
        return np.ascontiguousarray(extractor(audio, padding=0)[None, :, :frames], dtype=np.float32)

    def _decode_window(self, samples: np.ndarray, frames: int, language: str, prompt: str | None) -> Decoded:
        """`samples` decoded in a window of `frames` mel frames (`window`)."""
        features = self.window(samples, frames)
        return self.decode_features(features, samples.size / SAMPLE_RATE, language, prompt)

    def decode_features(self, features: np.ndarray, duration: float, language: str,
                        prompt: str | None) -> Decoded:
        """One pass of the decoder (greedy, or beam search) over the encoded `features`, as faster-whisper
        decodes a window without timestamps, and its temperature fallback: the first result neither
        looping nor below `silence_logprob`, else the likeliest that does not loop."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model, o = self.model, self.options
        encoded = model.encode(features)
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                              language=language)
        prompt_ids = model.get_prompt(tokenizer, [], without_timestamps=True, hotwords=prompt)
        suppressed = list(get_suppressed_tokens(tokenizer, [-1]) or ())
        tried: list[Decoded] = []
        for temperature in o.temperatures:
            search: dict[str, float | int] = {"beam_size": o.beam_size}
            if temperature > 0:
                search = {"beam_size": 1, "num_hypotheses": 5, "sampling_topk": 0,
                          "sampling_temperature": temperature}
            result = model.model.generate(encoded, [prompt_ids], max_length=model.max_length,
                                          return_scores=True, return_no_speech_prob=True, suppress_blank=True,
                                          suppress_tokens=suppressed, **search)[0]
            tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
            text = tokenizer.decode(tokens).strip()
            decoded = Decoded(text, 0.0, duration, result.scores[0] * len(tokens) / (len(tokens) + 1),
                              result.no_speech_prob, compression_ratio(text))
            cap = o.max_compression_ratio
            looping = cap is not None and decoded.compression_ratio > cap
            unsure = o.silence_logprob is not None and decoded.avg_logprob < o.silence_logprob
            if not looping and not unsure:
                return decoded
            tried.append(decoded)
        fair = [d for d in tried if o.max_compression_ratio is None
                or d.compression_ratio <= o.max_compression_ratio]
        return max(fair or tried, key=lambda d: d.avg_logprob)

    def _language(self, language: str) -> str:
        code = re.split(r"[-_]", language.strip(), maxsplit=1)[0].lower()
        if code in self.languages:
            return code
        if self.languages == {"en"}:
            raise EngineError(f"whisper model {str(self.model_dir)!r} is English-only and cannot transcribe "
                              f"{language!r}; configure a multilingual model")
        raise EngineError(f"whisper does not know the language {language!r}; use an ISO 639-1 code it "
                          f"supports, e.g. 'en', 'it', 'de'")


def encoder_frames(samples: int, options: WhisperOptions) -> int | None:
    """The mel frames of the window `samples` (at 16 kHz) are encoded in: the fragment and
    `window_pad_s`, rounded up to a whole second, at least `min_window_s`; None when that is no shorter
    than Whisper's own 30 s (or `min_window_s` is None), which faster-whisper's loop then handles. The
    encoder's cost grows faster than its window (tiny.en on two cores: 227 ms for 30 s, 52 ms for 15 s,
    31 ms for 10 s). On benchmarks/whisper_noise.py's short answers, 10 s windows heard fewer of them right
    than 15 s ones (141 against 144 of 160 for tiny.en), so the shortest window is 15 s."""
    if options.min_window_s is None:
        return None
    seconds = max(math.ceil(samples / SAMPLE_RATE + options.window_pad_s), options.min_window_s)
    if seconds >= WINDOW_S:
        return None
    return round(seconds * SAMPLE_RATE / HOP)


def compression_ratio(text: str) -> float:
    """How much zlib shrinks `text` (faster-whisper's measure of a looping decode)."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def _as_samples(audio: np.ndarray) -> np.ndarray:
    if audio.ndim != 1:
        raise ValueError(f"whisper takes mono audio (a 1-D array), got shape {audio.shape}")
    if audio.dtype.kind != "f":
        raise ValueError(f"whisper takes float audio in [-1, 1], got dtype {audio.dtype}; convert int16 "
                         f"with x / 32768")
    return np.ascontiguousarray(audio, dtype=np.float32)
