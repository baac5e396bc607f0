"""Text to speech with piper voices (VITS exported to ONNX, run by onnxruntime), with per-word sample spans.

A voice is a local `NAME.onnx` and its `NAME.onnx.json`, one per language; nothing is downloaded here
(`standin models pull` fetches them). Text is cut into clauses like the espeak-ng engine does, and each
clause becomes one chunk:

1. piper's phonemizer (its own espeak-ng, a process-wide singleton: every use holds `_lock`) turns the
   clause into phonemes, with a space phoneme between words and the clause's punctuation kept;
2. the voice maps them to ids (each phoneme followed by the pad id, as piper does) and runs the model
   with `include_alignments`: piper marks the model's `w_ceil` tensor (frames per id) as an output, so
   each id comes back with its number of samples;
3. the phoneme words are mapped back onto the clause's whitespace-separated tokens: each token is
   phonemized on its own too, which says how many phoneme words it makes ("10:30" makes two); when the
   counts add up the words are dealt out in order, otherwise (espeak-ng ran words together) a character
   alignment of the two phoneme strings decides. A token that makes no phoneme word of its own ("--")
   shares the span before it (the one after it at the start of a clause).

A word's span runs from its first to its last sounding phoneme, so spaces, pauses at punctuation and the
clause's trailing silence belong to no word.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.engines import EngineError, ModelMissingError, SpeechChunk, WordSpan
from models.tts_espeak import split_clauses

if TYPE_CHECKING:
    from piper import PiperVoice, SynthesisConfig

_LOG = logging.getLogger(__name__)

PULL_HINT = "run `standin models pull` to fetch it"
WARM_UP_TEXT = "1, 2, 3."  # numbers: every espeak-ng language can say them

_PAD, _BOS, _EOS = "_", "^", "$"  # piper's special phonemes
_STRESS = frozenset("ˈˌ")
_TOKEN = re.compile(r"\S+")
_SUPPORTED_PHONEMES = ("espeak", "text")  # the other types need extra packages or download at run time

_lock = threading.Lock()  # piper's espeak-ng (phonemizer) is one per process


@dataclass(frozen=True, slots=True)
class PiperOptions:
    """`voices` maps a language ("en", "it") to its voice's `.onnx` file (the `.onnx.json` beside it).
    Scales left at None take the voice's own values; `use_cuda` None means CUDA when onnxruntime has it."""

    voices: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)
    length_scale: float | None = None  # > 1 speaks slower
    noise_scale: float | None = None
    noise_w: float | None = None
    speaker_id: int | None = None  # multi-speaker voices only; None: the voice's default speaker
    use_cuda: bool | None = None


class PiperTts:
    """`TextToSpeech` with one piper voice per language, each loaded on first use (or by `warm_up`)."""

    def __init__(self, options: PiperOptions) -> None:
        if not options.voices:
            raise EngineError("no piper voices are configured; give at least one language -> .onnx path")
        for name, value in (("length_scale", options.length_scale), ("noise_scale", options.noise_scale),
                            ("noise_w", options.noise_w)):
            if value is not None and not value > 0:
                raise ValueError(f"piper {name} must be positive, not {value!r}")
        self.options = options
        self._paths: dict[str, Path] = {}
        for language, path in options.voices.items():
            self._paths[_language_key(language)] = _check_files(Path(path).expanduser())
        self._voices: dict[str, _Voice] = {}
        self._load_lock = threading.Lock()

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._paths)

    def synthesize(self, text: str, *, language: str) -> Iterator[SpeechChunk]:
        """One chunk per clause of `text`, made as the caller iterates. An unknown language or an
        unusable voice raises here, before anything is iterated."""
        voice = self._voice(language)
        return (voice.speak(clause) for clause in split_clauses(text))

    def warm_up(self) -> None:
        """Load every configured voice and synthesise one short sentence with it."""
        for language in self._paths:
            for _ in self.synthesize(WARM_UP_TEXT, language=language):
                pass

    def speaks(self, language: str) -> bool:
        """Whether a voice is configured for `language`."""
        return self._key(language) is not None

    def _key(self, language: str) -> str | None:
        wanted = _language_key(language)
        key = next((k for k in (wanted, wanted.split("-")[0]) if k in self._paths), None)
        if key is None:  # "en" finds a voice configured as "en-us"
            key = next((k for k in self._paths if k.split("-")[0] == wanted.split("-")[0]), None)
        return key

    def _voice(self, language: str) -> _Voice:
        key = self._key(language)
        if key is None:
            raise EngineError(f"no piper voice for language {language!r}; configured languages: "
                              f"{', '.join(self._paths)}")
        with self._load_lock:
            if key not in self._voices:
                self._voices[key] = _Voice(_check_files(self._paths[key]), self.options)
            return self._voices[key]


def _language_key(language: str) -> str:
    return language.strip().lower().replace("_", "-")


def _check_files(model: Path) -> Path:
    config = _config_path(model)
    for path in (model, config):
        if not path.is_file():
            raise ModelMissingError(f"piper voice file {str(path)!r} does not exist; {PULL_HINT}")
    return model


def _config_path(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def use_cuda(option: bool | None) -> bool:
    """Whether to run on onnxruntime's CUDA provider: `option`, or (None) whether it is available."""
    import onnxruntime

    available = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if option and not available:
        raise EngineError("use_cuda is set but this onnxruntime has no CUDA provider; install "
                          "onnxruntime-gpu (and CUDA) or leave use_cuda unset")
    return available if option is None else option


# --------------------------------------------------------------------------- one voice


class _Voice:
    def __init__(self, path: Path, options: PiperOptions) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise EngineError("piper voices need the piper-tts package: `pip install piper-tts`") from exc
        if importlib.util.find_spec("onnx") is None:
            raise EngineError("piper word timings need the onnx package (piper reads the model's "
                              "phoneme durations through it): `pip install onnx`")
        cuda = use_cuda(options.use_cuda)
        try:
            voice = PiperVoice.load(path, config_path=_config_path(path), use_cuda=cuda,
                                    include_alignments=True)
        except Exception as exc:  # onnx, onnxruntime and json raise several unrelated types
            raise ModelMissingError(f"piper voice {str(path)!r} could not be loaded ({exc}); "
                                    f"{PULL_HINT} again") from exc
        config = voice.config
        if config.phoneme_type.value not in _SUPPORTED_PHONEMES:
            raise EngineError(f"piper voice {str(path)!r} uses {config.phoneme_type.value!r} phonemes; "
                              f"standin supports voices with {' or '.join(_SUPPORTED_PHONEMES)} phonemes")
        speaker = options.speaker_id
        if speaker is not None and config.num_speakers > 1 and not 0 <= speaker < config.num_speakers:
            raise EngineError(f"piper voice {str(path)!r} has speakers 0..{config.num_speakers - 1}, "
                              f"not {speaker}")
        self.path = path
        self.sample_rate: int = config.sample_rate
        self.aligned = len(voice.session.get_outputs()) > 1
        if not self.aligned:
            _LOG.warning("piper voice %s exposes no phoneme durations; word spans are estimated", path)
        self._voice: PiperVoice = voice
        self._config: SynthesisConfig = SynthesisConfig(
            speaker_id=speaker, length_scale=options.length_scale, noise_scale=options.noise_scale,
            noise_w_scale=options.noise_w)
        self._id_map: Mapping[str, Sequence[int]] = config.phoneme_id_map
        self._unknown: set[str] = set()
        self._token_words = lru_cache(maxsize=4096)(self._token_words_uncached)

    def speak(self, clause: str) -> SpeechChunk:
        tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(clause)]
        with _lock:
            phonemes = self._phonemize(clause)
            expected = [self._token_words(clause[a:b]) for a, b in tokens]
        words = phoneme_words(phonemes)
        if not words:
            return SpeechChunk(np.zeros(0, np.int16), self.sample_rate, (WordSpan(clause, 0, 0),))

        ids, bounds = self._ids(phonemes)
        result: Any = self._voice.phoneme_ids_to_audio(ids, self._config, include_alignments=True)
        audio, id_samples = result
        audio = _to_int16(np.asarray(audio, dtype=np.float32).reshape(-1))
        if id_samples is None or len(id_samples) != len(ids):  # no durations: spread evenly
            edges = np.rint(np.linspace(0, len(audio), len(ids) + 1)).astype(np.int64)
        else:
            edges = np.concatenate([[0], np.cumsum(np.asarray(id_samples, dtype=np.int64))])

        spans = []
        for first, last, word_first, word_last in group_tokens(expected, [w.text for w in words]):
            start = int(edges[bounds[words[word_first].first][0]])
            end = int(edges[bounds[words[word_last].last][1]])
            start, end = min(start, len(audio)), min(end, len(audio))
            spans.append(WordSpan(clause[tokens[first][0]:tokens[last][1]], start, max(start, end)))
        return SpeechChunk(audio, self.sample_rate, tuple(spans))

    def _phonemize(self, text: str) -> list[str]:
        """The phonemes of `text`, its sentences joined by a space; the caller holds `_lock`."""
        try:
            sentences = self._voice.phonemize(text)
        except Exception as exc:  # espeak-ng's bridge raises RuntimeError, unknown voices others
            raise EngineError(f"piper could not phonemize with voice {str(self.path)!r} "
                              f"(espeak voice {self._voice.config.espeak_voice!r}): {exc}") from exc
        phonemes: list[str] = []
        for sentence in sentences:
            if phonemes and phonemes[-1] != " ":
                phonemes.append(" ")
            phonemes.extend(sentence)
        return phonemes

    def _token_words_uncached(self, token: str) -> tuple[str, ...]:
        return tuple(w.text for w in phoneme_words(self._phonemize(token)))

    def _ids(self, phonemes: list[str]) -> tuple[list[int], list[tuple[int, int]]]:
        """Phoneme ids as piper makes them (BOS, pad, each phoneme and a pad, EOS), and for each
        phoneme the range of its ids (its pad included; empty for a phoneme the voice lacks)."""
        pad = list(self._id_map[_PAD])
        ids = [*self._id_map[_BOS], *pad]
        bounds = []
        for phoneme in phonemes:
            start = len(ids)
            if phoneme in self._id_map:
                ids += [*self._id_map[phoneme], *pad]
            elif phoneme not in self._unknown:
                self._unknown.add(phoneme)
                _LOG.warning("piper voice %s has no id for phoneme %r; it is left out", self.path, phoneme)
            bounds.append((start, len(ids)))
        ids += self._id_map[_EOS]
        return ids, bounds


def _to_int16(audio: np.ndarray) -> np.ndarray:
    """piper's own output scaling: peak-normalised, then to int16."""
    peak = float(np.max(np.abs(audio), initial=0.0))
    if not np.isfinite(peak) or peak < 1e-8:
        return np.zeros(len(audio), np.int16)
    return np.rint(np.clip(audio / peak, -1.0, 1.0) * 32767.0).astype(np.int16)


# --------------------------------------------------------------------------- phoneme words -> tokens


@dataclass(frozen=True, slots=True)
class PhonemeWord:
    """A word of a phoneme list: the indices of its first and last sounding phoneme, and its sounding
    phonemes without stress marks (for comparison)."""

    first: int
    last: int
    text: str


def _sounding(phoneme: str) -> bool:
    return not all(unicodedata.category(c).startswith(("P", "Z")) for c in phoneme)


def phoneme_words(phonemes: Sequence[str]) -> list[PhonemeWord]:
    """The space-separated words of `phonemes` that have something to say (punctuation trimmed)."""
    words = []
    start = 0
    for i, phoneme in enumerate([*phonemes, " "]):
        if phoneme != " ":
            continue
        sounding = [j for j in range(start, i) if _sounding(phonemes[j])]
        if sounding:
            text = "".join(c for j in sounding for c in phonemes[j] if c not in _STRESS)
            words.append(PhonemeWord(sounding[0], sounding[-1], text))
        start = i + 1
    return words


def group_tokens(expected: Sequence[Sequence[str]], actual: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """Spans of tokens and the phoneme words they own: (first token, last token, first word, last word),
    in order, covering every token and every word once. `expected[i]` is what token i says on its own
    (phoneme words, none for punctuation), `actual` the words the whole clause says."""
    if not expected:
        return []
    if not actual:
        raise ValueError("a clause with tokens needs at least one phoneme word")
    if sum(map(len, expected)) == len(actual):
        owner = [i for i, said in enumerate(expected) for _ in said]
    else:
        owner = _align(["".join(said) for said in expected], actual)

    groups: list[list[int]] = []  # [first token, last token, first word, last word]
    for word, token in enumerate(owner):
        if groups and groups[-1][1] >= token:
            groups[-1][3] = word
        else:
            groups.append([token, token, word, word])
    groups[0][0] = 0  # tokens before the first word's owner join it
    for before, after in itertools.pairwise(groups):  # tokens without words join the span before them
        before[1] = after[0] - 1
    groups[-1][1] = len(expected) - 1
    return [(a, b, c, d) for a, b, c, d in groups]


def _align(expected: Sequence[str], actual: Sequence[str]) -> list[int]:
    """For each word of `actual`, the token of `expected` most of its characters align with (an edit
    distance alignment of the joined strings), never going back."""
    source = "".join(expected)
    target = "".join(actual)
    token_of = [i for i, text in enumerate(expected) for _ in text]
    word_of = [k for k, text in enumerate(actual) for _ in text]
    rows, cols = len(source) + 1, len(target) + 1
    cost = [list(range(cols))]
    for i in range(1, rows):
        row = [i] + [0] * (cols - 1)
        above = cost[-1]
        for j in range(1, cols):
            row[j] = min(above[j - 1] + (source[i - 1] != target[j - 1]), above[j] + 1, row[j - 1] + 1)
        cost.append(row)

    votes: list[dict[int, int]] = [{} for _ in actual]
    i, j = rows - 1, cols - 1
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + (source[i - 1] != target[j - 1]):
            ballot = votes[word_of[j - 1]]
            ballot[token_of[i - 1]] = ballot.get(token_of[i - 1], 0) + 1
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1

    # the most votes, the earlier token on a tie; a word with none goes with the word before it
    chosen = [max(sorted(v.items()), key=lambda item: item[1])[0] if v else None for v in votes]
    previous = next((t for t in chosen if t is not None), 0)
    owner = []
    for token in chosen:
        previous = max(previous, previous if token is None else token)
        owner.append(previous)
    return owner
