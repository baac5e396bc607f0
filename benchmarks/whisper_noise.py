"""Whisper on silence, noise, music on hold and SIPp's pcaps, and on the short answers that must survive.

    python benchmarks/whisper_noise.py [--rows ROWS.json] [--reuse] [--out benchmarks/whisper_noise.json]

The real `WhisperStt` (tiny.en, and base in English and Italian; int8, 2 threads) decodes every piece of
material the way a call hands it audio: the caller's line at 16 kHz (8 kHz telephone band and G.711 on the
way), cut into fragments by Silero VAD and the core's segmenter with its default settings ("vad"). Line
noise rarely gets past the VAD, so every non-speech clip is also decoded as if the VAD had let it through
("direct": the whole clip up to 30 s, and up to four 3 s pieces of it). A short answer the segmenter drops
(under 300 ms of speech) is decoded direct, as the fragment it would have been, so that no answer escapes
the filter's test. Per segment the script records no_speech_prob, avg_logprob, compression_ratio and the
text (`WhisperStt.decode`: nothing is filtered there). Everything is seeded except piper, whose voice
varies a little from run to run.

Then it fits the filter's thresholds (`models.stt_whisper`, rules 1-5) to keep every segment of speech
Whisper heard right and drop every segment of non-speech, as far from both as a grid allows (the smallest
margins first), in two-fold cross-validation: fitted on the "choose" half of the material (half the noise
files, music pieces, tones, voices and recordings; `SPLIT`), counted on the "holdout" half, and the other
way round; then fitted on all of it, which is what `WhisperOptions()` holds. It scores the defaults with
the module's own code (`transcript_of`) on every piece, reports the margins (the nearest heard segment
and the nearest noise segment that only this threshold drops), and picks the confidence below which
hearing is unsure (`UNSURE_BELOW`) on the choose half. A short answer Whisper heard wrong ("So" for
"Sure.") may go either way: it is not counted as kept or lost, and the text it would have given is at
best unsure.

Material: /work/shared/audio (../shared beside the checkout), /usr/share/sip-tester/*.pcap (apt-get install
sip-tester), the espeak-ng binary, the piper voice and whisper folders in the models directory
(`standin models pull`). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.whisper_noise_material import MODELS, NEGATIVE, POSITIVE, ROOT, SPLIT, STT, measure
from models.stt_whisper import (
    SAID_ON_CALLS,
    WhisperOptions,
    confidence,
    is_stock_phrase,
    normalize_phrase,
    sentence_words,
    transcript_of,
)
from tests.models import whisper_material as mat

# --------------------------------------------------------------------------- scoring

# What counts as hearing a short answer right (normalised words).
HEARD = {"yes": {"yes", "yeah", "yep"}, "no": {"no", "nope"}, "thank you": {"thank you", "thanks"},
         "thanks": {"thank you", "thanks"}, "okay": {"okay", "ok"}, "bye": {"bye", "goodbye", "bye bye"},
         "sure": {"sure"}, "hello": {"hello", "hallo", "hi"}, "si": {"si"}, "grazie": {"grazie"},
         "va bene": {"va bene", "vabbene"}, "ciao": {"ciao"}, "pronto": {"pronto"}}
# The filter before these measurements: Whisper's silence rule, a floor at -1.5, every stock phrase out.
PREVIOUS = WhisperOptions(no_speech_threshold=0.6, silence_logprob=-1.0, min_avg_logprob=-1.5,
                          min_long_logprob=None, stock_no_speech=0.0, stock_logprob=None)
NSP_SCALE = 2.5  # a no_speech_prob step counts as 2.5 avg_logprob steps when margins are compared
GRID = {
    "no_speech_threshold": np.round(np.arange(0.30, 0.951, 0.025), 3),
    "silence_logprob": np.round(np.arange(-2.0, -0.249, 0.05), 2),
    "min_avg_logprob": np.round(np.arange(-3.5, -0.999, 0.05), 2),
    "min_long_logprob": np.round(np.arange(-2.0, -0.249, 0.05), 2),
    "stock_no_speech": np.round(np.arange(0.30, 0.951, 0.025), 3),
    "stock_logprob": np.round(np.arange(-2.5, -0.249, 0.05), 2),
}


@dataclass(frozen=True)
class Seg:
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    start: float
    end: float


def segs(row: dict[str, Any]) -> list[Seg]:
    return [Seg(*s) for s in row["segments"]]


def config(row: dict[str, Any]) -> str:
    return f"{row['model']}/{row['language']}"


def kind(row: dict[str, Any], refs: dict[str, set[str]]) -> str:
    """'noise' (must give no text), 'heard' (speech Whisper heard right: must give text), 'misheard'
    (speech it did not: either way), 'unverified' (speech without a transcript)."""
    if row["class"] in NEGATIVE:
        return "noise"
    words = normalize_phrase(" ".join(s[0] for s in row["segments"]))
    if not words:
        return "misheard"
    if row["class"] == "answer":
        return "heard" if words in HEARD[normalize_phrase(row["ref"])] else "misheard"
    if row["item"] in refs:
        got = words.split()
        return "heard" if sum(w in refs[row["item"]] for w in got) >= 0.6 * len(got) else "misheard"
    return "unverified"


class Points:
    """Every decoded segment with text, as arrays, for fitting the thresholds."""

    def __init__(self, rows: list[dict[str, Any]], refs: dict[str, set[str]]) -> None:
        recs = []
        for r in rows:
            k = kind(r, refs)
            for s in segs(r):
                norm = normalize_phrase(s.text)
                if norm:
                    recs.append((k, r["split"], config(r), r["item"], s, norm,
                                 is_stock_phrase(s.text, r["language"])))
        self.recs = recs
        self.kind = np.array([x[0] for x in recs])
        self.split = np.array([x[1] for x in recs])
        self.nsp = np.array([x[4].no_speech_prob for x in recs])
        self.lp = np.array([x[4].avg_logprob for x in recs])
        self.cr = np.array([x[4].compression_ratio for x in recs])
        self.words = np.array([sentence_words(x[4].text) for x in recs])
        self.said = np.array([x[6] and x[5] in SAID_ON_CALLS for x in recs])  # stock, answer-like
        self.always = np.array([x[6] and x[5] not in SAID_ON_CALLS for x in recs])  # stock, never said

    def depths(self, t: dict[str, float], long_words: int, max_cr: float) -> dict[str, np.ndarray]:
        """Per rule, how far inside its drop region each segment is (> 0: dropped), in avg_logprob units
        (a no_speech_prob difference counts NSP_SCALE times)."""
        s = NSP_SCALE
        stock = np.where(self.said, np.maximum(s * (self.nsp - t["stock_no_speech"]),
                                               t["stock_logprob"] - self.lp), -np.inf)
        return {
            "silence": np.minimum(s * (self.nsp - t["no_speech_threshold"]), t["silence_logprob"] - self.lp),
            "unsure": t["min_avg_logprob"] - self.lp,
            "unsure-long": np.where(self.words >= long_words, t["min_long_logprob"] - self.lp, -np.inf),
            "looping": self.cr - max_cr,
            "stock": np.where(self.always, np.inf, stock),
        }

    def depth(self, t: dict[str, float], long_words: int, max_cr: float) -> np.ndarray:
        deepest: np.ndarray = np.max(np.stack(list(self.depths(t, long_words, max_cr).values())), axis=0)
        return deepest


def fit(points: Points, splits: tuple[str, ...], start: WhisperOptions) -> dict[str, float]:
    """Thresholds that keep every heard segment of `splits` and drop every noise one, as far from both as
    the grid allows: coordinate ascent on the sorted margins (the smallest first, then the next), each
    threshold put in the middle of the range that scores best."""
    mask = np.isin(points.split, splits) & np.isin(points.kind, ("noise", "heard"))
    sign = np.where(points.kind == "noise", 1.0, -1.0)[mask]
    t = {name: float(getattr(start, name)) for name in GRID}

    def score(values: dict[str, float]) -> tuple[float, ...]:
        d = points.depth(values, start.long_words, float(start.max_compression_ratio or np.inf))[mask]
        return tuple(np.round(np.sort(np.minimum(sign * d, 1.0))[:40], 6))  # beyond 1 counts as 1

    for _ in range(20):
        before = dict(t)
        for name, grid in GRID.items():
            scores = [score({**t, name: float(v)}) for v in grid]
            top = max(scores)
            ties = [i for i, sc in enumerate(scores) if sc == top]
            t[name] = float(grid[ties[len(ties) // 2]])
        if t == before:
            break
    return t


def errors(points: Points, options: WhisperOptions, split: str) -> dict[str, int]:
    """Segments of `split` on the wrong side of `options`: noise kept, heard dropped."""
    d = points.depth({n: getattr(options, n) for n in GRID}, options.long_words,
                     float(options.max_compression_ratio or np.inf))
    m = points.split == split
    return {"noise_kept": int(np.sum(m & (points.kind == "noise") & (d <= 0))),
            "noise": int(np.sum(m & (points.kind == "noise"))),
            "heard_dropped": int(np.sum(m & (points.kind == "heard") & (d > 0))),
            "heard": int(np.sum(m & (points.kind == "heard")))}


def verdict(row: dict[str, Any], options: WhisperOptions) -> tuple[str, float]:
    """(text, confidence) that `WhisperStt.transcribe` returns for this row's segments."""
    kept, text = transcript_of(segs(row), row["language"], options)
    return text, confidence(kept)


# --------------------------------------------------------------------------- the report


def _spread(values: list[float]) -> list[float] | None:
    if not values:
        return None
    v = np.sort(np.array(values))
    return [round(float(v[0]), 3), round(float(np.median(v)), 3), round(float(v[-1]), 3)]


def features(rows: list[dict[str, Any]], refs: dict[str, set[str]]) -> dict[str, Any]:
    """Per model and material class: [min, median, max] of each feature over segments with text, how
    many pieces gave no segment with text, and the commonest texts."""
    out: dict[str, Any] = defaultdict(dict)
    groups: dict[tuple[str, str], list[tuple[str, Seg]]] = defaultdict(list)
    silent: Counter[tuple[str, str]] = Counter()
    for r in rows:
        if r["class"] == "wer":
            continue
        name = r["class"] if r["class"] in NEGATIVE else f"{r['class']}_{kind(r, refs)}"
        with_text = [s for s in segs(r) if normalize_phrase(s.text)]
        silent[(config(r), name)] += not with_text
        groups[(config(r), name)].extend((r["item"], s) for s in with_text)
    for (cfg, name), items in sorted(groups.items()):
        out[cfg][name] = {
            "segments": len(items), "pieces_without_words": silent[(cfg, name)],
            "no_speech_prob": _spread([s.no_speech_prob for _, s in items]),
            "avg_logprob": _spread([s.avg_logprob for _, s in items]),
            "compression_ratio": _spread([s.compression_ratio for _, s in items]),
            "texts": [f"{n}x {t}" for t, n in Counter(s.text.strip() for _, s in items).most_common(4)],
        }
    return dict(out)


def margins(points: Points, options: WhisperOptions, split: str) -> dict[str, Any]:
    """For each threshold: the nearest heard segment on its safe side, and the nearest noise segment
    that it alone drops (no other rule would), with the distance in the threshold's own unit."""
    o = options
    m = points.split == split
    max_cr = float(o.max_compression_ratio or np.inf)
    depths = points.depths({n: getattr(o, n) for n in GRID}, o.long_words, max_cr)
    caught = np.stack([d > 0 for d in depths.values()])
    sole = {name: caught[i] & (caught.sum(axis=0) == 1) for i, name in enumerate(depths)}
    heard, noise = m & (points.kind == "heard"), m & (points.kind == "noise")

    def nearest(mask: np.ndarray, distance: np.ndarray) -> dict[str, Any] | None:
        idx = np.flatnonzero(mask & np.isfinite(distance))
        if not len(idx):
            return None
        i = idx[np.argmin(distance[idx])]
        _, _, cfg, item, seg, _, _ = points.recs[i]
        return {"distance": round(float(distance[i]), 3), "no_speech_prob": round(seg.no_speech_prob, 3),
                "avg_logprob": round(seg.avg_logprob, 3), "model": cfg, "item": item,
                "text": seg.text.strip()}

    lp, nsp, cr = points.lp, points.nsp, points.cr
    quiet, loud = lp < o.silence_logprob, nsp >= o.no_speech_threshold
    long, said, stock_loud = points.words >= o.long_words, points.said, nsp >= o.stock_no_speech
    rows = {
        "no_speech_threshold": ("silence", quiet, o.no_speech_threshold - nsp, nsp - o.no_speech_threshold),
        "silence_logprob": ("silence", loud, lp - o.silence_logprob, o.silence_logprob - lp),
        "min_avg_logprob": ("unsure", True, lp - o.min_avg_logprob, o.min_avg_logprob - lp),
        "min_long_logprob": ("unsure-long", long, lp - o.min_long_logprob, o.min_long_logprob - lp),
        "max_compression_ratio": ("looping", True, max_cr - cr, cr - max_cr),
        "stock_no_speech": ("stock", said, o.stock_no_speech - nsp, nsp - o.stock_no_speech),
        "stock_logprob": ("stock", said & ~stock_loud, lp - o.stock_logprob, o.stock_logprob - lp),
    }
    # noise is counted against a threshold only on the side it drops (an AND rule's other part holds)
    return {name: {"heard": nearest(heard & where, safe),
                   "noise": nearest(noise & sole[rule] & where & (inside >= 0), inside)}
            for name, (rule, where, safe, inside) in rows.items()}


def outcomes(rows: list[dict[str, Any]], refs: dict[str, set[str]], options: WhisperOptions,
             unsure_below: float) -> dict[str, Any]:
    """Per split, model and class: pieces, and what the filter made of them."""
    out: dict[str, Any] = {}
    for r in rows:
        if r["class"] == "wer":
            continue
        text, conf = verdict(r, options)
        k = kind(r, refs)
        cell = out.setdefault(r["split"], {}).setdefault(config(r), {}).setdefault(
            r["class"] if r["class"] in NEGATIVE else f"{r['class']}_{k}", Counter())
        cell["pieces"] += 1
        if k == "noise":
            cell["with_text"] += bool(text)
            if text:
                cell.setdefault("texts", []).append(f"{r['item']} [{r['feed']}]: {text}")
        else:
            cell["kept" if text else "dropped"] += 1
            if text:
                cell["unsure"] += conf < unsure_below
            elif k != "misheard":
                cell.setdefault("texts", []).append(f"{r['item']} [{r['feed']}]: dropped "
                                                    f"{' '.join(s.text.strip() for s in segs(r))!r}")
    return {split: {cfg: {c: dict(v) for c, v in classes.items()} for cfg, classes in cfgs.items()}
            for split, cfgs in sorted(out.items())}


def summary(rows: list[dict[str, Any]], refs: dict[str, set[str]], options: WhisperOptions) -> dict[str, Any]:
    """Per split: non-speech pieces and how many gave text; speech pieces by kind and how many lost it."""
    out: dict[str, Counter[str]] = {}
    for r in rows:
        if r["class"] == "wer":
            continue
        k = kind(r, refs)
        text, _ = verdict(r, options)
        cell = out.setdefault(r["split"], Counter())
        cell[f"{k}_pieces"] += 1
        if k == "noise":
            cell["noise_with_text"] += bool(text)
        else:
            cell[f"{k}_dropped"] += not text
    return {split: dict(sorted(c.items())) for split, c in sorted(out.items())}


def choose_unsure(rows: list[dict[str, Any]], refs: dict[str, set[str]], options: WhisperOptions,
                  split: str) -> tuple[float, dict[str, Any]]:
    """The confidence below which hearing counts as unsure: best balanced accuracy between heard and
    misheard answers and speech that the filter keeps, on `split`; and how it does on each split."""
    kept: list[tuple[str, str, float]] = []
    for r in rows:
        if r["class"] in POSITIVE and kind(r, refs) in ("heard", "misheard"):
            text, conf = verdict(r, options)
            if text:
                kept.append((r["split"], kind(r, refs), conf))

    def rates(cut: float, sp: str) -> tuple[float, float]:
        h = [c for s, k, c in kept if s == sp and k == "heard"]
        m = [c for s, k, c in kept if s == sp and k == "misheard"]
        return (sum(c >= cut for c in h) / max(len(h), 1), sum(c < cut for c in m) / max(len(m), 1))

    cuts = np.round(np.arange(0.05, 0.951, 0.01), 2)
    best = max(cuts, key=lambda c: (sum(rates(float(c), split)), -abs(c - 0.5)))
    report = {}
    for sp in ("choose", "holdout"):
        h, m = rates(float(best), sp)
        report[sp] = {"heard_kept": sum(s == sp and k == "heard" for s, k, _ in kept),
                      "misheard_kept": sum(s == sp and k == "misheard" for s, k, _ in kept),
                      "heard_sure": round(h, 3), "misheard_unsure": round(m, 3),
                      "confidence_heard": _spread([c for s, k, c in kept if s == sp and k == "heard"]),
                      "confidence_misheard": _spread([c for s, k, c in kept if s == sp and k == "misheard"])}
    return float(best), report


def word_errors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in rows:
        if r["class"] == "wer":
            text = " ".join(s[0].strip() for s in r["segments"])
            out.setdefault(r["item"], {})[f"{r['model']} {r['feed']}"] = {
                "wer": round(mat.wer(r["ref"], text), 3), "text": text}
    return out


def report(rows: list[dict[str, Any]], score_fit: bool = False) -> dict[str, Any]:
    refs = {r["item"]: set(normalize_phrase(r["ref"]).split()) for r in rows if r["class"] == "wer"}
    points = Points(rows, refs)
    defaults = WhisperOptions()
    folds = {}
    for train, test in (("choose", "holdout"), ("holdout", "choose")):
        t: dict[str, Any] = fit(points, (train,), defaults)  # replace() takes them by field name
        trained = replace(defaults, **t)
        folds[f"fit_on_{train}"] = {"thresholds": t, "errors_on_" + train: errors(points, trained, train),
                                    "errors_on_" + test: errors(points, trained, test)}
    fitted: dict[str, Any] = fit(points, ("choose", "holdout"), defaults)
    if score_fit:  # score the thresholds fitted on all the material instead of the defaults
        defaults = replace(defaults, **fitted)
    unsure, unsure_report = choose_unsure(rows, refs, defaults, "choose")
    segmenter_dropped = sorted({r["item"] for r in rows if r["class"] == "answer" and r["feed"] == "direct"})
    return {
        "setup": {"models": [f"{m} language={lang} int8 cpu_threads=2" for m, lang in MODELS],
                  "feeds": {"vad": "fragments as the call's segmenter cuts them (Silero VAD, core defaults)",
                            "vad250": "the same speech cut at 250 ms pauses: shorter pieces",
                            "direct": "non-speech handed to Whisper as if the VAD had fired (whole clip up "
                                      "to 30 s, and up to four 3 s pieces); an answer the segmenter "
                                      "dropped, as its fragment"},
                  "split": {k: {s: [str(x) for x in v] for s, v in d.items()} for k, d in SPLIT.items()},
                  "heard": "an answer's words are one of HEARD's for its phrase; a piece of a recording "
                           "with a transcript has >= 60% of its words in it",
                  "nsp_scale_in_fit": NSP_SCALE},
        "pieces": dict(Counter(f"{config(r)} {r['class']} {r['feed']}" for r in rows if r["class"] != "wer")),
        "answers_the_segmenter_drops": {"count": len(segmenter_dropped), "of": len(
            {r["item"] for r in rows if r["class"] == "answer"}), "items": segmenter_dropped},
        "features": features(rows, refs),
        "thresholds": {
            "defaults": {name: getattr(defaults, name) for name in
                         ("no_speech_threshold", "silence_logprob", "min_avg_logprob", "long_words",
                          "min_long_logprob", "max_compression_ratio", "stock_no_speech", "stock_logprob")},
            "fitted_on_all": fitted,
            "previous": {name: getattr(PREVIOUS, name) for name in GRID},
            "cross_validation": folds,
            "errors": {split: errors(points, defaults, split) for split in ("choose", "holdout")},
            "margins": {split: margins(points, defaults, split) for split in ("choose", "holdout")},
        },
        "summary": {"defaults": summary(rows, refs, defaults),
                    "previous_filter": summary(rows, refs, PREVIOUS)},
        "outcomes": outcomes(rows, refs, defaults, unsure),
        "unsure": {"unsure_below": unsure, **unsure_report},
        "wer": word_errors(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=Path("/tmp/whisper_noise_rows.json"),
                        help="where the raw measurements are kept")
    parser.add_argument("--reuse", action="store_true", help="score the rows already measured")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "whisper_noise.json")
    parser.add_argument("--score-fit", action="store_true",
                        help="score the thresholds fitted here instead of WhisperOptions' defaults")
    parser.add_argument("--min-window-s", type=float, default=STT.min_window_s,
                        help="the encoder's shortest window (0: Whisper's fixed 30 s)")
    parser.add_argument("--window-pad-s", type=float, default=STT.window_pad_s)
    args = parser.parse_args()
    options = replace(STT, min_window_s=args.min_window_s or None, window_pad_s=args.window_pad_s)
    rows = json.loads(args.rows.read_text()) if args.reuse else measure(args.rows, options)
    result = report(rows, args.score_fit)
    columns = ["model", "language", "item", "class", "split", "feed", "start_s", "seconds", "decode_ms",
               "segments [text, no_speech_prob, avg_logprob, compression_ratio]"]
    result["rows"] = {"columns": columns,
                      "data": [[r["model"], r["language"], r["item"], r["class"], r["split"], r["feed"],
                                r["start_s"], r["seconds"], r["decode_ms"], [s[:4] for s in r["segments"]]]
                               for r in rows]}
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: result[k] for k in ("thresholds", "unsure")}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
