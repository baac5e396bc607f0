"""Replies from a llama.cpp model in this process (llama-cpp-python), streamed as tokens come.

The prompt is the model's chat template over `models.prompts.build_messages`, or a plain transcript
when the GGUF has no template. The model ends the call by writing `END_CALL_MARKER`, which the reply
templates teach: llama-cpp-python renders tools into a template but does not parse the calls a model
writes back, and each model family writes them differently. The marker never reaches the spoken text.

The model's lock is held while tokens are generated; closing the reply generator closes the token
stream, so generation stops at once and the lock is released.

`extract` asks the same model for JSON that a JSON schema describes (the message taken at the end of a
call): llama.cpp samples under a grammar made from the schema, so what comes back parses unless it was
cut short. It checks a deadline and an `interrupt` predicate between tokens, so a call that starts
meanwhile gets the model back within a token.
"""

from __future__ import annotations

import json
import time
import zlib
from array import array
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.engines import CallContext, EngineError, Line, ReplyDelta, ReplyEnd, ReplyEvent
from models.llama import LlamaModel, LlamaOptions, common_prefix, load_llama
from models.prompts import OwnerNameFilter, ReplyText, build_messages

__all__ = ["LlamaCppReplies", "LlamaCppRepliesOptions"]

_PLAIN_ROLES = {"user": "Caller", "assistant": "You"}
_NEXT_WORDS = "\u2063NEXT\u2063"  # stands for the caller's words to come while a prompt is prefilled


@dataclass(frozen=True, slots=True)
class LlamaCppRepliesOptions:
    max_tokens: int = 200
    temperature: float = 0.6
    template_dir: str | None = None  # the owner's reply templates; None: the shipped ones


class LlamaCppReplies:
    """A `ReplyModel` on a `LlamaModel` (which the turn judge may share)."""

    in_process = True  # extraction competes with live calls' replies for the model

    def __init__(self, model: LlamaModel, options: LlamaCppRepliesOptions = LlamaCppRepliesOptions()) -> None:
        self.model = model
        self.options = options
        self._grammars: dict[str, Any] = {}

    @classmethod
    def load(cls, model_path: str | Path, *, llama: LlamaOptions | None = None,
             options: LlamaCppRepliesOptions = LlamaCppRepliesOptions()) -> LlamaCppReplies:
        return cls(load_llama(model_path, llama or LlamaOptions()), options)

    def warm_up(self) -> None:
        messages = build_messages([Line("caller", "Hello?")], CallContext(), self.options.template_dir)
        for _ in self._stream(messages, max_tokens=1):
            pass

    def prime(self, context: CallContext) -> None:
        """Evaluate this call's system prompt now and keep its KV state aside (`LlamaModel`'s prefix
        snapshots), so that the call's first reply starts from it instead of paying for the whole
        prompt: on two cores a 1.5 B model takes seconds over it. Meant to run while the greeting
        plays; it holds the model's lock like any other use. Only the system part: the greeting, the
        story's first line, is the bot's, and `prefill` adds it once it has played."""
        messages = build_messages([Line("caller", "")], context, self.options.template_dir)
        tokens, keep, _ = self._prompt(messages, self.options.max_tokens)
        if keep:
            with self.model.lock:
                self.model.eval_prompt(tokens[:keep], keep=keep)

    def prefill(self, story: Sequence[Line], context: CallContext) -> int:
        """Evaluate the reply prompt for `story` up to where the caller's next words will go (after the
        bot's newest line, or after what the caller has said so far), so that the reply to them pays
        only for those words: on two cores the 1.5 B model takes about 15 ms a token, and the greeting
        alone is 17. Meant for when the model would otherwise be idle. Returns the tokens evaluated."""
        messages = build_messages([*story, Line("caller", _NEXT_WORDS)], context, self.options.template_dir)
        text, prefix, _ = self._render(messages)
        at = text.find(_NEXT_WORDS)
        if at < 0:
            return 0  # a template that rewrites the caller's words: nothing to prepare
        head = text[:at].rstrip(" ")  # a next fragment is joined with a space
        tokens = self.model.tokenize(head)
        if len(tokens) + self.options.max_tokens > self.model.llm.n_ctx():
            return 0  # the reply will drop old lines to fit; nothing here would be reused
        keep = common_prefix(self.model.tokenize(prefix), tokens) if prefix else 0
        with self.model.lock:
            return self.model.eval_prompt(tokens, keep=keep)

    def reply(self, story: Sequence[Line], context: CallContext) -> Generator[ReplyEvent]:
        messages = build_messages(story, context, self.options.template_dir)
        return self._stream(messages, self.options.max_tokens, ReplyText.answering(story, context))

    def extract(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *, max_tokens: int = 400,
                timeout_s: float = 60.0, interrupt: Callable[[], bool] | None = None) -> dict[str, Any]:
        """The JSON object the model writes for `messages`, sampled under `schema`'s grammar.
        Raises EngineError when it runs past `timeout_s` or `interrupt()` turns true (checked between
        tokens), or when what it wrote is not a JSON object (cut short at `max_tokens`)."""
        grammar = self._grammar(schema)
        tokens, _keep, stop = self._prompt(messages, max_tokens)
        deadline = time.monotonic() + timeout_s
        pieces: list[str] = []
        with self.model.lock:
            stream = self.model.llm.create_completion(tokens, max_tokens=max_tokens, stop=stop, stream=True,
                                                      temperature=0.0, grammar=grammar)
            try:
                for chunk in stream:
                    pieces.append(chunk["choices"][0]["text"])
                    if time.monotonic() > deadline:
                        raise EngineError(f"{self.model.path.name} took longer than {timeout_s:.0f} s "
                                          "to write the message")
                    if interrupt is not None and interrupt():
                        raise EngineError("writing the message was interrupted")
            finally:
                stream.close()
        try:
            data = json.loads("".join(pieces))
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise EngineError(f"{self.model.path.name} did not finish a JSON object within {max_tokens} "
                              "tokens")
        return data

    def _grammar(self, schema: Mapping[str, Any]) -> Any:
        key = json.dumps(schema)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            grammar = self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return grammar

    def _stream(self, messages: list[dict[str, str]], max_tokens: int,
                text_out: ReplyText | None = None) -> Generator[ReplyEvent]:
        tokens, keep, stop = self._prompt(messages, max_tokens)
        text_out = text_out or ReplyText(OwnerNameFilter(""))
        llm = self.model.llm
        with self.model.lock:
            if keep and common_prefix(llm.input_ids[:llm.n_tokens], tokens) < keep:
                # Bring back the system prompt (a copy when cached); llama-cpp-python's own prefix
                # matching then evaluates only the rest.
                self.model.eval_prompt(tokens[:keep], keep=keep)
            # sampled with a seed of the prompt's own: a reply is a function of the story it answers,
            # not of the calls and replies the process served before (replays and side-by-side runs)
            seed = zlib.crc32(array("i", tokens).tobytes())
            stream = llm.create_completion(tokens, max_tokens=max_tokens, stop=stop, stream=True,
                                           temperature=self.options.temperature, seed=seed)
            try:
                for chunk in stream:
                    text = text_out.feed(chunk["choices"][0]["text"])
                    if text:
                        yield ReplyDelta(text)
                    if text_out.done:
                        break
            finally:
                stream.close()
        tail = text_out.flush()
        if tail:
            yield ReplyDelta(tail)
        yield ReplyEnd(end_call=text_out.end_call)

    def _prompt(self, messages: list[dict[str, str]], max_tokens: int) -> tuple[list[int], int, list[str]]:
        """(tokens, tokens of the fixed system prompt at their start, stop strings). The oldest story
        messages are left out while the prompt and the reply would not fit the context."""
        room = self.model.llm.n_ctx() - max_tokens
        while True:
            text, prefix, stop = self._render(messages)
            tokens = self.model.tokenize(text)
            if len(tokens) <= room or len(messages) <= 2:
                break
            messages = [messages[0], *messages[2:]]
        if len(tokens) > room:
            raise EngineError(f"the reply prompt ({len(tokens)} tokens) and max_tokens ({max_tokens}) do "
                              f"not fit n_ctx {self.model.llm.n_ctx()}; raise n_ctx or shorten the template")
        keep = common_prefix(self.model.tokenize(prefix), tokens) if prefix else 0
        return tokens, keep, stop

    def _render(self, messages: Sequence[Mapping[str, str]]) -> tuple[str, str, list[str]]:
        """(prompt, its system part, stop strings)."""
        model = self.model
        if model.has_chat_template:
            try:
                prefix = model.chat_prompt(messages[:1], generation_prompt=False)
            except Exception:  # templates may refuse a system message alone; then nothing is kept aside
                prefix = ""
            return model.chat_prompt(messages), prefix, [model.eos_text] if model.eos_text else []
        prefix = messages[0]["content"] + "\n\n"
        turns = "".join(f"{_PLAIN_ROLES[m['role']]}: {m['content']}\n" for m in messages[1:])
        return f"{prefix}{turns}You:", prefix, ["\nCaller:", "\nYou:"]
