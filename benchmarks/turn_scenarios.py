"""Turn-taking on scenarios nobody tuned for: render written caller scripts in many voices, run standin on
them, and count where it spoke into a pause or left a finished turn waiting.

    python benchmarks/turn_scenarios.py                    # transcript STT, reference latencies, all voices
    python benchmarks/turn_scenarios.py --quick            # one clean voice per language
    python benchmarks/turn_scenarios.py --real --voices en-us,en+f3,en-gb-x-rp+m3,joe --channels clean
    python benchmarks/turn_scenarios.py --render-only      # fill the cache, run nothing

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

Scoring (summary.json of each simulated call):
1. into a pause: the bot started talking (any bot turn but a backchannel or the greeting: a reply, an
   ack, a read-back...) in the silence after a WAIT phrase, before the caller's next phrase;
2. a COMPLETE phrase whose answer (any of those but an ack) came more than 2 s / 3 s after its end, or
   not at all before the caller spoke again;
3. voice-to-voice: a COMPLETE phrase's end to the start of the bot's answer.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import multiprocessing
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.stt_transcript import Phrase, read_transcript
from server.audio import CALL_RATE, resample
from server.core.screening import is_screened

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "data" / "scenarios"
SHARED = ROOT.parent / "shared"
CACHE = Path("~/.cache/standin-scenarios").expanduser()
RESULTS = ROOT / "benchmarks" / "turn_scenarios.json"

RENDER_VERSION = 1  # bump when the rendering changes what lands in the files
REFERENCE = {"stt": 150, "judge": 20, "llm": 150, "tts": 80}  # ms, as benchmarks/call_brain.py
GREETING_GAP_S = 1.0  # silence before the caller when the call has no greeting
BOT_RATE = 175  # the bot's espeak-ng rate (the config's default): how long a context question lasts
TAIL_S = 0.5
HANGUP_AFTER_S = 6.0  # the caller holds on this long after the bot falls silent, so a 3 s wait can show
LEVEL_DBFS = -23.0  # speech RMS over its sounding frames
LABELS = ("WAIT", "COMPLETE")
NOT_TALK = {"greeting", "backchannel"}  # bot turns that do not take the floor
NOT_ANSWER = NOT_TALK | {"ack"}  # ... and that do not answer a finished turn ("mm-hm?")
REPLIES = {  # scripted, short, plenty of them so a call never runs out
    "en": ["All right, I'll pass that on.", "Okay, noted.", "Sure, I've got that.", "Thank you.",
           "Understood.", "Okay.", "Right, I'll tell him.", "Got it.", "Noted, thanks.", "Of course.",
           "Okay, anything else?", "Fine."],
    "it": ["Va bene, glielo riferisco.", "D'accordo, ho preso nota.", "Certo, ho capito.", "Grazie.",
           "Capito.", "Va bene.", "Glielo dico senz'altro.", "Perfetto.", "Ho annotato, grazie.",
           "Certo.", "Va bene, altro?", "Bene."],
}
WHISPER = {"en": "whisper/tiny.en", "it": "whisper/base"}
DIGIT_WORDS = {"oh": "0"} | {w: str(i) for words in ("zero one two three four five six seven eight nine",
                                                      "zero uno due tre quattro cinque sei sette otto nove")
                             for i, w in enumerate(words.split())}  # how a read-back says its digits
PATIENT_S = 600.0  # real engines under the reference profile: wall-clock timeouts out of the way


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
        parts.append(_level(speech))
        t += len(speech)
    audio = np.zeros(t + round(TAIL_S * CALL_RATE), np.float64)
    for p, speech in zip(phrases, parts, strict=True):
        at = round(p.start_s * CALL_RATE)
        audio[at:at + len(speech)] = speech
    return audio, phrases


def _level(speech: np.ndarray) -> np.ndarray:
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


# --------------------------------------------------------------------------- scoring


def score(summary: dict[str, Any], phrases: Sequence[Phrase], number: str = "") -> dict[str, Any]:
    """What the bot did against the script: pauses it spoke into, each finished turn's wait, and, when
    the caller dictated `number`, whether the bot's first read-back said exactly its digits."""
    turns = [b for b in summary["bot_turns"] if b.get("start_s") is not None]
    decisions = summary.get("decisions", [])

    def what(b: dict[str, Any]) -> dict[str, Any]:
        made = [d for d in decisions if d.get("at_s", 0) <= b["start_s"]]
        by = f"{made[-1].get('verdict')}/{made[-1].get('by')}" if made else ""
        return {"at_s": b["start_s"], "kind": b["kind"], "said": b.get("text_intended", "")[:40], "by": by}

    into_pause: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    for i, p in enumerate(phrases):
        until = phrases[i + 1].start_s if i + 1 < len(phrases) else float("inf")
        if p.label == "WAIT" and i + 1 < len(phrases):
            spoke = [b for b in turns if b["kind"] not in NOT_TALK and p.end_s <= b["start_s"] < until]
            if spoke:
                into_pause.append({"after": p.text, "pause_s": round(until - p.end_s, 2), **what(spoke[0])})
        elif p.label == "COMPLETE":
            after = [b for b in turns if b["kind"] not in NOT_ANSWER and p.end_s <= b["start_s"] < until]
            answer = after[0] if after else None
            answers.append({"text": p.text, "end_s": p.end_s,
                            "v2v_s": None if answer is None else round(answer["start_s"] - p.end_s, 3)})
    readback: dict[str, Any] | None = None
    if number:
        said = next((b.get("text_intended", "") for b in turns if b["kind"] == "readback"), None)
        words = re.findall(r"\d|[^\W\d_]+", (said or "").lower())
        digits = "".join(w if w.isdigit() else DIGIT_WORDS.get(w, "") for w in words)
        readback = {"said": said, "right": said is not None and digits == number}
    waits = sum(1 for p in phrases[:-1] if p.label == "WAIT")
    waited: list[float | None] = [a["v2v_s"] for a in answers]
    v2v = [w for w in waited if w is not None]
    return {"wait_pauses": waits, "into_pause": into_pause, "completes": len(answers), "answers": answers,
            "screened": is_screened(summary.get("ended")),
            "late2": sum(1 for w in waited if w is None or w > 2.0),
            "late3": sum(1 for w in waited if w is None or w > 3.0),
            "unanswered": waited.count(None), "v2v": v2v, "readback": readback}


def tally(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    v2v = sorted(v for r in rows for v in r["v2v"])
    return {"runs": len(rows), "wait_pauses": sum(r["wait_pauses"] for r in rows),
            "into_pause": sum(len(r["into_pause"]) for r in rows),
            "completes": sum(r["completes"] for r in rows), "late2": sum(r["late2"] for r in rows),
            "late3": sum(r["late3"] for r in rows), "unanswered": sum(r["unanswered"] for r in rows),
            "numbers": sum(1 for r in rows if r.get("readback")),
            "screened": sum(1 for r in rows if r.get("screened")),
            "read_back_right": sum(1 for r in rows if r.get("readback") and r["readback"]["right"]),
            "v2v_median_s": round(statistics.median(v2v), 3) if v2v else None,
            "v2v_p90_s": round(float(np.percentile(v2v, 90)), 3) if v2v else None}


def group(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        buckets[r[key]].append(r)
    return {k: tally(v) for k, v in sorted(buckets.items())}


# --------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class Mode:
    real: bool = False
    judge: str = ""  # "" = as the config says (transcript runs: rules)
    llm: str = ""  # "" = as the config says (transcript runs: script)
    measured: bool = False  # real runs: engine times as measured instead of the reference profile


def call_config(rendered: Rendered, mode: Mode, out: Path) -> Any:
    from server.config import load

    s = rendered.scenario
    tables: dict[str, dict[str, Any]] = {
        "call": {"greeting": s.context},
        "stt": {"language": s.language},
        "tts": {"engine": "espeak", "voice": "", "rate": BOT_RATE},
        "simulate": {"latency_ms": {} if mode.measured else REFERENCE, "hangup_after_s": HANGUP_AFTER_S},
        "storage": {"calls_dir": str(out / "calls"), "database": f"sqlite:///{out / 'standin.db'}"},
        "contacts": {"region": s.region},
    }
    if mode.judge:
        tables["judge"] = {"engine": mode.judge}
    if mode.llm or not mode.real:
        tables["llm"] = {"engine": mode.llm or "script", "replies": REPLIES[s.language]}
    from models.manager import default_models_dir

    if not mode.real:
        if mode.judge == "llm":  # the starter's reply model judges the transcript's lines, in no hurry
            tables["models"] = {"dir": str(default_models_dir())}
            model = load(ROOT / "config" / "starter.toml").llm.model
            tables["judge"].update(model=model, timeout_s=PATIENT_S)
        return load(None, tables)
    tables["models"] = {"dir": str(default_models_dir())}
    tables["stt"].update({"engine": "whisper", "model": WHISPER[s.language]})
    if not mode.measured:  # the profile sets the call's times; a busy box must not time engines out
        for name in ("stt", "judge", "llm", "tts"):
            tables.setdefault(name, {})["timeout_s"] = PATIENT_S
    return load(ROOT / "config" / "starter.toml", tables)


_engines: dict[Any, Any] = {}


def engines_for(rendered: Rendered, mode: Mode, config: Any) -> Any:
    """Engines built once per process and language; the transcript STT is the scenario's own."""
    from models.stt_transcript import TranscriptStt
    from server.engines import build_engines

    key = (rendered.scenario.language, mode)
    if key not in _engines:
        _engines[key] = build_engines(config, transcript=None if mode.real else rendered.tsv)
    engines = _engines[key]
    return engines if mode.real else dataclasses.replace(engines, stt=TranscriptStt.from_file(rendered.tsv))


def run_one(rendered: Rendered, mode: Mode) -> dict[str, Any]:
    from server.audio import read_audio
    from server.simulate import simulate

    s = rendered.scenario
    with tempfile.TemporaryDirectory() as tmp:
        config = call_config(rendered, mode, Path(tmp))
        engines = engines_for(rendered, mode, config)
        summary = simulate(read_audio(rendered.wav), engines, config, Path(tmp) / "call").summary
    row = {"scenario": s.name, "language": s.language, "class": s.cls, "voice": rendered.voice,
           "channel": rendered.channel, "noisy": "clean" if rendered.channel == "clean" else "noisy",
           **score(summary, read_transcript(rendered.tsv), s.number)}
    if mode.real:
        row["heard"] = [f["text"] for f in summary["caller_fragments"]]
    return row


def _run_many(items: Sequence[Rendered], mode: Mode, jobs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if jobs <= 1:
        results: Iterable[dict[str, Any]] = (run_one(r, mode) for r in items)
        return _progress(results, rows, len(items))
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        return _progress(pool.map(run_one, items, [mode] * len(items), chunksize=4), rows, len(items))


def _progress(results: Iterable[dict[str, Any]], rows: list[dict[str, Any]],
              total: int) -> list[dict[str, Any]]:
    for row in results:
        rows.append(row)
        if len(rows) % 50 == 0 or len(rows) == total:
            print(f"{len(rows)}/{total} calls", file=sys.stderr, flush=True)
    return rows


def report(rows: Sequence[dict[str, Any]], mode: Mode, seconds: float) -> dict[str, Any]:
    def misread(r: dict[str, Any]) -> bool:
        return bool(r.get("readback")) and not r["readback"]["right"]

    failures = [{"run": f"{r['scenario']}@{r['voice']}/{r['channel']}",
                 "into_pause": r["into_pause"],
                 "late": [a for a in r["answers"] if a["v2v_s"] is None or a["v2v_s"] > 2.0],
                 **({"heard": r["heard"]} if "heard" in r else {}),
                 **({"readback": r["readback"]} if misread(r) else {}),
                 **({"screened": True} if r.get("screened") else {})}
                for r in rows if r["into_pause"] or r["late2"] or misread(r) or r.get("screened")]
    return {"commit": _commit(), "mode": dataclasses.asdict(mode),
            "latency_ms": None if mode.measured else REFERENCE,
            "runs": len(rows), "wall_s": round(seconds, 1), "total": tally(rows),
            "by_language": group(rows, "language"), "by_voice": group(rows, "voice"),
            "by_channel": group(rows, "channel"), "clean_vs_noisy": group(rows, "noisy"),
            "by_class": group(rows, "class"), "failures": failures}


def _commit() -> str:
    """The checkout's commit, marked when server/ or models/ have uncommitted changes."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    dirty = git("status", "--porcelain", "--", "server", "models")
    return git("rev-parse", "--short", "HEAD") + (" + local changes" if dirty else "")


def table(result: dict[str, Any]) -> str:
    head = f"{'':24} {'runs':>5} {'pauses':>6} {'into':>5} {'turns':>5} {'>2s':>4} {'>3s':>4} " \
           f"{'none':>4} {'v2v med':>7} {'p90':>6} {'read back':>9} {'screened':>8}"
    lines = [head]
    for section in ("total", "by_language", "clean_vs_noisy", "by_channel", "by_voice", "by_class"):
        groups = {"total": result["total"]} if section == "total" else result[section]
        if section != "total":
            lines.append(f"-- {section[3:] if section.startswith('by_') else section}")
        for name, t in groups.items():
            med = "-" if t["v2v_median_s"] is None else f"{t['v2v_median_s']:.2f}"
            p90 = "-" if t["v2v_p90_s"] is None else f"{t['v2v_p90_s']:.2f}"
            read = f"{t['read_back_right']}/{t['numbers']}" if t["numbers"] else "-"
            lines.append(f"{name:24} {t['runs']:>5} {t['wait_pauses']:>6} {t['into_pause']:>5} "
                         f"{t['completes']:>5} {t['late2']:>4} {t['late3']:>4} {t['unanswered']:>4} "
                         f"{med:>7} {p90:>6} {read:>9} {t.get('screened', 0):>8}")
    return "\n".join(lines)


def result_key(mode: Mode, voices: Sequence[str] | None, channels: Sequence[str] | None, only: str) -> str:
    """Where a run's results go in the results file: one entry per mode and selection."""
    parts = ["real" if mode.real else "transcript"]
    parts += [f"judge={mode.judge}"] if mode.judge else []
    parts += [f"llm={mode.llm}"] if mode.llm else []
    parts += ["measured"] if mode.measured else []
    parts += [f"voices={'/'.join(voices)}"] if voices else []
    parts += [f"channels={'/'.join(channels)}"] if channels else []
    parts += [f"only={only}"] if only else []
    return ",".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=Path, default=SPECS)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--noise", type=Path, default=SHARED / "audio" / "noise")
    parser.add_argument("--voices", help=f"comma-separated, of {', '.join(VOICES)}")
    parser.add_argument("--channels", help=f"comma-separated, of {', '.join(CHANNELS)}")
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    parser.add_argument("--quick", action="store_true", help="clean, en-us and it only")
    parser.add_argument("--real", action="store_true", help="whisper hears the audio (config/starter.toml)")
    parser.add_argument("--judge", choices=("rules", "llm"), help="default: as the config says")
    parser.add_argument("--llm", choices=("script", "llama_cpp"), help="default: as the config says")
    parser.add_argument("--measured", action="store_true", help="real runs: measured engine times")
    parser.add_argument("--jobs", type=int, default=2, help="processes (real runs: 1)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file ('-' for none)")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)

    scenarios = [s for s in load_specs(args.specs) if not args.only or args.only in s.name]
    voices = args.voices.split(",") if args.voices else (["en-us", "it"] if args.quick else None)
    channels = args.channels.split(",") if args.channels else (["clean"] if args.quick else None)
    if not args.noise.is_dir():
        print(f"no noise files at {args.noise}: clean and phone copies only", file=sys.stderr)
        channels = [c for c in (channels or CHANNELS) if not CHANNELS[c].noise]
    started = time.monotonic()
    items = [render(s, v, c, args.cache, args.noise) for s, v, c in renders(scenarios, voices, channels)]
    print(f"{len(items)} renders ready in {args.cache} ({time.monotonic() - started:.0f}s)", file=sys.stderr)
    if args.render_only:
        return
    mode = Mode(real=args.real, judge=args.judge or "", llm=args.llm or "", measured=args.measured)
    started = time.monotonic()
    rows = _run_many(items, mode, 1 if args.real else args.jobs)
    result = report(rows, mode, time.monotonic() - started)
    print(table(result))
    if str(args.json) != "-":
        previous = json.loads(args.json.read_text()) if args.json.exists() else {}
        previous[result_key(mode, voices, channels, args.only or "")] = result
        args.json.write_text(json.dumps(previous, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
