"""The LLM turn judge: one forward pass of a small local model, read as COMPLETE versus WAIT.

The prompt is a fixed prefix (instructions, then few-shot examples in the call's language) followed by
the recent story, and asks about the caller's last line only. Nothing is generated: the verdict is the
probability mass the model puts on the first token of "COMPLETE" against that of "WAIT" as its next
token (both spellings and casings, summed). The prefix stays in llama.cpp's KV cache (see
`models.llama`), so a verdict costs only the story's tokens.

That raw score, log p(COMPLETE) - log p(WAIT), is no probability until it is calibrated for the model
(`models.judge_calibration`): in mode "combined" (the default) the calibration also weighs the rules
judge's verdict on the same story, so that a trailing "and" or a question mark counts for what it is
and the model decides where the rules are unsure; in mode "llm" the model's score stands alone. A
model without a calibration for this prompt gives sigmoid(score), and says so once in the log.

`make_judge` gives the rules judge when no model is configured. The threshold is the caller's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.engines import EngineError, Line, TurnJudge, Verdict
from models.judge_calibration import Calibration, lookup
from models.judge_rules import RulesJudge
from models.llama import LlamaModel, LlamaOptions, common_prefix, load_llama
from models.prompts import base_language

__all__ = ["LlmJudge", "LlmJudgeOptions", "make_judge", "prompt_fingerprint"]

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "You judge turn-taking on a phone call. A bot answers the phone for its owner and takes a message. "
    "The caller's words come from speech recognition, cut at every pause, so a line may lack "
    "punctuation and capitals: judge by the words. Judge the caller's LAST line only, in the light of "
    "what was said before: has the caller finished for now, so that the bot should answer (COMPLETE), "
    "or did they only pause and will go on (WAIT)?\n"
    "WAIT: the sentence is cut off (it ends in \"and\", \"but\", \"because\", \"the\", \"to\"...); a "
    "hesitation (\"um\", \"so\", \"well\"); an opener or an introduction before the reason (\"I'm calling "
    "because\", \"I have a message for Anna\", \"Hi, this is Luca from the bank.\"); a list that was "
    "announced and is not finished; a phone number, an address or a spelling still being dictated.\n"
    "COMPLETE: a question (with or without a question mark), a request, a whole message, an answer to "
    "the bot's question, a thank-you or a goodbye.\n"
    "Answer with one word: COMPLETE or WAIT."
)
_CALL_LANGUAGE = " The call is in {name}."
_LANGUAGE_NAMES = {"it": "Italian", "de": "German", "fr": "French", "es": "Spanish"}

# (transcript, answer); the transcript's lines are "Caller: ..." and "Bot: ...". No example is a line of
# the calibration cases (tests/data/turns/) or of ../shared/turns/dev.tsv.
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("Caller: Hi, I'm calling about the invoice and", "WAIT"),
        ("Caller: could you ask him to call me back", "COMPLETE"),
        ("Caller: I need to tell him three things. First, the delivery is late.", "WAIT"),
        ("Caller: is he in the office today", "COMPLETE"),
        ("Bot: What number can he call you back on?\nCaller: three four seven\nCaller: two two", "WAIT"),
        ("Caller: his bike is ready at the shop", "COMPLETE"),
        ("Caller: Second, the price went up.\nBot: Mm-hm.\nCaller: And third, we need a new date.",
         "COMPLETE"),
        ("Caller: good morning it's davide from the gym", "WAIT"),
        ("Bot: And your number?\nCaller: six one seven\nCaller: four four two\nCaller: nine zero one five",
         "COMPLETE"),
        ("Caller: Hello, this is Carla from the bank.", "WAIT"),
        ("Bot: Who's calling, please?\nCaller: carla from the bank", "COMPLETE"),
        ("Caller: so um the thing is", "WAIT"),
        ("Caller: He can reach me at home tonight. Thanks, bye.", "COMPLETE"),
    ),
    "it": (
        ("Caller: Buongiorno, chiamo per la fattura e", "WAIT"),
        ("Caller: può dirgli di richiamarmi", "COMPLETE"),
        ("Caller: Devo dirgli tre cose. Prima, la consegna è in ritardo.", "WAIT"),
        ("Caller: è in ufficio oggi", "COMPLETE"),
        ("Bot: A che numero la può richiamare?\nCaller: tre quattro sette\nCaller: due due", "WAIT"),
        ("Caller: la sua bici è pronta in negozio", "COMPLETE"),
        ("Caller: Secondo, il prezzo è aumentato.\nBot: Sì.\nCaller: E terzo, ci serve una nuova data.",
         "COMPLETE"),
        ("Caller: buongiorno sono davide della palestra", "WAIT"),
        ("Bot: E il suo numero?\nCaller: sei uno sette\nCaller: quattro quattro due\nCaller: nove zero uno "
         "cinque", "COMPLETE"),
        ("Caller: Buongiorno, sono Carla della banca.", "WAIT"),
        ("Bot: Chi parla, scusi?\nCaller: carla della banca", "COMPLETE"),
        ("Caller: allora ehm il fatto è che", "WAIT"),
        ("Caller: Mi trova a casa stasera. Grazie, arrivederci.", "COMPLETE"),
    ),
}
_ANSWERS = {"COMPLETE": ("COMPLETE", " COMPLETE", "Complete", " Complete", "complete"),
            "WAIT": ("WAIT", " WAIT", "Wait", " Wait", "wait")}


@dataclass(frozen=True, slots=True)
class LlmJudgeOptions:
    max_lines: int = 6  # story lines shown, ending with the caller's last line
    max_chars: int = 400  # per line; a longer line keeps its end
    warm_languages: tuple[str, ...] = field(default=("en", "it"))  # prefixes evaluated by warm_up()
    mode: str = "combined"  # "combined": the model's score and the rules judge's verdict; "llm": the model
    calibration: Calibration | None = None  # None: the one fitted for the model file, if any
    # combined mode: a rules verdict at or beyond these p_complete stands alone and the model is not run
    # (a trailing "and", a question mark: 99 % right on tests/data/turns); None: always run the model
    rules_gate: tuple[float, float] | None = (0.15, 0.8)


@dataclass(frozen=True, slots=True)
class _Prompt:
    """The judge's prompt in one language, as the model tokenizes it."""

    prefix: tuple[int, ...]  # the tokens every full prompt starts with: instructions and examples
    complete: tuple[int, ...]  # first tokens of the two answers
    wait: tuple[int, ...]


class LlmJudge:
    """A `TurnJudge` reading one next-token distribution of a llama.cpp model."""

    def __init__(self, model: LlamaModel, options: LlmJudgeOptions = LlmJudgeOptions()) -> None:
        self.model = model
        self.options = options
        self.last_evaluated = 0  # tokens the last verdict evaluated (the prefix cache at work)
        self._prompts: dict[str, _Prompt] = {}
        self.calibration = options.calibration
        if self.calibration is None:
            self.calibration, why = lookup(model.path, prompt_fingerprint(options), options.mode)
            if self.calibration is None:
                log.warning("the turn judge is uncalibrated: %s; its p_complete is the raw sigmoid of the "
                            "model's score (calibrate it with benchmarks/judge_calibration.py --write)", why)
        # held only when it is consulted: the call's provenance names the judges a judge holds
        self.rules = RulesJudge() if self.calibration is not None and self.calibration.uses_rules else None

    def warm_up(self) -> None:
        for language in self.options.warm_languages:
            prefix = self._prompt(language).prefix
            with self.model.lock:
                self.model.eval_prompt(prefix, keep=len(prefix))

    def judge(self, story: Sequence[Line], *, language: str) -> Verdict:
        calibration = self.calibration
        rules = None
        if self.rules is not None:
            rules = self.rules.judge(story, language=language)
            gate = self.options.rules_gate
            if rules.reason == "empty" or (gate and not gate[0] < rules.p_complete < gate[1]):
                self.last_evaluated = 0
                return rules  # the rules are sure: no need to ask the model
        margin = self.score(story, language=language)
        if margin is None:
            return Verdict(0.0, "empty")
        if calibration is None:
            return Verdict(_sigmoid(margin), "llm")
        if rules is not None:
            return Verdict(calibration.p_complete(margin, rules.p_complete), f"llm+{rules.reason}")
        return Verdict(calibration.p_complete(margin), "llm-calibrated")

    def score(self, story: Sequence[Line], *, language: str) -> float | None:
        """The raw score of the caller's last line: log p(COMPLETE) - log p(WAIT) as the model's next
        token; None when the caller has said nothing."""
        transcript = self._transcript(story)
        if not transcript:
            return None
        prompt = self._prompt(language)
        tokens = self.model.tokenize(self._render(language, transcript))
        with self.model.lock:
            self.last_evaluated = self.model.eval_prompt(tokens, keep=len(prompt.prefix))
            logits = self.model.logits()
        return _logsumexp(logits[list(prompt.complete)]) - _logsumexp(logits[list(prompt.wait)])

    # ----------------------------------------------------------------------- prompt

    def _transcript(self, story: Sequence[Line]) -> str:
        """The recent story up to the caller's last line, one "Caller:"/"Bot:" line each."""
        last = next((i for i in range(len(story) - 1, -1, -1)
                     if story[i].role == "caller" and story[i].text.strip()), None)
        if last is None:
            return ""
        lines = []
        for line in story[:last + 1]:
            text = " ".join(line.text.split())
            if text:
                text = text if len(text) <= self.options.max_chars else "..." + text[-self.options.max_chars:]
                lines.append(f"{'Caller' if line.role == 'caller' else 'Bot'}: {text}")
        return "\n".join(lines[-self.options.max_lines:])

    def _messages(self, language: str) -> list[dict[str, str]]:
        code = base_language(language)
        instructions = INSTRUCTIONS
        if code != "en":
            instructions += _CALL_LANGUAGE.format(name=_LANGUAGE_NAMES.get(code, code))
        messages = [{"role": "system", "content": instructions}]
        for transcript, answer in EXAMPLES.get(code, EXAMPLES["en"]):
            messages += [{"role": "user", "content": transcript}, {"role": "assistant", "content": answer}]
        return messages

    def _render(self, language: str, transcript: str | None) -> str:
        """The whole prompt for `transcript`, or only its fixed prefix when it is None."""
        messages = self._messages(language)
        if self.model.has_chat_template:
            if transcript is None:
                return self.model.chat_prompt(messages, generation_prompt=False)
            return self.model.chat_prompt([*messages, {"role": "user", "content": transcript}])
        parts = [messages[0]["content"]]
        parts += [f"Transcript:\n{q['content']}\nAnswer: {a['content']}"
                  for q, a in zip(messages[1::2], messages[2::2], strict=True)]
        if transcript is not None:
            parts.append(f"Transcript:\n{transcript}\nAnswer:")
        return "\n\n".join(parts)

    def _prompt(self, language: str) -> _Prompt:
        code = base_language(language)
        if code in self._prompts:
            return self._prompts[code]
        sample = self._render(code, "Caller: Hello.")
        sample_tokens = self.model.tokenize(sample)
        keep = common_prefix(self.model.tokenize(self._render(code, None)), sample_tokens)
        complete = self._first_tokens(sample, sample_tokens, _ANSWERS["COMPLETE"])
        wait = self._first_tokens(sample, sample_tokens, _ANSWERS["WAIT"])
        complete, wait = complete - wait, wait - complete
        if not complete or not wait:
            raise EngineError(f"{self.model.path.name} cannot tell COMPLETE from WAIT by their first "
                              "token; choose another judge model")
        prompt = self._prompts[code] = _Prompt(tuple(sample_tokens[:keep]), tuple(sorted(complete)),
                                               tuple(sorted(wait)))
        return prompt

    def _first_tokens(self, prompt: str, tokens: list[int], answers: Sequence[str]) -> set[int]:
        """The tokens the model would emit first to write one of `answers` right after `prompt`."""
        firsts = set()
        for answer in answers:
            extended = self.model.tokenize(prompt + answer)
            if len(extended) > len(tokens) and extended[:len(tokens)] == tokens:
                firsts.add(extended[len(tokens)])
        return firsts


def prompt_fingerprint(options: LlmJudgeOptions = LlmJudgeOptions()) -> str:
    """A short digest of everything that shapes the judge's prompt: a calibration holds only for the
    prompt it was fitted with."""
    shape = [INSTRUCTIONS, _CALL_LANGUAGE, _LANGUAGE_NAMES, EXAMPLES, _ANSWERS, options.max_lines,
             options.max_chars]
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    return math.exp(x) / (1.0 + math.exp(x))


def _logsumexp(values: np.ndarray) -> float:
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()))


def make_judge(model_path: str | Path | None, *, llama: LlamaOptions | None = None,
               options: LlmJudgeOptions = LlmJudgeOptions()) -> TurnJudge:
    """The LLM judge on the GGUF at `model_path`, or the rules judge when no model is configured."""
    if not model_path:
        return RulesJudge()
    return LlmJudge(load_llama(model_path, llama or LlamaOptions()), options)
