"""The material benchmarks/whisper_noise.py decodes, and the decoding: non-speech (silence, hiss, line
noise, music on hold, tones, SIPp's pcaps), short answers in espeak-ng and piper voices, real recordings;
each cut the way a call cuts it and decoded by the real `WhisperStt`, one row of segment scores per piece.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SIPP = Path("/usr/share/sip-tester")
sys.path.insert(0, str(ROOT))

from models.manager import default_models_dir  # noqa: E402
from models.stt_whisper import WhisperOptions, WhisperStt  # noqa: E402
from server.audio import CALL_RATE, read_audio, resample, to_float  # noqa: E402
from tests.models import whisper_material as mat  # noqa: E402

MODELS = (("tiny.en", "en"), ("base", "en"), ("base", "it"))
NEGATIVE = ("silence", "hiss", "noise", "music", "tones", "pcap")
POSITIVE = ("answer", "speech")

# What thresholds are chosen on ("choose") and what only checks them ("holdout").
SPLIT: dict[str, dict[str, tuple[Any, ...]]] = {
    "noise": {"choose": ("cafe", "office", "babble"),
              "holdout": ("dishes", "exercise_bike", "freesound_573577")},
    "voices_en": {"choose": (("en-us+m3", 140), ("en-gb+f2", 175), ("en-gb-scotland+m1", 140),
                             ("en-us+f4", 175)),
                  "holdout": (("en-gb-x-rp+f3", 140), ("en-us-nyc+m5", 175), ("en-029+f1", 140),
                              ("en-us+klatt4", 175))},
    "voices_it": {"choose": (("it+m1", 140), ("it+f2", 175)), "holdout": (("it+f4", 140), ("it+m3", 175))},
    "speech": {"choose": ("jfk", "spk1_snt1", "ldc93s1_8k"),
               "holdout": ("quilter", "spk1_snt2", "voxconverse_8k")},
}
PHRASES = {"en": ("Yes.", "No.", "Thank you.", "Okay.", "Bye.", "Thanks.", "Sure.", "Hello?"),
           "it": ("Sì.", "No.", "Grazie.", "Va bene.", "Ciao.", "Pronto?")}
SPEECH_TEXT = {
    "jfk": "And so my fellow Americans, ask not what your country can do for you, ask what you can do for "
           "your country.",
    "quilter": "Mr. Quilter is the apostle of the middle classes and we are glad to welcome his gospel.",
    "spk1_snt1": "THE CHILD ALMOST HURT THE SMALL DOG",
    "spk1_snt2": "DROP THE TUE WHEN YOU ADD THE FIGURES",
    "ldc93s1_8k": "She had your dark suit in greasy wash water all year.",
}
SNRS = (20.0, 15.0, 10.0)
MUSIC = (("sine", 8), ("square", 12), ("piano", 16), ("pad", 20), ("bell", 25), ("organ", 30))
CHUNK_S, MAX_CHUNKS, MAX_DIRECT_S = 3.0, 4, 30.0
VOX_SECONDS = 120

STT = WhisperOptions(device="cpu", compute_type="int8", cpu_threads=2)  # the filter's own defaults


@dataclass(frozen=True)
class Item:
    name: str
    cls: str
    split: str
    language: str  # the call's language: "en" items go to the English models, "it" to base in Italian
    audio: np.ndarray  # int16, 16 kHz
    ref: str = ""  # what was said, when known


# --------------------------------------------------------------------------- material


def negatives(rng: np.random.Generator) -> Iterator[Item]:
    for i, seconds in enumerate((1, 3, 10)):
        yield Item(f"zeros_{seconds}s", "silence", ("choose", "holdout")[i % 2], "*",
                   np.zeros(seconds * CALL_RATE, dtype=np.int16))
    yield Item("alaw_idle_3s", "silence", "holdout", "*",
               mat.phone_line(np.zeros(3 * CALL_RATE, dtype=np.int16), CALL_RATE, "alaw"))
    for i, (level, pink, seconds) in enumerate(((-70, False, 3), (-60, True, 10), (-60, False, 3),
                                                (-50, True, 3), (-50, False, 10), (-40, False, 3))):
        kind = "pink" if pink else "white"
        yield Item(f"hiss_{kind}_{-level}dB_{seconds}s", "hiss", ("choose", "holdout")[i % 2], "*",
                   mat.phone_line(mat.hiss(seconds, level, rng, pink), CALL_RATE, ("ulaw", "alaw")[i % 2]))
    for split, names in SPLIT["noise"].items():
        for name in names:
            x = read_audio(SHARED / "audio" / "noise" / f"{name}.wav")
            yield Item(f"{name}_own", "noise", split, "*", x)
            for level in (-45, -35):
                law = "alaw" if level == -35 else "ulaw"
                yield Item(f"{name}_phone_{-level}dB", "noise", split, "*",
                           mat.phone_line(mat.at_level(x, level), CALL_RATE, law))
    for i, (timbre, seconds) in enumerate(MUSIC):
        piece = mat.music(i, seconds, timbre)
        split = ("choose", "holdout")[i % 2]
        for level in (-20, -30):
            yield Item(f"moh_{timbre}_{seconds}s_{-level}dB", "music", split, "*",
                       mat.phone_line(mat.at_level(piece, level), CALL_RATE, ("ulaw", "alaw")[i % 2]))
    for i, (kind, seconds) in enumerate((("ringback_eu", 10), ("ringback_us", 12), ("busy_eu", 6))):
        yield Item(kind, "tones", ("choose", "holdout")[i % 2], "*",
                   mat.phone_line(mat.line_tone(kind, seconds), CALL_RATE, "alaw"))
    for path in sorted(SIPP.glob("*.pcap")):
        _pt, audio = mat.pcap_audio(path)
        split = "holdout" if path.name == "g711a.pcap" else "choose"
        yield Item(path.stem, "pcap", split, "*", resample(audio, mat.PHONE_RATE, CALL_RATE))


def _noises(split: str) -> list[tuple[str, np.ndarray]]:
    return [(n, read_audio(SHARED / "audio" / "noise" / f"{n}.wav")) for n in SPLIT["noise"][split]]


def answers(rng: np.random.Generator) -> Iterator[Item]:
    """Every phrase by every voice, clean and with a noise of the same split under it (SNR cycling
    20/15/10 dB); English on the mu-law line, Italian on the A-law one."""
    k = 0
    for language in ("en", "it"):
        for split, voices in SPLIT[f"voices_{language}"].items():
            noises = _noises(split)
            for voice, speed in voices:
                for phrase in PHRASES[language]:
                    speech, rate = mat.espeak(phrase, voice, speed)
                    law = "ulaw" if language == "en" else "alaw"
                    tag = f"{voice}@{speed}:{phrase}"
                    yield Item(f"{tag}:clean", "answer", split, language, mat.answer_clip(speech, rate, law),
                               phrase)
                    noise_name, noise = noises[k % len(noises)]
                    snr = SNRS[k % len(SNRS)]
                    k += 1
                    yield Item(f"{tag}:{noise_name}@{snr:g}dB", "answer", split, language,
                               mat.answer_clip(speech, rate, law, noise=noise, snr_db=snr, rng=rng), phrase)


def piper_answers(rng: np.random.Generator) -> Iterator[Item]:
    """The starter set's own voice, piper en_US-joe-medium, at two speeds: held out entirely."""
    from models.tts_piper import PiperOptions, PiperTts

    voice = default_models_dir() / "piper" / "en_US-joe-medium.onnx"
    noises = _noises("holdout")
    k = 0
    for scale in (1.0, 1.3):
        tts = PiperTts(PiperOptions(voices={"en": voice}, length_scale=scale))
        for phrase in PHRASES["en"]:
            chunks = list(tts.synthesize(phrase, language="en"))
            speech, rate = np.concatenate([c.audio for c in chunks]), chunks[0].sample_rate
            yield Item(f"joe@{scale}:{phrase}:clean", "answer", "holdout", "en",
                       mat.answer_clip(speech, rate, "ulaw"), phrase)
            noise_name, noise = noises[k % len(noises)]
            snr = SNRS[k % len(SNRS)]
            k += 1
            yield Item(f"joe@{scale}:{phrase}:{noise_name}@{snr:g}dB", "answer", "holdout", "en",
                       mat.answer_clip(speech, rate, "ulaw", noise=noise, snr_db=snr, rng=rng), phrase)


def speech_files() -> Iterator[Item]:
    """The real recordings on a mu-law line (voxconverse: its first two minutes)."""
    for split, names in SPLIT["speech"].items():
        for name in names:
            path = SHARED / "audio" / "speech" / f"{name}.wav"
            if name == "voxconverse_8k":
                x = read_audio(path, mat.PHONE_RATE)[:VOX_SECONDS * mat.PHONE_RATE]
                yield Item(name, "speech", split, "en", mat.phone_line(x, mat.PHONE_RATE, "ulaw"))
            else:
                x = read_audio(path)
                yield Item(name, "speech", split, "en", mat.phone_line(x, CALL_RATE, "ulaw"),
                           SPEECH_TEXT[name])


# --------------------------------------------------------------------------- feeding and decoding


def pieces(item: Item, vad: Any) -> Iterator[tuple[str, int, int]]:
    """(feed, start, end) of the audio handed to STT for `item`."""
    x = item.audio
    fragments = mat.vad_fragments(x, vad)
    for start, end in fragments:
        yield "vad", start, end
    if item.cls == "speech":
        for start, end in mat.vad_fragments(x, vad, cut_ms=250):  # shorter pieces of the same speech
            if (start, end) not in fragments:
                yield "vad250", start, end
    elif item.cls == "answer":
        if not fragments:  # the segmenter dropped it (too short): what its fragment would have held
            lead = round(0.4 * CALL_RATE)
            yield "direct", lead, len(x) - round(0.75 * CALL_RATE)
    else:
        whole = min(len(x), round(MAX_DIRECT_S * CALL_RATE))
        yield "direct", 0, whole
        chunk = round(CHUNK_S * CALL_RATE)
        if len(x) >= 2 * chunk:
            count = min(MAX_CHUNKS, len(x) // chunk)
            for start in np.linspace(0, len(x) - chunk, count).astype(int):
                yield "direct", int(start), int(start) + chunk


def measure(out_rows: Path, options: WhisperOptions = STT) -> list[dict[str, Any]]:
    """Decode every piece with each of MODELS under `options`, keeping the rows in `out_rows`."""
    from models.vad_silero import SileroVad

    rng = np.random.default_rng(20240610)
    t0 = time.perf_counter()
    items = [*negatives(rng), *answers(rng), *piper_answers(rng), *speech_files()]
    vad = SileroVad()
    feeds = [(item, feed, start, end) for item in items for feed, start, end in pieces(item, vad)]
    print(f"{len(items)} items, {len(feeds)} pieces of audio, made in {time.perf_counter() - t0:.0f} s",
          flush=True)
    rows: list[dict[str, Any]] = []
    for model_name, language in MODELS:
        stt = WhisperStt(default_models_dir() / "whisper" / model_name, options)
        stt.warm_up()
        todo = [f for f in feeds if f[0].language in ("*", language)]
        t1 = time.perf_counter()
        for item, feed, start, end in todo:
            audio = to_float(item.audio[start:end])
            t = time.perf_counter()
            segments = stt.decode(audio, language=language)
            rows.append({
                "model": model_name, "language": language, "item": item.name, "class": item.cls,
                "split": item.split, "feed": feed, "start_s": round(start / CALL_RATE, 2),
                "seconds": round((end - start) / CALL_RATE, 2), "ref": item.ref,
                "decode_ms": round((time.perf_counter() - t) * 1000),
                "segments": [[s.text, round(s.no_speech_prob, 4), round(s.avg_logprob, 4),
                              round(s.compression_ratio, 3), round(s.start, 2), round(s.end, 2)]
                             for s in segments],
            })
        print(f"{model_name}/{language}: {len(todo)} pieces in {time.perf_counter() - t1:.0f} s", flush=True)
        out_rows.write_text(json.dumps(rows))
    for item in items:  # whole-file word error rate of the real recordings, as recorded and on the line
        if item.cls == "speech" and item.ref:
            original = read_audio(SHARED / "audio" / "speech" / f"{item.name}.wav")
            for how, x in (("file", original), ("line", item.audio)):
                rows.extend(_wer_rows(item, how, x, options))
    out_rows.write_text(json.dumps(rows))
    return rows


_STT_CACHE: dict[str, WhisperStt] = {}


def _wer_rows(item: Item, how: str, x: np.ndarray, options: WhisperOptions) -> Iterator[dict[str, Any]]:
    for model_name, language in MODELS[:2]:
        stt = _STT_CACHE.get(model_name)
        if stt is None:
            stt = _STT_CACHE[model_name] = WhisperStt(default_models_dir() / "whisper" / model_name, options)
        segments = stt.decode(to_float(x), language=language)
        yield {"model": model_name, "language": language, "item": item.name, "class": "wer",
               "split": item.split,
               "feed": how, "start_s": 0.0, "seconds": round(len(x) / CALL_RATE, 2), "ref": item.ref,
               "decode_ms": 0,
               "segments": [[s.text, round(s.no_speech_prob, 4), round(s.avg_logprob, 4),
                             round(s.compression_ratio, 3), round(s.start, 2), round(s.end, 2)]
                            for s in segments]}
