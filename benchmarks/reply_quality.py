"""What the reply models say, and how soon their first clause is ready, on callers nobody tuned for.

    python benchmarks/reply_quality.py [--models DIR] [--gguf llm/A.gguf,llm/B.gguf] [--templates DIR ...]
                                       [--temperatures 0.6,0.2] [--turns 2] [--only NAME]
                                       [--json benchmarks/reply_quality.json]
    python benchmarks/reply_quality.py --rescore --json FILE    # the fault rules again, on replies kept

Stories: every scenario in tests/data/scenarios (English and Italian). The bot's line before the caller is
the scenario's `context`, or the greeting; the caller's first turn is its phrases up to the first COMPLETE.
The model answers; with `--turns 2` the caller's next turn (phrases up to the next COMPLETE) follows the
model's own answer and it answers again. Each reply runs as on a call: the system prompt primed, the bot's
line before the caller prefilled, then the reply timed (first token; first clause as the TTS clause
splitter cuts it; the whole reply). Each reply keeps its text pieces with the times they came, so the
splitter's settings are compared on the very same replies (`first_clause_by_min_words` in the summary).

Faults are checked by rules, per reply (a reply may have several):
- empty: nothing to say;
- language: the reply is not in the call's language;
- assistant: help-desk phrases no person answering a phone says ("further assistance", "I can't assist");
- owner: takes the caller for the owner ("Thank you, Marco.", "Sure, Marco's phone, ...") or speaks as
  the owner ("this is Marco");
- invented: says what only the owner could know (that he is free, back on Monday, will call at five);
- repeat: one word over and over;
- leak: the prompt's own words or marks read aloud ("[cut off]", six words in a row of the instructions);
- format: lists, markup, emoji;
- long: more than three sentences or 45 words.
The replies are written out in full so that what the rules cannot judge (made-up facts, an unanswered
question) can be read.

Variants (model x template directory x temperature; `--templates ''` is the shipped one) run in one
process, story by story, interleaved, so that they see the same load.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.engines import CallContext, Line, ReplyDelta, ReplyEnd  # noqa: E402
from models.prompts import system_prompt  # noqa: E402
from server.core.speech import ClauseSplitter, SpeechOptions  # noqa: E402

SPECS = ROOT / "tests" / "data" / "scenarios"
OWNER = "Marco"
GREETING = {"en": "Hello, you have reached Marco's phone. I'm his assistant: how can I help?",  # starter's
            "it": "Pronto, telefono di Marco, sono la sua assistente: come posso aiutarla?"}
DEFAULT_GGUFS = ("llm/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")

_ASSISTANT = {
    "en": re.compile(r"\b(assist(ance)?|any other questions|further (help|information)|as an ai|"
                     r"language model|i('m| am) (just )?an? (ai|assistant|virtual)|i can(no|')t help|"
                     r"feel free to|how can i help you today|"
                     r"i don't (have|know) (any|enough|who|what))\b", re.I),
    "it": re.compile(r"\b(assistenza|assisterti|assisterla|altre domande|intelligenza artificiale|"
                     r"modello (di )?linguaggio|sono un assistente|non posso (aiutar|interagir|rispondere)|"
                     r"non esitare|come posso aiutar\w* oggi)", re.I),
}
_GREETS = (r"hello|hi|hey|good (morning|afternoon|evening)|thank you|thanks|sure|okay|ok|got it|yes|no|"
           r"ciao|salve|buongiorno|buonasera|pronto|grazie|certo|va bene|sì|no")
_OWNER = re.compile(rf"(^|[.!?]\s+)({_GREETS})?\W*{OWNER}\s*[,!?]|"
                    rf"\b({_GREETS}),?\s+{OWNER}('s phone)?\s*([,.!?]|$)|"
                    rf"\b(this is|i am|i'm|it's|sono|qui è|parla) {OWNER}\b(?!'s)", re.I)
_INVENTED = {  # what only the owner could say: where they are, when they are free, what they will do
    "en": re.compile(rf"\b({OWNER}|he) (is|isn't|will be|won't be|is not) (free|available|busy|there|in|out|"
                     rf"back|away)\b|\b({OWNER}|he) (will|can) (call|meet|see|be)\b.*\b(at|on) \w+|"
                     rf"\b(the office|the shop|we) (is|are) (open|closed)\b|\byou can(not|'t)? pay\b", re.I),
    "it": re.compile(rf"\b({OWNER}|lui) (non )?(è|sarà) (libero|occupat|disponibil|qui|lì|via|in ufficio|"
                     rf"fuori)|\b{OWNER} torna\b|\b(l'ufficio|il negozio|lo studio) è (aperto|chiuso)\b|"
                     rf"\bè possibile pagare\b", re.I),
}
_REPEAT = re.compile(r"\b(\w+)\W+(\1\W+){4,}", re.I)
_LEAK = re.compile(r"\[cut off\]|end_call|\bcaller'?s? (number|name) is\b|\bnumero di chi chiama\b|"
                   r"\{[a-z_]+\}|\b(you|caller):", re.I)
_FORMAT = re.compile(r"(^|\n)\s*([-*•#]|\d+[.)])\s|\*\*|[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_WORDS = {"en": {"the", "you", "and", "is", "to", "of", "will", "your", "i", "it", "that", "for", "can"},
          "it": {"il", "di", "che", "è", "e", "la", "per", "un", "non", "le", "lo", "mi", "ti", "gli", "sono",
                 "del", "della", "una", "al", "grazie"}}
_SENTENCE = re.compile(r"[^.!?]+[.!?]+|[^.!?]+$")


def faults(text: str, language: str, instructions: str = "") -> list[str]:
    """The rule-checked faults of one reply (module docstring); `instructions`: the system prompt it was
    written under."""
    out = []
    words = re.findall(r"[\w']+", text.lower())
    if not words:
        return ["empty"]
    other = "en" if language == "it" else "it"
    ours = sum(w in _WORDS[language] for w in words)
    theirs = sum(w in _WORDS[other] for w in words)
    if theirs > ours:
        out.append("language")
    if _ASSISTANT[language].search(text):
        out.append("assistant")
    if _OWNER.search(text):
        out.append("owner")
    if any(not re.search(r"\b(if|whether|when|quando|se)\W*$", text[:m.start()], re.I)
           for m in _INVENTED[language].finditer(text)):
        out.append("invented")
    if _REPEAT.search(text):
        out.append("repeat")
    if _LEAK.search(text) or _shares_words(text, instructions, 6):
        out.append("leak")
    if _FORMAT.search(text):
        out.append("format")
    if len(_SENTENCE.findall(text.strip())) > 3 or len(words) > 45:
        out.append("long")
    return out


def _shares_words(text: str, other: str, n: int) -> bool:
    """Whether `text` repeats `n` words in a row of `other`."""
    def grams(words: list[str]) -> set[tuple[str, ...]]:
        return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    return bool(grams(re.findall(r"[\w']+", text.lower())) & grams(re.findall(r"[\w']+", other.lower())))


def stories(turns: int) -> list[dict[str, Any]]:
    """Per scenario: its language, the bot's line before the caller, and up to `turns` caller turns."""
    out = []
    for spec_file in sorted(SPECS.glob("*.json")):
        spec = json.loads(spec_file.read_text())
        language = spec["language"]
        for scenario in spec["scenarios"]:
            said, caller_turns = [], []
            for _pause, label, text in scenario["phrases"]:
                said.append(text)
                if label == "COMPLETE":
                    caller_turns.append(" ".join(said))
                    said = []
            if caller_turns:
                out.append({"name": scenario["name"], "language": language,
                            "bot": scenario.get("context") or GREETING[language],
                            "turns": caller_turns[:turns]})
    return out


class Variant:
    def __init__(self, models: Path, gguf: str, templates: str | None, threads: int,
                 temperature: float | None = None) -> None:
        from models.llama import LlamaOptions, load_llama
        from models.llm_llamacpp import LlamaCppReplies, LlamaCppRepliesOptions
        from server.config import Config

        llm = Config().llm
        self.templates = templates
        temperature = llm.temperature if temperature is None else temperature
        self.name = (f"{Path(gguf).stem} t={temperature:g}" + (f" + {templates}" if templates else ""))
        self.replies = LlamaCppReplies(load_llama(models / gguf, LlamaOptions(n_threads=threads)),
                                       LlamaCppRepliesOptions(max_tokens=llm.max_tokens,
                                                              temperature=temperature,
                                                              template_dir=templates))
        self.replies.warm_up()

    def call(self, story: dict[str, Any]) -> list[dict[str, Any]]:
        context = call_context(story["language"])
        self.replies.prime(context)
        instructions = system_prompt(context, self.templates)
        lines = [Line("bot", story["bot"])]
        out = []
        for turn in story["turns"]:
            self.replies.prefill(lines, context)
            lines.append(Line("caller", turn))
            reply = self.reply(lines, context)
            reply["faults"] = faults(reply["text"], story["language"], instructions)
            out.append(reply)
            lines.append(Line("bot", reply["text"]))
            if reply["end_call"]:
                break
        return out

    def reply(self, lines: Sequence[Line], context: CallContext) -> dict[str, Any]:
        deltas: list[tuple[float, str]] = []
        end_call = False
        t0 = time.perf_counter()
        for event in self.replies.reply(lines, context):
            if isinstance(event, ReplyDelta):
                deltas.append((round(_ms(t0), 1), event.text))
            elif isinstance(event, ReplyEnd):
                end_call = event.end_call
        total = round(_ms(t0), 1)
        first_clause, clause = first_clause_at(deltas, total, SpeechOptions())
        return {"text": "".join(text for _, text in deltas).strip(),
                "first_token_ms": deltas[0][0] if deltas else total, "first_clause_ms": first_clause,
                "first_clause": clause, "total_ms": total, "end_call": end_call, "deltas": deltas}


def first_clause_at(deltas: Sequence[Sequence[Any]], total_ms: float,
                    options: SpeechOptions) -> tuple[float, str]:
    """When the TTS clause splitter with `options` would have let the first clause go, and that clause,
    given the reply's text pieces as (ms, text) in the order and at the times they came."""
    splitter = ClauseSplitter(options)
    for at, text in deltas:
        if ready := splitter.feed(text):
            return at, ready[0]
    return total_ms, splitter.flush() or ""


def call_context(language: str) -> CallContext:
    return CallContext(language=language, owner_name=OWNER, started_at="2026-12-03T10:30:00")


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def summarise(replies: list[dict[str, Any]]) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for r in replies:
        for f in r["faults"]:
            kinds[f] = kinds.get(f, 0) + 1
    clause_words = [len(r["first_clause"].split()) for r in replies]
    return {"replies": len(replies), "with_a_fault": sum(bool(r["faults"]) for r in replies), "faults": kinds,
            "first_token_ms": round(statistics.median(r["first_token_ms"] for r in replies)),
            "first_clause_ms": round(statistics.median(r["first_clause_ms"] for r in replies)),
            "first_clause_words": statistics.median(clause_words),
            "words": statistics.median(len(r["text"].split()) for r in replies),
            "total_ms": round(statistics.median(r["total_ms"] for r in replies)),
            **({"first_clause_by_min_words": by_min_words(replies)} if all("deltas" in r for r in replies)
               else {})}


def by_min_words(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """The first clause on the recorded token times with `first_clause_min_words` 1, 2 and 3: median,
    and against 2 (the setting before 2026-12-05), how many replies it starts sooner and by how much."""
    def at(r: dict[str, Any], n: int) -> float:
        return first_clause_at(r["deltas"], r["total_ms"], SpeechOptions(first_clause_min_words=n))[0]

    out: dict[str, Any] = {}
    for n in (1, 2, 3):
        gains = [at(r, 2) - at(r, n) for r in replies]
        sooner = [g for g in gains if g > 0]
        out[str(n)] = {"median_ms": round(statistics.median(at(r, n) for r in replies)),
                       "sooner_than_2": len(sooner), "later_than_2": sum(g < 0 for g in gains),
                       "median_gain_ms": round(statistics.median(sooner)) if sooner else 0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--gguf", default=",".join(DEFAULT_GGUFS))
    parser.add_argument("--templates", action="append", default=None,
                        help="a reply template directory to compare with the shipped one ('' = shipped)")
    parser.add_argument("--temperatures", default="", help="sampling temperatures to compare (default: the "
                        "configured one)")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="scenario names containing this")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "reply_quality.json")
    parser.add_argument("--rescore", action="store_true",
                        help="check the replies in --json again, run nothing")
    args = parser.parse_args()
    if args.rescore:
        kept = json.loads(args.json.read_text())
        for name, calls in kept["calls"].items():
            templates = kept.get("templates", {}).get(name)
            for c in calls:
                instructions = system_prompt(call_context(c["language"]), templates)
                for r in c["replies"]:
                    r["faults"] = faults(r["text"], c["language"], instructions)
        report(kept, args.json)
        return
    from models.manager import default_models_dir

    models = args.models or default_models_dir()
    templates = [t or None for t in (args.templates or [""])]
    temperatures: list[float | None] = [float(t) for t in args.temperatures.split(",") if t] or [None]
    variants = [Variant(models, gguf, t, args.threads, temp)
                for gguf in args.gguf.split(",") for t in templates for temp in temperatures]
    chosen = [s for s in stories(args.turns) if args.only in s["name"]]
    results: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    t_start = time.monotonic()
    for i, story in enumerate(chosen, 1):
        for v in variants:
            results[v.name].append({"scenario": story["name"], "language": story["language"],
                                    "replies": v.call(story)})
        print(f"\r{i}/{len(chosen)} stories, {time.monotonic() - t_start:.0f} s", end="", file=sys.stderr,
              flush=True)
    print(file=sys.stderr)
    out: dict[str, Any] = {"machine": {"date": time.strftime("%Y-%m-%d"), "threads": args.threads},
                           "templates": {v.name: v.templates for v in variants}, "summary": {},
                           "calls": results}
    report(out, args.json)


def report(out: dict[str, Any], path: Path) -> None:
    out["summary"] = {}
    for name, calls in out["calls"].items():
        for language in ("en", "it"):
            replies = [r for c in calls if c["language"] == language for r in c["replies"]]
            if replies:
                out["summary"][f"{name} [{language}]"] = summarise(replies)
    path.write_text(_dump(out) + "\n")
    print(json.dumps(out["summary"], indent=1, ensure_ascii=False))


def _dump(out: dict[str, Any]) -> str:
    """`out` as indented JSON, each reply's text pieces on one line of their own."""
    pieces: list[str] = []

    def lay(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (_mark(pieces, v) if k == "deltas" else lay(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [lay(v) for v in value]
        return value

    text = json.dumps(lay(out), indent=1, ensure_ascii=False)
    return re.sub(r'"\\u0000(\d+)"', lambda m: pieces[int(m.group(1))], text)  # json escapes the NUL


def _mark(pieces: list[str], value: Any) -> str:
    pieces.append(json.dumps(value, ensure_ascii=False))
    return f"\x00{len(pieces) - 1}"


if __name__ == "__main__":
    main()
