"""The turn-taking scenarios as audio: written caller scripts read from their specs, spoken in many voices
and through several channels, each with a TSV of its phrases' exact spans (benchmarks/turn_scenarios.py
runs standin on them, benchmarks/screening.py screens them).

Specs: tests/data/scenarios/*.json. A scenario is a list of caller phrases `[pause_s, label, text]`:
the silence before the phrase, WAIT (the caller goes on) or COMPLETE (the turn is over, the bot should
answer), the words. `context` is what the bot asked just before: it is spoken as the call's greeting and
the caller starts after it; without one the greeting is empty (as in benchmarks/call_brain.py) and the
caller starts after a silent gap of GREETING_GAP_S. `rate` scales the voice's speed (a slow speaker).

Rendering: each phrase is synthesized on its own (espeak-ng voices, piper joe), trimmed to its sound,
levelled, and laid on the timeline after its pause, so the TSV beside each WAV (the shared scenarios'
format) has each phrase's exact start and end. Copies of that clean render (same timeline, same TSV):
office noise at 20 dB SNR, cafe at 15 dB, and a phone band (16 kHz -> 8 kHz -> 16 kHz). Files live in
~/.cache/standin-scenarios/<voice>/<channel>/, named by a hash of the spec, the voice and the channel, so
only what changed is made again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from models.stt_transcript import Phrase, read_transcript
from server.audio import CALL_RATE, resample

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "data" / "scenarios"
SHARED = ROOT.parent / "shared"
CACHE = Path("~/.cache/standin-scenarios").expanduser()

RENDER_VERSION = 1  # bump when the rendering changes what lands in the files
REFERENCE = {"stt": 150, "judge": 20, "llm": 150, "tts": 80}  # ms, as benchmarks/call_brain.py
GREETING_GAP_S = 1.0  # silence before the caller when the call has no greeting
BOT_RATE = 175  # the bot's espeak-ng rate (the config's default): how long a context question lasts
TAIL_S = 0.5
LEVEL_DBFS = -23.0  # speech RMS over its sounding frames
LABELS = ("WAIT", "COMPLETE")


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    language: str
    cls: str
    phrases: tuple[tuple[float, str, str], ...]  # (pause_s before, label, text)
    context: str = ""
    rate: float = 1.0
    about: str = ""
    number: str = ""  # the phone number dictated, as its digits: the read-back must say them
    region: str = ""  # the owner's country ([contacts] region); "" = the language's, where it has one

    def key(self) -> dict[str, Any]:
        """What the render depends on (the number is only scored, the region only configured)."""
        key = dataclasses.asdict(self)
        key.pop("number")
        key.pop("region")
        return key


def load_specs(folder: Path = SPECS) -> list[Scenario]:
    """Every scenario in `folder`/*.json, checked."""
    out: list[Scenario] = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for s in data["scenarios"]:
            language = s.get("language", data.get("language", ""))
            out.append(_scenario(s, language, f"{path.name}: {s.get('name')}"))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario names repeat in {folder}")
    return out


def _scenario(s: dict[str, Any], language: str, where: str) -> Scenario:
    phrases = tuple((float(p[0]), str(p[1]), str(p[2])) for p in s["phrases"])
    if not language or not phrases or not s.get("class"):
        raise ValueError(f"{where}: needs a language, a class and at least one phrase")
    for pause, label, text in phrases:
        if label not in LABELS or not 0.0 <= pause <= 6.0 or not text.strip():
            raise ValueError(f"{where}: bad phrase {[pause, label, text]}: label WAIT|COMPLETE, pause 0-6 s")
    if phrases[-1][1] != "COMPLETE":
        raise ValueError(f"{where}: the last phrase must be COMPLETE")
    number = str(s.get("number", ""))
    if number and not number.isdigit():
        raise ValueError(f"{where}: number must be the digits dictated, e.g. \"07709426183\"")
    return Scenario(s["name"], language, s["class"], phrases, s.get("context", ""), float(s.get("rate", 1.0)),
                    s.get("about", ""), number, str(s.get("region", "")))


# --------------------------------------------------------------------------- voices and channels


@dataclass(frozen=True, slots=True)
class Voice:
    id: str
    language: str
    engine: str  # espeak | piper
    name: str  # espeak voice, or the piper .onnx under the models folder
    rate: float  # espeak: words per minute; piper: speed factor (1 = the voice's own)


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    noise: str = ""  # a file in shared/audio/noise
    snr_db: float = 0.0
    phone: bool = False


VOICES = {v.id: v for v in (
    Voice("en-us", "en", "espeak", "en-us", 175),
    Voice("en+f3", "en", "espeak", "en+f3", 150),
    Voice("en-gb-x-rp+m3", "en", "espeak", "en-gb-x-rp+m3", 195),
    Voice("joe", "en", "piper", "piper/en_US-joe-medium.onnx", 1.0),
    Voice("it", "it", "espeak", "it", 170),
    Voice("it+f2", "it", "espeak", "it+f2", 145),
    Voice("it+m3", "it", "espeak", "it+m3", 190),
)}
CHANNELS = {c.id: c for c in (
    Channel("clean"),
    Channel("office20", "office.wav", 20.0),
    Channel("cafe15", "cafe.wav", 15.0),
    Channel("phone8k", phone=True),
)}
NOISY_VOICES = ("en-us", "joe", "it")  # the voices that also get every other channel


def renders(scenarios: Sequence[Scenario], voices: Iterable[str] | None = None,
            channels: Iterable[str] | None = None) -> list[tuple[Scenario, Voice, Channel]]:
    """The (scenario, voice, channel) combinations to make: every voice of the scenario's language clean,
    the NOISY_VOICES on every channel; narrowed to `voices` and `channels` when given."""
    want_v = set(voices) if voices else None
    want_c = set(channels) if channels else None
    out = []
    for s in scenarios:
        for v in VOICES.values():
            if v.language != s.language or (want_v is not None and v.id not in want_v):
                continue
            for c in CHANNELS.values():
                if c.id != "clean" and v.id not in NOISY_VOICES:
                    continue
                if want_c is None or c.id in want_c:
                    out.append((s, v, c))
    return out


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class Rendered:
    scenario: Scenario
    voice: str
    channel: str
    wav: Path
    tsv: Path


_synths: dict[Any, Any] = {}


def synthesize(voice: Voice, text: str, speed: float = 1.0) -> np.ndarray:
    """`text` in `voice` at `speed` times its rate, int16 at 16 kHz."""
    if voice.engine == "piper":
        from models.manager import default_models_dir
        from models.tts_piper import PiperOptions, PiperTts

        key = ("piper", voice.name, speed)
        if key not in _synths:
            path = default_models_dir() / voice.name
            if not path.exists():
                raise FileNotFoundError(f"the piper voice {path} is missing: "
                                        "`standin models pull --set tests` fetches it")
            _synths[key] = PiperTts(PiperOptions(voices={voice.language: path},
                                                 length_scale=1.0 / (voice.rate * speed)))
        engine = _synths[key]
    else:
        from models.tts_espeak import RATE_MIN, EspeakTts

        engine = EspeakTts(voice=voice.name, rate=max(RATE_MIN, round(voice.rate * speed)))
    chunks = [resample(c.audio, c.sample_rate, CALL_RATE)
              for c in engine.synthesize(text, language=voice.language)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def sounding(x: np.ndarray, frame: int = 80, floor_db: float = -40.0) -> tuple[int, int]:
    """First and one-past-last sample of the frames (5 ms) within `floor_db` of the loudest one."""
    n = len(x) // frame
    if n == 0:
        return 0, 0
    rms = np.sqrt(np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > max(rms.max() * 10 ** (floor_db / 20), 16.0))
    if len(loud) == 0:
        return 0, 0
    return int(loud[0]) * frame, int(loud[-1] + 1) * frame


def bot_question_s(text: str, language: str) -> float:
    """When the bot's greeting `text` stops sounding, on the call's timeline (it starts after the TTS
    latency of the reference profile)."""
    from models.tts_espeak import EspeakTts

    audio = np.concatenate([resample(c.audio, c.sample_rate, CALL_RATE)
                            for c in EspeakTts(rate=BOT_RATE).synthesize(text, language=language)])
    return REFERENCE["tts"] / 1000 + sounding(audio)[1] / CALL_RATE


def lay_out(scenario: Scenario, voice: Voice) -> tuple[np.ndarray, list[Phrase]]:
    """The caller's clean audio and each phrase's exact span."""
    start = bot_question_s(scenario.context, scenario.language) if scenario.context else GREETING_GAP_S
    parts: list[np.ndarray] = []
    phrases: list[Phrase] = []
    t = round(start * CALL_RATE)
    for pause, label, text in scenario.phrases:
        speech = synthesize(voice, text, scenario.rate)
        a, b = sounding(speech)
        speech = speech[a:b].astype(np.float64)
        t += round(pause * CALL_RATE)
        phrases.append(Phrase(t / CALL_RATE, (t + len(speech)) / CALL_RATE, label, text))
        parts.append(level(speech))
        t += len(speech)
    audio = np.zeros(t + round(TAIL_S * CALL_RATE), np.float64)
    for p, speech in zip(phrases, parts, strict=True):
        at = round(p.start_s * CALL_RATE)
        audio[at:at + len(speech)] = speech
    return audio, phrases


def level(speech: np.ndarray) -> np.ndarray:
    """`speech` (float, int16 scale) at LEVEL_DBFS over its sounding frames, its peaks kept in range."""
    a, b = sounding(speech.astype(np.int16))
    rms = np.sqrt(np.mean(speech[a:b] ** 2)) if b > a else 1.0
    gain = 32768 * 10 ** (LEVEL_DBFS / 20) / max(rms, 1.0)
    peak = np.abs(speech).max() * gain if len(speech) else 0.0
    return speech * gain * min(1.0, 32000 / max(peak, 1.0))


def apply_channel(audio: np.ndarray, phrases: Sequence[Phrase], channel: Channel, seed: int,
                  noise_dir: Path) -> np.ndarray:
    """`audio` (float, int16 scale) through `channel`, as int16."""
    out = audio
    if channel.noise:
        noise, rate = soundfile.read(noise_dir / channel.noise, dtype="int16")
        noise = resample(noise if noise.ndim == 1 else noise[:, 0], rate, CALL_RATE).astype(np.float64)
        offset = np.random.default_rng(seed).integers(len(noise))
        noise = np.resize(np.roll(noise, -offset), len(audio))
        speech = np.concatenate([audio[round(p.start_s * CALL_RATE):round(p.end_s * CALL_RATE)]
                                 for p in phrases])
        p_speech, p_noise = np.mean(speech**2), max(np.mean(noise**2), 1e-9)
        out = audio + noise * np.sqrt(p_speech / p_noise / 10 ** (channel.snr_db / 10))
    clipped = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
    if channel.phone:
        clipped = resample(resample(clipped, CALL_RATE, 8000), 8000, CALL_RATE)[: len(clipped)]
    return np.asarray(clipped, np.int16)


def _digest(scenario: Scenario, voice: Voice, channel: Channel, noise_dir: Path) -> str:
    key: dict[str, Any] = {"v": RENDER_VERSION, "scenario": scenario.key(),
                           "voice": dataclasses.asdict(voice), "channel": dataclasses.asdict(channel),
                           "gap": GREETING_GAP_S, "bot_rate": BOT_RATE}
    if voice.engine == "piper":
        from models.manager import default_models_dir

        key["voice_bytes"] = (default_models_dir() / voice.name).stat().st_size
    if channel.noise:
        key["noise_bytes"] = (noise_dir / channel.noise).stat().st_size
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def render(scenario: Scenario, voice: Voice, channel: Channel, cache: Path = CACHE,
           noise_dir: Path = SHARED / "audio" / "noise") -> Rendered:
    """The scenario's WAV (16 kHz mono int16) and TSV in `cache`, made unless already there."""
    folder = cache / voice.id / channel.id
    stem = f"{scenario.name}.{_digest(scenario, voice, channel, noise_dir)}"
    wav, tsv = folder / f"{stem}.wav", folder / f"{stem}.tsv"
    if not (wav.exists() and tsv.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(f"{scenario.name}.*"):
            old.unlink()
        if channel.id == "clean":
            audio, phrases = lay_out(scenario, voice)
        else:  # a copy of the clean render, so that every channel shares its timeline exactly
            clean = render(scenario, voice, CHANNELS["clean"], cache, noise_dir)
            audio = soundfile.read(clean.wav, dtype="int16")[0].astype(np.float64)
            phrases = read_transcript(clean.tsv)
        seed = int(hashlib.sha256(scenario.name.encode()).hexdigest()[:8], 16)
        samples = apply_channel(audio, phrases, channel, seed, noise_dir)
        rows = "".join(f"{p.start_s:.3f}\t{p.end_s:.3f}\t{p.label}\t{p.text}\n" for p in phrases)
        soundfile.write(folder / f"{stem}.part.wav", samples, CALL_RATE, subtype="PCM_16")
        (folder / f"{stem}.part.tsv").write_text("start_s\tend_s\tlabel\ttext\n" + rows, encoding="utf-8")
        (folder / f"{stem}.part.wav").replace(wav)
        (folder / f"{stem}.part.tsv").replace(tsv)
    return Rendered(scenario, voice.id, channel.id, wav, tsv)
