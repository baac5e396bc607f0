"""The message a call leaves: what a model writes under the message schema, checked against the call,
and the transcript whenever the model cannot be believed. The engines are the real ones: llama.cpp on a
tiny random GGUF made at test time (its words are junk, so only the grammar holds it to the schema), the
OpenAI engine against llama-cpp-python's own server and against a mock for a server that takes
`json_schema`; and an engine that answers with fixed JSON for what a random model never writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from models.engines import EngineError, Line
from models.llama import LlamaOptions, load_llama
from models.llm_llamacpp import LlamaCppReplies
from models.llm_openai import OpenAiOptions, OpenAiReplies
from models.llm_script import ScriptLlm
from server.messages import (
    MESSAGE_SCHEMA,
    CallStory,
    Interrupted,
    InvalidMessage,
    parse_message,
    prompt_messages,
    story_of_call,
    take_message,
    transcript_text,
)
from server.store.schema import BotTurn, Call, Fragment
from tests.models.llama_server import llama_server
from tests.models.tiny_gguf import write_tiny_llama

NUMBER = "+393331234567"
STORY = CallStory(
    lines=(Line("bot", "Hello, this is Marco's phone. How can I help?"),
           Line("caller", "Hi, it's Anna Rossi from the garage."),
           Line("caller", "Your car is ready, please call me back on 02 1234 5678 before six."),
           Line("bot", "I will pass that on. Anything ... [cut off]"),
           Line("caller", "No, that's all, it's urgent though.")),
    caller_number=NUMBER, caller_name="Garage", owner_name="Marco", language="en",
    started_at=datetime(2026, 3, 14, 15, 5, tzinfo=UTC))
GOOD = {"caller_name": "Anna Rossi", "callback_number": "02 1234 5678",
        "text": "Your car is ready at the garage; call Anna back before six.", "urgency": "high",
        "language": "en"}


class FixedJson:
    """An engine that writes the given JSON object (or raises), and remembers what it was asked."""

    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.asked: list[tuple[list[dict[str, str]], Mapping[str, Any]]] = []

    def extract(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *, max_tokens: int = 400,
                timeout_s: float = 60.0, interrupt: Callable[[], bool] | None = None) -> dict[str, Any]:
        self.asked.append((messages, schema))
        if self.error is not None:
            raise self.error
        return self.answer  # type: ignore[no-any-return]


def test_what_the_model_writes_becomes_the_message() -> None:
    engine = FixedJson(GOOD)
    message = take_message(STORY, engine)
    assert message is not None and message.source == "llm"
    assert (message.caller_name, message.callback_number, message.urgency, message.language) == (
        "Anna Rossi", "0212345678", "high", "en")
    assert message.text == GOOD["text"] and message.transcript == transcript_text(STORY.lines)
    [(messages, schema)] = engine.asked
    assert schema == MESSAGE_SCHEMA
    system, user = messages
    assert system["role"] == "system" and "Marco" in system["content"] and NUMBER in system["content"]
    assert all(word in system["content"] for word in ("2026-03-14", "Garage", "English"))
    assert user == {"role": "user", "content": transcript_text(STORY.lines)}
    assert user["content"].splitlines()[3] == "Assistant: I will pass that on. Anything ... [cut off]"


def test_a_name_or_a_number_the_caller_never_said_is_not_believed() -> None:
    invented = {**GOOD, "caller_name": "Giulia Bianchi", "callback_number": "+39 06 5555 0000"}
    message = parse_message(invented, STORY)
    assert message.caller_name == "Garage"  # the address book's name
    assert message.callback_number == NUMBER  # the number the call came from


def test_a_message_made_of_the_bots_words_is_not_believed() -> None:
    # What the 0.5B model wrote as the message of a real call: the bot's greeting with the caller's name.
    greeting = "Hello, you have reached Marco's phone. I'm his assistant: how can I help?"
    story = CallStory((Line("bot", greeting),
                       Line("caller", "Hi, this is Anna from the bakery. Please ask Marco to call me back "
                                      "about the invoice.")), caller_number=NUMBER, language="en")
    copied = {**GOOD, "caller_name": "Anna", "callback_number": "",
              "text": "Anna, you have reached Marco's phone. I'm his assistant: how can I help?"}
    message = take_message(story, FixedJson(copied))
    assert message is not None and message.source == "transcript"
    assert "invoice" in message.text
    paraphrase = {**copied, "text": "Anna from the bakery asks Marco to call her back about an invoice."}
    assert parse_message(paraphrase, story).source == "llm"
    for text in ("Someone wants to discuss the weather forecast tomorrow.",
                 # and what it wrote on another run: a refusal that happens to name the caller
                 "Anna, I'm sorry, but I can't assist with that. Please let me know if you have any other "
                 "questions."):
        with pytest.raises(InvalidMessage, match="not made of what the caller said"):
            parse_message({**copied, "text": text}, story)


def test_a_number_dictated_in_words_is_believed() -> None:
    story = CallStory((Line("caller", "Call me on three four seven, one two three, four five six seven."),),
                      caller_number="", language="en")
    message = parse_message({**GOOD, "caller_name": "", "callback_number": "347 123 4567",
                             "text": "Call them back on 347 123 4567."}, story)
    assert message.callback_number == "3471234567" and message.caller_name == ""


@pytest.mark.parametrize("answer", [
    {**GOOD, "urgency": "very"},
    {**GOOD, "text": "   "},
    {key: value for key, value in GOOD.items() if key != "text"},
    {**GOOD, "callback_number": 21234},
    {**GOOD, "text": "x" * 5000},
])
def test_an_answer_that_does_not_hold_up_leaves_the_transcript(answer: dict[str, Any]) -> None:
    message = take_message(STORY, FixedJson(answer))
    assert message is not None and message.source == "transcript"
    assert message.text == " ".join(line.text for line in STORY.lines if line.role == "caller")
    assert message.callback_number == NUMBER and message.caller_name == "Garage"
    assert message.urgency == "normal" and message.language == "en"


def test_an_engine_that_writes_no_json_or_fails_leaves_the_transcript() -> None:
    for engine in (ScriptLlm(["Hello."]), FixedJson(error=EngineError("the server is down"))):
        message = take_message(STORY, engine)
        assert message is not None and message.source == "transcript"


def test_an_interrupted_extraction_is_not_taken_for_a_failure() -> None:
    with pytest.raises(Interrupted):
        take_message(STORY, FixedJson(error=EngineError("interrupted")), interrupt=lambda: True)


@pytest.mark.parametrize("error", [ValueError("it's Anna Rossi from the garage"),
                                   EngineError("the model stopped at 'it's Anna Rossi from'")])
def test_an_engine_that_breaks_leaves_the_transcript_and_logs_no_words(
        error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    message = take_message(STORY, FixedJson(error=error))
    assert message is not None and message.source == "transcript"
    assert caplog.records and all("Anna" not in r.getMessage() for r in caplog.records)
    assert type(error).__name__ in caplog.text


def test_a_caller_who_said_nothing_leaves_no_message() -> None:
    story = CallStory((Line("bot", "Hello?"), Line("caller", "  ")), caller_number=NUMBER)
    assert take_message(story, FixedJson(GOOD)) is None


def test_the_prompt_speaks_the_calls_language_and_the_owner_may_rewrite_it(tmp_path: Path) -> None:
    story = CallStory((Line("caller", "Buongiorno, sono Anna."),), caller_number="", language="it-IT",
                      started_at=datetime(2026, 3, 14, 15, 5, tzinfo=UTC))
    system = prompt_messages(story)[0]["content"]
    assert system.startswith("Prendi i messaggi") and "in italiano" in system and "sconosciuto" in system
    assert "{" not in system
    (tmp_path / "message.it.txt").write_text("Scrivi il messaggio per {owner_name} in {language}.")
    own = prompt_messages(story, tmp_path)[0]["content"]
    assert own == "Scrivi il messaggio per il titolare in italiano."
    german = CallStory((Line("caller", "Hallo."),), language="de")
    assert prompt_messages(german)[0]["content"].startswith("You take phone messages")  # English, for German


def test_a_stored_call_reads_back_as_the_story_the_caller_heard() -> None:
    call = Call(uid="c", caller_number=NUMBER, caller_name="Anna", language="it",
                started_at=datetime(2026, 3, 14, tzinfo=UTC))
    call.fragments = [Fragment(start_s=0.6, end_s=1.8, text="Pronto?"),
                      Fragment(start_s=3.0, end_s=3.1, text=""),
                      Fragment(start_s=4.0, end_s=5.0, text="Richiamami.")]
    call.bot_turns = [
        BotTurn(kind="greeting", start_s=0.0, end_s=0.8, intended="Buongiorno, sono l'assistente.",
                heard="Buongiorno,", cut_off=True),
        BotTurn(kind="ack", start_s=2.0, end_s=2.3, intended="Mm-hm?", heard="Mm-hm?", cut_off=False),
        BotTurn(kind="reply", start_s=2.5, end_s=2.6, intended="Dica.", heard="", cut_off=True),
        BotTurn(kind="reply", start_s=5.5, end_s=7.0, intended="Certo.", heard="Certo.", cut_off=False)]
    story = story_of_call(call, owner_name="Marco")
    assert story.lines == (Line("bot", "Buongiorno, ... [cut off]"), Line("caller", "Pronto?"),
                           Line("caller", "Richiamami."), Line("bot", "Certo."))
    assert (story.caller_number, story.caller_name, story.language, story.owner_name) == (
        NUMBER, "Anna", "it", "Marco")


# --------------------------------------------------------------------------- real engines

OPTIONS = LlamaOptions(n_ctx=2048, n_threads=1, seed=1)
ENUM_SCHEMA = {"type": "object",
               "properties": {"urgency": {"type": "string", "enum": ["low", "normal", "high"]},
                              "callback": {"type": "boolean"}},
               "required": ["urgency", "callback"], "additionalProperties": False}


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp", reason="pip install llama-cpp-python")
    pytest.importorskip("gguf", reason="gguf is not installed (pip install gguf)")
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "messages.gguf")


def test_llama_cpp_writes_json_under_the_schemas_grammar(gguf: Path) -> None:
    engine = LlamaCppReplies(load_llama(gguf, OPTIONS))
    messages = prompt_messages(STORY)
    # A random model never writes this unguided; under the grammar it can write nothing else.
    data = engine.extract(messages, ENUM_SCHEMA, max_tokens=64)
    assert set(data) == {"urgency", "callback"} and data["urgency"] in ("low", "normal", "high")
    assert isinstance(data["callback"], bool)
    assert engine.extract(messages, ENUM_SCHEMA, max_tokens=64) == data  # greedy: the same again


def test_llama_cpp_junk_leaves_the_transcript_and_the_model_free(gguf: Path) -> None:
    engine = LlamaCppReplies(load_llama(gguf, OPTIONS))
    message = take_message(STORY, engine, max_tokens=48)  # its strings never end: cut short, not JSON
    assert message is not None and message.source == "transcript"
    assert not engine.model.lock.locked()


def test_llama_cpp_stops_within_a_token_when_interrupted_or_late(gguf: Path) -> None:
    engine = LlamaCppReplies(load_llama(gguf, OPTIONS))
    asked: list[int] = []

    def interrupt() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(EngineError, match="interrupted"):
        engine.extract(prompt_messages(STORY), MESSAGE_SCHEMA, max_tokens=400, interrupt=interrupt)
    assert len(asked) == 3 and not engine.model.lock.locked()
    with pytest.raises(EngineError, match="longer than"):
        engine.extract(prompt_messages(STORY), MESSAGE_SCHEMA, max_tokens=400, timeout_s=0.0)
    assert not engine.model.lock.locked()


@pytest.fixture(scope="module")
def server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the tiny model; its base URL."""
    with llama_server(gguf, tmp_path_factory.mktemp("server") / "server.log") as base_url:
        yield base_url


def test_an_openai_server_that_refuses_json_schema_is_asked_with_json_object(server: str) -> None:
    engine = OpenAiReplies(OpenAiOptions(base_url=server, model="tiny"))
    try:
        data = engine.extract(prompt_messages(STORY), ENUM_SCHEMA, max_tokens=64, timeout_s=120)
        assert set(data) == {"urgency", "callback"} and data["urgency"] in ("low", "normal", "high")
        assert engine._json_format == "json_object"  # llama-cpp-python's server took only that
        message = take_message(STORY, engine, max_tokens=48, timeout_s=120)
        assert message is not None and message.source == "transcript"  # random words, cut short
    finally:
        engine.close()


def test_an_openai_server_that_takes_json_schema_gets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    httpx = pytest.importorskip("httpx")
    bodies: list[dict[str, Any]] = []

    def handler(request: Any) -> Any:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"index": 0, "message": {
            "role": "assistant", "content": json.dumps(GOOD)}, "finish_reason": "stop"}]})

    transport = httpx.MockTransport(handler)
    real = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(transport=transport, **kw))
    engine = OpenAiReplies(OpenAiOptions(base_url="http://llm.test/v1", model="m"))
    message = take_message(STORY, engine)
    assert message is not None and message.source == "llm" and message.caller_name == "Anna Rossi"
    [body] = bodies
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "message", "schema": MESSAGE_SCHEMA, "strict": True}}
    assert body["stream"] is False and body["messages"] == prompt_messages(STORY)
