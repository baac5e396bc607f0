"""Turn-taking on scenarios nobody tuned for: run standin on the written caller scripts, spoken in many
voices (benchmarks/scenario_audio.py), and count where it spoke into a pause or left a finished turn
waiting.

    python benchmarks/turn_scenarios.py                    # transcript STT, reference latencies, all voices
    python benchmarks/turn_scenarios.py --quick            # one clean voice per language
    python benchmarks/turn_scenarios.py --real --voices en-us,en+f3,en-gb-x-rp+m3,joe --channels clean
    python benchmarks/turn_scenarios.py --render-only      # fill the cache, run nothing

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

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scenario_audio import (
    BOT_RATE,
    CACHE,
    CHANNELS,
    REFERENCE,
    SHARED,
    SPECS,
    VOICES,
    Rendered,
    load_specs,
    render,
    renders,
)
from models.stt_transcript import Phrase, read_transcript
from server.core.screening import is_screened

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "turn_scenarios.json"

HANGUP_AFTER_S = 6.0  # the caller holds on this long after the bot falls silent, so a 3 s wait can show
NOT_TALK = {"greeting", "backchannel", "go_ahead"}  # bot turns that do not take the floor
# ... and those that do not answer a finished turn ("mm-hm?"); a go-ahead answers a caller waiting for one
NOT_ANSWER = {"greeting", "backchannel", "ack"}
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
    invited = 0  # go-aheads in pauses the caller would have gone on after anyway
    answers: list[dict[str, Any]] = []
    for i, p in enumerate(phrases):
        until = phrases[i + 1].start_s if i + 1 < len(phrases) else float("inf")
        if p.label == "WAIT" and i + 1 < len(phrases):
            spoke = [b for b in turns if b["kind"] not in NOT_TALK and p.end_s <= b["start_s"] < until]
            invited += sum(1 for b in turns if b["kind"] == "go_ahead" and p.end_s <= b["start_s"] < until)
            if spoke:
                into_pause.append({"after": p.text, "pause_s": round(until - p.end_s, 2), **what(spoke[0])})
        elif p.label == "COMPLETE":
            # the bot's next words after the phrase, a new turn's or those of one that went on over a
            # "thanks" it took for a backchannel
            starts = sorted(((w["start_s"], i) for i, b in enumerate(turns) if b["kind"] not in NOT_ANSWER
                             for w in (b.get("words") or [b]) if p.end_s <= w["start_s"] < until))
            answer = {"text": p.text, "end_s": p.end_s, "v2v_s": None}
            if starts:  # and what answered it: the kind of line and the decision it came from
                first = what(turns[starts[0][1]])
                answer |= {"v2v_s": round(starts[0][0] - p.end_s, 3), "kind": first["kind"],
                           "by": first["by"]}
            answers.append(answer)
    readback: dict[str, Any] | None = None
    if number:
        # what the caller heard of the first read-back that reached its end (else of the first)
        heard = sorted((b for b in turns if b["kind"] == "readback"), key=lambda b: bool(b["interrupted"]))
        said = heard[0].get("text_heard", "") if heard else None
        words = re.findall(r"\d|[^\W\d_]+", (said or "").lower())
        digits = "".join(w if w.isdigit() else DIGIT_WORDS.get(w, "") for w in words)
        readback = {"said": said, "right": said is not None and digits == number}
    waits = sum(1 for p in phrases[:-1] if p.label == "WAIT")
    waited: list[float | None] = [a["v2v_s"] for a in answers]
    v2v = [w for w in waited if w is not None]
    return {"wait_pauses": waits, "into_pause": into_pause, "go_ahead_in_pause": invited,
            "completes": len(answers), "answers": answers,
            "screened": is_screened(summary.get("ended")),
            "late2": sum(1 for w in waited if w is None or w > 2.0),
            "late3": sum(1 for w in waited if w is None or w > 3.0),
            "unanswered": waited.count(None), "v2v": v2v, "readback": readback}


def tally(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    v2v = sorted(v for r in rows for v in r["v2v"])
    return {"runs": len(rows), "wait_pauses": sum(r["wait_pauses"] for r in rows),
            "into_pause": sum(len(r["into_pause"]) for r in rows),
            "go_ahead_in_pause": sum(r.get("go_ahead_in_pause", 0) for r in rows),
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
    head = f"{'':24} {'runs':>5} {'pauses':>6} {'into':>5} {'go on':>5} {'turns':>5} {'>2s':>4} {'>3s':>4} " \
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
                         f"{t.get('go_ahead_in_pause', 0):>5} "
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
    parser.add_argument("--only", help="run the scenarios whose name contains this (comma-separated: any)")
    parser.add_argument("--quick", action="store_true", help="clean, en-us and it only")
    parser.add_argument("--real", action="store_true", help="whisper hears the audio (config/starter.toml)")
    parser.add_argument("--judge", choices=("rules", "llm"), help="default: as the config says")
    parser.add_argument("--llm", choices=("script", "llama_cpp"), help="default: as the config says")
    parser.add_argument("--measured", action="store_true", help="real runs: measured engine times")
    parser.add_argument("--jobs", type=int, default=2, help="processes (real runs: 1)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file ('-' for none)")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)

    scenarios = [s for s in load_specs(args.specs)
                 if not args.only or any(part in s.name for part in args.only.split(","))]
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
