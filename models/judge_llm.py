"""The LLM turn judge: one forward pass of a small local model, read as COMPLETE versus WAIT.

The prompt is a fixed prefix (instructions, then few-shot examples in the call's language) followed by
the recent story, and asks about the caller's last line only. Nothing is generated: the verdict is the
probability mass the model puts on the first token of "COMPLETE" against that of "WAIT" as its next
token (both spellings and casings, summed). The prefix stays in llama.cpp's KV cache (see
`models.llama`), so a verdict costs only the story's tokens.

`make_judge` gives the rules judge when no model is configured. The threshold is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.engines import EngineError, Line, TurnJudge, Verdict
from models.judge_rules import RulesJudge
from models.llama import LlamaModel, LlamaOptions, common_prefix, load_llama
from models.prompts import base_language

__all__ = ["LlmJudge", "LlmJudgeOptions", "make_judge"]

INSTRUCTIONS = (
    "You judge turn-taking on a phone call. A bot answers the phone for its owner and takes a message; "
    "the caller speaks in short fragments with pauses between them. Read the transcript and judge the "
    "caller's LAST line only: has the caller finished for now, so that the bot should answer (COMPLETE), "
    "or did they only pause and will go on (WAIT)? A period is not proof of an end: a list that was "
    "announced and is not finished, a number being dictated, or a line ending in \"and\", \"so\" or a "
    "hesitation goes on. A question, a request, a thank-you or a goodbye is COMPLETE. Answer with one "
    "word: COMPLETE or WAIT."
)
_CALL_LANGUAGE = " The call is in {name}."
_LANGUAGE_NAMES = {"it": "Italian", "de": "German", "fr": "French", "es": "Spanish"}

# (transcript, answer); the transcript's lines are "Caller: ..." and "Bot: ...".
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("Caller: Hi, I'm calling about the invoice and", "WAIT"),
        ("Caller: Could you ask him to call me back?", "COMPLETE"),
        ("Caller: I need to tell him three things. First, the delivery is late.", "WAIT"),
        ("Caller: Second, the price went up.\nBot: Mm-hm.\nCaller: And third, we need a new date.",
         "COMPLETE"),
        ("Caller: My number is three four seven, two two", "WAIT"),
        ("Caller: So, um, the thing is", "WAIT"),
        ("Caller: He can reach me at home tonight. Thanks, bye.", "COMPLETE"),
    ),
    "it": (
        ("Caller: Buongiorno, chiamo per la fattura e", "WAIT"),
        ("Caller: Può dirgli di richiamarmi?", "COMPLETE"),
        ("Caller: Devo dirgli tre cose. Prima, la consegna è in ritardo.", "WAIT"),
        ("Caller: Secondo, il prezzo è aumentato.\nBot: Sì.\nCaller: E terzo, ci serve una nuova data.",
         "COMPLETE"),
        ("Caller: Il mio numero è tre quattro sette, due due", "WAIT"),
        ("Caller: Allora, ehm, il fatto è che", "WAIT"),
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

    def warm_up(self) -> None:
        for language in self.options.warm_languages:
            prefix = self._prompt(language).prefix
            with self.model.lock:
                self.model.eval_prompt(prefix, keep=len(prefix))

    def judge(self, story: Sequence[Line], *, language: str) -> Verdict:
        transcript = self._transcript(story)
        if not transcript:
            return Verdict(0.0, "empty")
        prompt = self._prompt(language)
        tokens = self.model.tokenize(self._render(language, transcript))
        with self.model.lock:
            self.last_evaluated = self.model.eval_prompt(tokens, keep=len(prompt.prefix))
            logits = self.model.logits()
        margin = _logsumexp(logits[list(prompt.complete)]) - _logsumexp(logits[list(prompt.wait)])
        return Verdict(_sigmoid(margin), "llm")

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
