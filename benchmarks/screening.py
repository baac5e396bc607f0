"""Robocall and silent-call screening (server/core/screening.py): how many people it screens by mistake,
how many robocalls and silent calls it catches.

    python benchmarks/screening.py            # every human render and every built robocall
    python benchmarks/screening.py --quick    # clean en-us and it humans only

People: the written scenarios of benchmarks/turn_scenarios.py (tests/data/scenarios, every voice and
channel it renders) and the four recorded scenarios of ../shared/scenarios, each played twice: after the
bot's question as turn_scenarios plays them, and against the language's default greeting, which the
caller then talks over (they start 0.6-1 s into the call, the greeting lasts about 5 s). The rendered
callers do not react to the bot, so they are harder to tell from a recording than real people.

Robocalls, built here (cached in ~/.cache/standin-screening): a recording that starts while the
greeting plays (0.3 s or 1.5 s in) and goes on for 40 s with short gaps: the shared speech clips
chained, a stretch of the VoxConverse recording, a sales pitch synthesised by espeak-ng and piper (en, it),
synthetic music; the same speech starting after the greeting (6 s in, what a dialer that waits for
silence does); silent calls: digital silence, a faint hiss, each shared noise file looped (line noise).
The speech's transcript (TSV) gives the transcript STT its words; music and noise have none.

Thresholds were set by reasoning before any of this ran; the scenarios are only measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import turn_scenarios as ts
from benchmarks.scenario_audio import (
    BOT_RATE,
    CHANNELS,
    REFERENCE,
    VOICES,
    level,
    load_specs,
    render,
    renders,
    sounding,
    synthesize,
)
from benchmarks.scenario_audio import (
    CACHE as SCENARIO_CACHE,
)
from models.stt_transcript import Phrase
from server.audio import CALL_RATE, resample

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = Path("~/.cache/standin-screening").expanduser()
RESULTS = ROOT / "benchmarks" / "screening.json"
BUILD_VERSION = 2
ROBOCALL_S = 40.0
SILENT_S = 30.0
PITCH = {
    "en": ["Congratulations, you have been selected for a limited time offer on your energy bill.",
           "Our records show that you are paying too much for electricity and gas every month.",
           "This is your final notice before the offer expires at the end of the week.",
           "Press one now to speak with a specialist, or stay on the line for more details.",
           "Thousands of families have already saved hundreds of dollars with our program."],
    "it": ["Congratulazioni, è stato selezionato per un'offerta esclusiva sulla bolletta della luce.",
           "Dai nostri dati risulta che lei paga troppo per luce e gas ogni mese.",
           "Questo è l'ultimo avviso prima che l'offerta scada alla fine della settimana.",
           "Prema uno per parlare con un consulente, oppure resti in linea per i dettagli."],
}
CLIPS = {  # shared/audio/speech: what each says
    "jfk.wav": "And so my fellow Americans, ask not what your country can do for you, ask what you can do "
               "for your country.",
    "quilter.wav": "Mr. Quilter is the apostle of the middle classes and we are glad to welcome his gospel.",
    "spk1_snt1.wav": "The child almost hurt the small dog.",
    "spk1_snt2.wav": "Drop the tue when you add the figures.",
    "ldc93s1_8k.wav": "She had your dark suit in greasy wash water all year.",
}


@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # human | robocall
    group: str
    name: str
    language: str
    wav: Path
    tsv: Path
    greeting: str | None  # None: the language's default greeting


# --------------------------------------------------------------------------- people


def humans(quick: bool) -> list[Item]:
    voices = ["en-us", "it"] if quick else None
    channels = ["clean"] if quick else None
    if not (SHARED / "audio" / "noise").is_dir():
        channels = [c for c in (channels or CHANNELS) if not CHANNELS[c].noise]
    out: list[Item] = []
    for s, v, c in renders(load_specs(), voices, channels):
        r = render(s, v, c, SCENARIO_CACHE, SHARED / "audio" / "noise")
        name = f"{s.name}@{v.id}/{c.id}"
        out.append(Item("human", "after the question", name, s.language, r.wav, r.tsv, s.context))
        out.append(Item("human", "over the greeting", name, s.language, r.wav, r.tsv, None))
    for wav in sorted((SHARED / "scenarios").glob("*.wav")):
        tsv = wav.with_suffix(".tsv")
        out.append(Item("human", "shared, no greeting", wav.stem, "en", wav, tsv, ""))
        out.append(Item("human", "shared, over the greeting", wav.stem, "en", wav, tsv, None))
    return out


# --------------------------------------------------------------------------- robocalls


def _mono16(path: Path) -> np.ndarray:
    x, rate = soundfile.read(path, dtype="int16")
    x = x if x.ndim == 1 else x[:, 0]
    return np.asarray(resample(x, rate, CALL_RATE), np.float64)


def _chain(parts: Sequence[tuple[np.ndarray, str]], gap_s: float, start_s: float, total_s: float
           ) -> tuple[np.ndarray, list[Phrase]]:
    """`parts` (audio, words) one after the other, `gap_s` apart, from `start_s`, repeated to `total_s`."""
    audio = np.zeros(round(total_s * CALL_RATE), np.float64)
    phrases: list[Phrase] = []
    t = round(start_s * CALL_RATE)
    i = 0
    while True:
        speech, words = parts[i % len(parts)]
        a, b = sounding(speech.astype(np.int16))
        speech = level(speech[a:b])
        if t >= len(audio) - CALL_RATE:
            break
        speech = speech[: len(audio) - t]
        audio[t:t + len(speech)] = speech
        phrases.append(Phrase(t / CALL_RATE, (t + len(speech)) / CALL_RATE, "COMPLETE", words))
        t += len(speech) + round(gap_s * CALL_RATE)
        i += 1
    return audio, phrases


def _spans(x: np.ndarray, floor_db: float = -35.0, bridge_s: float = 0.3) -> list[tuple[int, int]]:
    """Sounding stretches of `x` (50 ms frames), gaps under `bridge_s` bridged."""
    frame = CALL_RATE // 20
    n = len(x) // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = rms > rms.max() * 10 ** (floor_db / 20)
    spans: list[tuple[int, int]] = []
    for i in np.flatnonzero(loud):
        if spans and i - spans[-1][1] <= bridge_s * 20:
            spans[-1] = (spans[-1][0], int(i) + 1)
        else:
            spans.append((int(i), int(i) + 1))
    return [(a * frame, b * frame) for a, b in spans]


def _music(total_s: float, start_s: float, seed: int = 7) -> np.ndarray:
    """Synthetic music: a melody of harmonic notes over a bass line and a beat, no gaps."""
    rng = np.random.default_rng(seed)
    n = round(total_s * CALL_RATE)
    out = np.zeros(n)
    note = CALL_RATE // 4
    t = np.arange(note) / CALL_RATE
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * 3)
    scale = [261.6, 293.7, 329.6, 392.0, 440.0, 523.3]
    for k, at in enumerate(range(round(start_s * CALL_RATE), n - note, note)):
        f = scale[rng.integers(len(scale))]
        tone = sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3))
        bass = np.sin(2 * np.pi * scale[(k // 8) % 3] / 2 * t)
        beat = rng.normal(0, 1, note) * np.exp(-t * 40) * (k % 2 == 0)
        out[at:at + note] += (tone * envelope + 0.6 * bass + 0.5 * beat)
    return level(out) if out.any() else out


def _write(folder: Path, name: str, audio: np.ndarray, phrases: Sequence[Phrase]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    wav, tsv = folder / f"{name}.wav", folder / f"{name}.tsv"
    soundfile.write(wav, np.clip(np.rint(audio), -32768, 32767).astype(np.int16), CALL_RATE, subtype="PCM_16")
    rows = "".join(f"{p.start_s:.3f}\t{p.end_s:.3f}\t{p.label}\t{p.text}\n" for p in phrases)
    tsv.write_text("start_s\tend_s\tlabel\ttext\n" + rows, encoding="utf-8")
    return wav, tsv


def robocalls(cache: Path = CACHE) -> list[Item]:
    folder = cache / f"v{BUILD_VERSION}"
    out: list[Item] = []

    def add(group: str, name: str, language: str, make: Any) -> None:
        wav, tsv = folder / f"{name}.wav", folder / f"{name}.tsv"
        if not (wav.exists() and tsv.exists()):
            audio, phrases = make()
            _write(folder, name, audio, phrases)
        out.append(Item("robocall", group, name, language, wav, tsv, None))

    speech_dir = SHARED / "audio" / "speech"
    clips = [(_mono16(speech_dir / f), words) for f, words in CLIPS.items() if (speech_dir / f).exists()]
    pitch = {lang: [(synthesize(VOICES[v], line).astype(np.float64), line) for line in PITCH[lang]]
             for lang, v in (("en", "en-us"), ("it", "it"))}
    try:
        joe = VOICES["joe"]
        pitch["joe"] = [(synthesize(joe, line).astype(np.float64), line) for line in PITCH["en"]]
    except FileNotFoundError as exc:
        print(f"no piper voice ({exc}): the espeak pitches only", file=sys.stderr)
    vox: list[tuple[np.ndarray, str]] = []
    if (speech_dir / "voxconverse_8k.wav").exists():
        x = _mono16(speech_dir / "voxconverse_8k.wav")[: round(60 * CALL_RATE)]
        vox = [(x[a:b], "recorded speech") for a, b in _spans(x)]
    for start, when in ((0.3, "over the greeting"), (1.5, "over the greeting"), (6.0, "after the greeting")):
        tag = f"{start:g}s"
        if clips:
            add(f"speech clips, {when}", f"clips_{tag}", "en",
                lambda s=start: _chain(clips, 0.25, s, ROBOCALL_S))
        if vox:
            add(f"voxconverse, {when}", f"vox_{tag}", "en", lambda s=start: _chain(vox, 0.05, s, ROBOCALL_S))
        for voice, parts in pitch.items():
            lang = "it" if voice == "it" else "en"
            add(f"synth pitch, {when}", f"pitch_{voice}_{tag}", lang,
                lambda p=parts, s=start: _chain(p, 0.3, s, ROBOCALL_S))
        add(f"music, {when}", f"music_{tag}", "en", lambda s=start: (_music(ROBOCALL_S, s), []))
    add("silent", "silence", "en", lambda: (np.zeros(round(SILENT_S * CALL_RATE)), []))
    hiss = np.random.default_rng(1).normal(0, 30, round(SILENT_S * CALL_RATE))  # about -60 dBFS
    add("silent", "hiss", "en", lambda: (hiss, []))
    for noise in sorted((SHARED / "audio" / "noise").glob("*.wav")):
        add("line noise", f"noise_{noise.stem}", "en",
            lambda n=noise: (np.resize(_mono16(n), round(SILENT_S * CALL_RATE)), []))
    return out


# --------------------------------------------------------------------------- running


def run_one(item: Item) -> dict[str, Any]:
    from models.stt_transcript import TranscriptStt
    from server.audio import read_audio
    from server.config import load
    from server.engines import build_engines
    from server.simulate import simulate

    with tempfile.TemporaryDirectory() as tmp:
        tables: dict[str, dict[str, Any]] = {
            "call": {} if item.greeting is None else {"greeting": item.greeting},
            "stt": {"language": item.language},
            "tts": {"engine": "espeak", "voice": "", "rate": BOT_RATE},
            "llm": {"engine": "script", "replies": ts.REPLIES[item.language]},
            "simulate": {"latency_ms": REFERENCE, "hangup_after_s": ts.HANGUP_AFTER_S},
            "storage": {"calls_dir": str(Path(tmp) / "calls"), "database": f"sqlite:///{tmp}/standin.db"},
        }
        config = load(None, tables)
        engines = build_engines(config, transcript=item.tsv)
        import dataclasses

        engines = dataclasses.replace(engines, stt=TranscriptStt.from_file(item.tsv))
        summary = simulate(read_audio(item.wav), engines, config, Path(tmp) / "call").summary
    screening = summary.get("screening") or {}
    return {"kind": item.kind, "group": item.group, "name": item.name, "language": item.language,
            "verdict": screening.get("verdict"), "at_s": screening.get("at_s"), "why": screening.get("why"),
            "collisions": screening.get("collisions"), "person": screening.get("person"),
            "ended": summary.get("ended")}


def tally(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    caught = [r for r in rows if r["verdict"]]
    at = [r["at_s"] for r in caught if r["at_s"] is not None]
    verdicts: dict[str, int] = defaultdict(int)
    for r in caught:
        verdicts[r["verdict"]] += 1
    rate = round(len(caught) / len(rows), 3) if rows else None
    collided = [r["collisions"] or 0 for r in rows]
    return {"calls": len(rows), "screened": len(caught), "rate": rate,
            "talked_over_the_bot": sum(1 for c in collided if c), "most_collisions": max(collided, default=0),
            "verdicts": dict(verdicts), "median_at_s": round(statistics.median(at), 1) if at else None}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("human", "robocall"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file ('-' for none)")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is absent: the recordings and noise this benchmark plays are there")
    items = ([] if args.only == "robocall" else humans(args.quick)) + \
            ([] if args.only == "human" else robocalls())
    started = time.monotonic()
    with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run_one, items, chunksize=4))
    seconds = time.monotonic() - started
    result: dict[str, Any] = {"commit": ts._commit(), "runs": len(rows), "wall_s": round(seconds, 1)}
    for kind in ("human", "robocall"):
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in mine:
            groups[r["group"]].append(r)
        result[kind] = {"total": tally(mine), "by_group": {g: tally(v) for g, v in sorted(groups.items())}}
        wrong = [r for r in mine if (r["verdict"] is not None) == (kind == "human")]
        result[kind]["errors"] = [{k: r[k] for k in ("group", "name", "verdict", "at_s", "why", "ended")}
                                  for r in wrong]
    for kind in ("human", "robocall"):
        if kind in result:
            print(f"{kind}: {json.dumps(result[kind]['total'])}")
            for g, t in result[kind]["by_group"].items():
                print(f"  {g:32s} {t['screened']:4d}/{t['calls']:<4d} {t['verdicts']} "
                      f"median {t['median_at_s']} s")
    if str(args.json) != "-":
        key = "quick" if args.quick else "full"
        previous = json.loads(args.json.read_text()) if args.json.exists() else {}
        previous[key if not args.only else f"{key},{args.only}"] = result
        args.json.write_text(json.dumps(previous, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
