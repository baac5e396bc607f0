"""How whisper hears dictated digit groups under each prompt the runtime could give it.

    python benchmarks/digit_prompts.py [--json benchmarks/digit_prompts.json]

Every phrase holding digits in the number scenarios (tests/data/scenarios, those that name a `number`),
in every voice and channel benchmarks/scenario_audio.py renders, is cut from its render by its timed
transcript (0.2 s before, 0.15 s after) and decoded by the starter's whisper for its language (tiny.en,
base), once per prompt. A phrase counts as heard when the digits of the kept transcript are exactly the
digits said (`server.core.dictation.digits_said`, numerals and number words alike).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scenario_audio import load_specs, render, renders
from models.stt_transcript import read_transcript
from models.stt_whisper import WhisperStt, transcript_of
from server.audio import read_audio, to_float
from server.core.dictation import digits_said
from server.runtime import DIGITS_HINT

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path("/var/lib/standin/models/whisper")
WHISPER = {"en": "tiny.en", "it": "base"}
PROMPTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "digits": (DIGITS_HINT,),
    "owner+digits": ("Marco", DIGITS_HINT),
    "numbers": ("347 122 5891, 06 4483 216",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=MODELS)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "digit_prompts.json")
    args = parser.parse_args()
    stt = {lang: WhisperStt(args.models / name) for lang, name in WHISPER.items()}
    heard: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for scenario, voice, channel in renders([s for s in load_specs() if s.number]):
        r = render(scenario, voice, channel)
        audio = to_float(read_audio(r.wav))
        lang = scenario.language
        for phrase in read_transcript(r.tsv):
            said = digits_said(phrase.text, lang)
            if not said:
                continue
            piece = audio[max(0, round((phrase.start_s - 0.2) * 16000)):round((phrase.end_s + 0.15) * 16000)]
            for name, hints in PROMPTS.items():
                _, text = transcript_of(stt[lang].decode(piece, language=lang, hints=hints), lang,
                                        stt[lang].options)
                tally = heard[f"{lang} {WHISPER[lang]}"][name]
                tally[0] += digits_said(text, lang) == said
                tally[1] += 1
    result = {group: {name: {"right": right, "phrases": n} for name, (right, n) in by.items()}
              for group, by in heard.items()}
    for group, by in result.items():
        print(group, ", ".join(f"{name} {v['right']}/{v['phrases']}" for name, v in by.items()))
    args.json.write_text(json.dumps({"prompts": {k: list(v) for k, v in PROMPTS.items()}, "heard": result},
                                    indent=1) + "\n")


if __name__ == "__main__":
    main()
