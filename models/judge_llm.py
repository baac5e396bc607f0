"""The LLM turn judge: one forward pass of a small local model, read as "has the caller's turn ended".

The story is laid out as a chat in the model's own template: a one-line system message saying what the
call is, the bot's lines as the assistant's, the caller's as the user's, and the caller's last words as a
user message left open. Nothing is generated: the score is the log-probability that the model's next
token ends that message, either the template's end-of-turn token or a mark that ends a sentence (". ? !":
an unpunctuated transcript is finished where the model would put one). The model has read countless
finished and unfinished messages; asking it to classify a line instead (log p(COMPLETE) - log p(WAIT)
after instructions and examples) ranked the labelled lines worse, AUC 0.84 to 0.91 against 0.88 to 0.97
for the 1.5B (benchmarks/judge_calibration.py, README). The system line stays in llama.cpp's KV cache
(see `models.llama`), so a verdict costs only the story's tokens.

That score is no probability of a finished turn until it is calibrated for the model
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

# What the call is, in the call's language (another language gets the English line and its name).
SYSTEM: dict[str, str] = {
    "en": "A phone call. The assistant answers for its owner and takes a message from the caller.",
    "it": "Una telefonata. L'assistente risponde per il titolare e prende un messaggio per lui.",
}
_CALL_LANGUAGE = " The call is in {name}."
_LANGUAGE_NAMES = {"de": "German", "fr": "French", "es": "Spanish"}
_MARKS = (".", "?", "!")  # a sentence ends here: for an unpunctuated transcript, the caller's turn does
_ROLES = {"caller": "user", "bot": "assistant"}
_PLAIN_NAMES = {"user": "Caller", "assistant": "Bot"}  # a model without a chat template reads lines


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

    prefix: tuple[int, ...]  # the tokens every prompt starts with: the system line
    ends: tuple[int, ...]  # the tokens that end the caller's message: end of turn, ". ? !"


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
        score = self.score(story, language=language)
        if score is None:
            return Verdict(0.0, "empty")
        if calibration is None:
            return Verdict(_sigmoid(score), "llm")
        if rules is not None:
            return Verdict(calibration.p_complete(score, rules.p_complete), f"llm+{rules.reason}")
        return Verdict(calibration.p_complete(score), "llm-calibrated")

    def score(self, story: Sequence[Line], *, language: str) -> float | None:
        """The raw score of the caller's last words: the log-probability that the model's next token
        ends their message (`_Prompt.ends`); None when the caller has said nothing."""
        messages = self._messages(story)
        if messages is None:
            return None
        prompt = self._prompt(language)
        tokens = self.model.tokenize(self._render(language, messages))
        with self.model.lock:
            self.last_evaluated = self.model.eval_prompt(tokens, keep=len(prompt.prefix))
            logits = self.model.logits().astype(np.float64)
        return _logsumexp(logits[list(prompt.ends)]) - _logsumexp(logits)

    # ----------------------------------------------------------------------- prompt

    def _messages(self, story: Sequence[Line]) -> list[tuple[str, str]] | None:
        """The recent story up to the caller's last words as (role, text) turns, "user" for the caller
        and "assistant" for the bot, a role's consecutive lines joined; None when the caller said
        nothing. The last turn is the caller's, the one the model is asked to end or not."""
        last = next((i for i in range(len(story) - 1, -1, -1)
                     if story[i].role == "caller" and story[i].text.strip()), None)
        if last is None:
            return None
        limit = self.options.max_chars
        lines = [(line.role, " ".join(line.text.split())) for line in story[:last + 1]]
        turns: list[tuple[str, str]] = []
        for role, said in [x for x in lines if x[1]][-self.options.max_lines:]:
            text = said if len(said) <= limit else "..." + said[-limit:]
            if turns and turns[-1][0] == _ROLES[role]:
                turns[-1] = (turns[-1][0], f"{turns[-1][1]} {text}")
            else:
                turns.append((_ROLES[role], text))
        return turns

    def _system(self, language: str) -> str:
        code = base_language(language)
        if code in SYSTEM:
            return SYSTEM[code]
        return SYSTEM["en"] + _CALL_LANGUAGE.format(name=_LANGUAGE_NAMES.get(code, code))

    def _render(self, language: str, turns: Sequence[tuple[str, str]] | None) -> str:
        """The prompt for `turns`, cut right after the caller's last words, or only its fixed prefix
        when `turns` is None."""
        system = self._system(language)
        if not self.model.has_chat_template:
            parts = [f"{system}\n"] + [f"{_PLAIN_NAMES[role]}: {text}" for role, text in turns or ()]
            return "\n".join(parts)
        messages = [{"role": "system", "content": system}]
        if turns is None:
            return self.model.chat_prompt(messages, generation_prompt=False)
        messages += [{"role": role, "content": text} for role, text in turns]
        closed = self.model.chat_prompt(messages, generation_prompt=False)
        at = closed.rfind(turns[-1][1])
        if at < 0:
            raise EngineError(f"{self.model.path.name}'s chat template does not keep a message's words as "
                              "they are; choose another judge model")
        return closed[:at + len(turns[-1][1])]

    def _prompt(self, language: str) -> _Prompt:
        code = base_language(language)
        if code in self._prompts:
            return self._prompts[code]
        turns = [("user", "Hello")]
        sample = self._render(code, turns)
        sample_tokens = self.model.tokenize(sample)
        keep = common_prefix(self.model.tokenize(self._render(code, None)), sample_tokens)
        if self.model.has_chat_template:
            closed = self.model.chat_prompt([{"role": "system", "content": self._system(code)},
                                             {"role": "user", "content": "Hello"}], generation_prompt=False)
            end = closed[len(sample):]
        else:
            end = "\n"
        closing = self._first_tokens(sample, sample_tokens, (end,))
        if not closing:
            raise EngineError(f"{self.model.path.name} cannot tell where a message ends by its next token; "
                              "choose another judge model")
        ends = closing | self._first_tokens(sample, sample_tokens, _MARKS)
        prompt = self._prompts[code] = _Prompt(tuple(sample_tokens[:keep]), tuple(sorted(ends)))
        return prompt

    def _first_tokens(self, prompt: str, tokens: list[int], continuations: Sequence[str]) -> set[int]:
        """The tokens the model would emit first to write one of `continuations` right after `prompt`."""
        firsts = set()
        for continuation in continuations:
            extended = self.model.tokenize(prompt + continuation)
            if len(extended) > len(tokens) and extended[:len(tokens)] == tokens:
                firsts.add(extended[len(tokens)])
        return firsts


def prompt_fingerprint(options: LlmJudgeOptions = LlmJudgeOptions()) -> str:
    """A short digest of everything that shapes the judge's prompt: a calibration holds only for the
    prompt it was fitted with."""
    shape = ["ending", SYSTEM, _CALL_LANGUAGE, _LANGUAGE_NAMES, _MARKS, options.max_lines,
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
