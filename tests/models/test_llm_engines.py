"""The LLM judge and the reply engines on a tiny random GGUF made at test time (tests/models/tiny_gguf.py),
loaded by the real llama-cpp-python; the OpenAI engine against llama-cpp-python's own OpenAI-compatible
server on loopback, and against httpx's mock transport for what a random model never does (tool calls,
HTTP errors). Nothing is downloaded; nothing is timed."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from models.engines import (
    CallContext,
    EngineError,
    Line,
    ModelMissingError,
    ReplyDelta,
    ReplyEnd,
    ReplyEvent,
    Verdict,
)
from models.judge_llm import LlmJudge, make_judge
from models.judge_rules import RulesJudge
from models.llama import LlamaModel, LlamaOptions, load_llama
from models.llm_llamacpp import LlamaCppReplies, LlamaCppRepliesOptions
from models.llm_openai import OpenAiOptions, OpenAiReplies
from models.prompts import build_messages
from tests.models.llama_server import free_port, llama_server
from tests.models.tiny_gguf import write_tiny_llama

if TYPE_CHECKING:
    import httpx
else:
    httpx = pytest.importorskip("httpx")

OPTIONS = LlamaOptions(n_ctx=2048, n_threads=1, seed=1)  # one thread: no spinning on a busy box
CONTEXT = CallContext(language="en", caller_number="+39 333 1234567", owner_name="Marco",
                      started_at="2025-03-14T16:05:00")
STORY = [
    Line("bot", "Hello, you've reached Marco's phone. Who is calling?"),
    Line("caller", "Hi, it's Anna. I need to tell him three things."),
    Line("bot", "Go ahead."),
    Line("caller", "First, the delivery is late"),
]
NEXT = [*STORY, Line("caller", "and second, the price went up.")]
CLOSED = [*NEXT, Line("bot", "I'll tell him. Anything else?"), Line("caller", "No, that's all, thanks. Bye.")]


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("llama_cpp", reason="pip install llama-cpp-python")
    pytest.importorskip("gguf", reason="gguf is not installed (pip install gguf)")
    return tmp_path_factory.mktemp("gguf")


def _model(directory: Path, name: str, *, chat_template: bool = True) -> LlamaModel:
    path = directory / name
    if not path.exists():
        write_tiny_llama(path, chat_template=chat_template)
    return load_llama(path, OPTIONS)


def _events(model: LlamaModel, story: list[Line], **options: Any) -> list[Any]:
    replies = LlamaCppReplies(model, LlamaCppRepliesOptions(**{"temperature": 0.0, **options}))
    return list(replies.reply(story, CONTEXT))


def _perf(model: LlamaModel) -> tuple[int, int]:
    """llama.cpp's own counts since the last reset: tokens decoded in batches of several (a prompt),
    and single-token decodes (generation; reported as at least 1)."""
    import llama_cpp

    data = llama_cpp.llama_perf_context(model.llm.ctx)
    return data.n_p_eval, data.n_eval


def _perf_reset(model: LlamaModel) -> None:
    import llama_cpp

    llama_cpp.llama_perf_context_reset(model.llm.ctx)


# --------------------------------------------------------------------------- loader


def test_loader_shares_one_model_per_file(gguf_dir: Path) -> None:
    model = _model(gguf_dir, "shared.gguf")
    assert load_llama(str(gguf_dir / "shared.gguf"), OPTIONS) is model
    with pytest.raises(EngineError, match="same options"):
        load_llama(gguf_dir / "shared.gguf", LlamaOptions(n_ctx=1024))


def test_a_missing_model_names_the_pull_command(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="standin models pull"):
        load_llama(tmp_path / "absent.gguf")
    with pytest.raises(ModelMissingError, match="standin models pull"):
        make_judge(str(tmp_path / "absent.gguf"))


def test_a_file_llama_cpp_cannot_read_is_a_clear_error(gguf_dir: Path) -> None:
    path = gguf_dir / "broken.gguf"
    path.write_bytes(b"GGUF but not really")
    with pytest.raises(EngineError, match="cannot load"):
        load_llama(path)


# --------------------------------------------------------------------------- judge


def test_no_model_means_the_rules_judge() -> None:
    assert isinstance(make_judge(None), RulesJudge)
    assert isinstance(make_judge(""), RulesJudge)


@pytest.mark.parametrize("chat_template", [True, False], ids=["chat-template", "plain"])
def test_judge_gives_a_deterministic_probability(gguf_dir: Path, chat_template: bool) -> None:
    judge = make_judge(str(gguf_dir / _written(gguf_dir, f"judge-{chat_template}.gguf", chat_template)),
                       llama=OPTIONS)
    assert isinstance(judge, LlmJudge)
    first = judge.judge(STORY, language="en")
    assert isinstance(first, Verdict) and first.reason == "llm"
    assert 0.0 < first.p_complete < 1.0
    other = judge.judge(NEXT, language="it")
    assert 0.0 < other.p_complete < 1.0
    again = judge.judge(STORY, language="en")
    assert again.p_complete == pytest.approx(first.p_complete, abs=1e-4)


def test_judge_of_a_story_without_caller_words_is_empty(gguf_dir: Path) -> None:
    judge = LlmJudge(_model(gguf_dir, "shared.gguf"))
    assert judge.judge([Line("bot", "Hello?"), Line("caller", "  ")], language="en") == Verdict(0.0, "empty")


def _prompt_tokens(judge: LlmJudge, story: list[Line], language: str = "en") -> int:
    messages = judge._messages(story)
    assert messages is not None
    return len(judge.model.tokenize(judge._render(language, messages)))


def test_judge_evaluates_the_prefix_once(gguf_dir: Path) -> None:
    model = _model(gguf_dir, "prefix.gguf")
    judge = LlmJudge(model)
    _perf_reset(model)
    judge.judge(STORY, language="en")
    first = judge.last_evaluated
    assert _perf(model)[0] == first  # llama.cpp's own count agrees with ours
    assert first == _prompt_tokens(judge, STORY)  # the system line and the story, once

    _perf_reset(model)
    judge.judge(NEXT, language="en")
    assert _perf(model)[0] == judge.last_evaluated
    new_words = len(model.tokenize("and second, the price went up."))
    assert 0 < judge.last_evaluated <= new_words + 2  # what the caller added, not the story before it


def test_warm_up_evaluates_the_prefix_of_each_language(gguf_dir: Path) -> None:
    judge = LlmJudge(_model(gguf_dir, "warm.gguf"))
    judge.warm_up()
    for language in ("it", "en"):
        judge.judge(STORY, language=language)
        prefix = len(judge._prompt(language).prefix)
        assert prefix > 0
        assert judge.last_evaluated == _prompt_tokens(judge, STORY, language) - prefix  # from the cache


def test_judge_and_replies_share_a_model_without_re_evaluating_the_prefix(gguf_dir: Path) -> None:
    model = _model(gguf_dir, "both.gguf")
    judge = LlmJudge(model)
    alone = judge.judge(NEXT, language="en").p_complete
    judge.judge(STORY, language="en")
    events = _events(model, STORY, max_tokens=8)  # the replies overwrite the context
    assert isinstance(events[-1], ReplyEnd)
    shared = judge.judge(NEXT, language="en")
    assert judge.last_evaluated == _prompt_tokens(judge, NEXT) - len(judge._prompt("en").prefix)
    assert shared.p_complete == pytest.approx(alone, abs=1e-4)

    _perf_reset(model)  # and the replies get their system prompt back from the cache too
    _events(model, STORY, max_tokens=8)
    prompt = LlamaCppReplies(model)._prompt(build_messages(STORY, CONTEXT), 8)[0]
    assert _perf(model)[0] * 3 < len(prompt)


def test_priming_at_call_start_spares_the_first_reply_its_system_prompt(gguf_dir: Path) -> None:
    model = _model(gguf_dir, "primed.gguf")
    replies = LlamaCppReplies(model, LlamaCppRepliesOptions(temperature=0.0, max_tokens=8))
    context = dataclasses.replace(CONTEXT, caller_number="+390612345678")  # a call of its own
    prompt, keep, _ = replies._prompt(build_messages(STORY, context), 8)
    _perf_reset(model)
    replies.prime(context)
    assert _perf(model)[0] >= keep > 0  # the system prompt, evaluated before anyone spoke
    _perf_reset(model)
    assert isinstance(list(replies.reply(STORY, context))[-1], ReplyEnd)
    assert _perf(model)[0] <= len(prompt) - keep  # the first reply evaluates only the story


@pytest.mark.parametrize("chat_template", [True, False])
def test_a_prefilled_story_leaves_the_reply_only_the_callers_new_words(
        gguf_dir: Path, chat_template: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(gguf_dir, f"prefill-{chat_template}.gguf", chat_template=chat_template)
    replies = LlamaCppReplies(model, LlamaCppRepliesOptions(temperature=0.0, max_tokens=4))
    replies.prime(CONTEXT)
    evaluated: list[int] = []
    evaluate = model.llm.eval

    def counted(tokens: Sequence[int]) -> None:
        evaluated.append(len(tokens))
        evaluate(tokens)
    monkeypatch.setattr(model.llm, "eval", counted)
    for before, after in ((STORY[:3], STORY), (STORY, NEXT)):  # after the bot's line; mid-turn
        evaluated.clear()
        assert replies.prefill(before, CONTEXT) == sum(evaluated) > 0
        prompt, _, _ = replies._prompt(build_messages(after, CONTEXT), 4)
        new = len(model.tokenize(after[-1].text))
        evaluated.clear()
        assert isinstance(list(replies.reply(after, CONTEXT))[-1], ReplyEnd)
        # the caller's words and the template's few tokens around them, not the story before them
        assert evaluated[0] <= new + 12 < len(prompt) // 4


def test_judges_on_many_threads_agree_with_one_thread(gguf_dir: Path) -> None:
    judge = LlmJudge(_model(gguf_dir, "threads.gguf"))
    stories = [STORY, NEXT, STORY[:2], NEXT[:3]] * 2
    expected = [judge.judge(s, language="en").p_complete for s in stories]
    results: list[float] = [0.0] * len(stories)

    def run(i: int) -> None:
        results[i] = judge.judge(stories[i], language="en").p_complete

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stories))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == pytest.approx(expected, abs=1e-4)


def _written(directory: Path, name: str, chat_template: bool) -> str:
    if not (directory / name).exists():
        write_tiny_llama(directory / name, chat_template=chat_template)
    return name


# --------------------------------------------------------------------------- llama.cpp replies


@pytest.mark.parametrize("chat_template", [True, False], ids=["chat-template", "plain"])
def test_llamacpp_reply_streams_deltas_then_ends(gguf_dir: Path, chat_template: bool) -> None:
    model = _model(gguf_dir, f"replies-{chat_template}.gguf", chat_template=chat_template)
    _perf_reset(model)
    events = _events(model, STORY, max_tokens=24)
    assert isinstance(events[-1], ReplyEnd) and not events[-1].end_call
    deltas = events[:-1]
    assert len(deltas) > 3 and all(isinstance(e, ReplyDelta) and e.text for e in deltas)
    assert _perf(model)[1] >= 20  # the random model does not stop early: it ran to max_tokens
    assert events == _events(model, STORY, max_tokens=24)  # greedy: the same again


def test_a_sampled_reply_depends_on_its_story_alone(gguf_dir: Path) -> None:
    model = _model(gguf_dir, "tiny.gguf")

    def said(story: list[Line]) -> str:
        events = _events(model, story, temperature=0.9, max_tokens=24)
        return "".join(e.text for e in events if isinstance(e, ReplyDelta))

    first = said(NEXT)
    said(STORY)  # another call's reply moves no random state
    assert said(NEXT) == first
    assert said(CLOSED) != first


def test_closing_a_llamacpp_reply_stops_generation(gguf_dir: Path) -> None:
    model = _model(gguf_dir, "close.gguf")
    replies = LlamaCppReplies(model, LlamaCppRepliesOptions(max_tokens=400, temperature=0.0))
    stream = replies.reply(STORY, CONTEXT)
    _perf_reset(model)
    assert isinstance(next(stream), ReplyDelta)
    assert isinstance(next(stream), ReplyDelta)
    assert model.lock.locked()
    stream.close()
    assert not model.lock.locked()
    assert _perf(model)[1] < 10  # 400 were allowed
    assert _events(model, STORY, max_tokens=4)[-1] == ReplyEnd()  # the model is free again


def test_the_end_call_marker_ends_the_reply_and_is_never_spoken(gguf_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(gguf_dir, "marker.gguf")
    closed = []

    def completion(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        try:
            for piece in ["Thank you, good", "bye!", "\n[END", "_CA", "LL]", "\nmore"]:
                yield {"choices": [{"text": piece}]}
        finally:
            closed.append(True)

    monkeypatch.setattr(model.llm, "create_completion", completion)
    events = list(LlamaCppReplies(model).reply(CLOSED, CONTEXT))
    assert _text(events[:-1]) == "Thank you, goodbye!\n"
    assert events[-1] == ReplyEnd(end_call=True)
    assert closed == [True] and not model.lock.locked()
    # the same words after a caller line that closed nothing: said, but the call goes on
    events = list(LlamaCppReplies(model).reply(STORY, CONTEXT))
    assert _text(events[:-1]) == "Thank you, goodbye!\n"
    assert events[-1] == ReplyEnd(end_call=False)
    sales = dataclasses.replace(CONTEXT, end_on_sales=True)  # the owner has pitches ended: the model judges
    assert list(LlamaCppReplies(model).reply(STORY, sales))[-1] == ReplyEnd(end_call=True)


def test_a_reply_that_recites_its_cut_off_line_ends_at_the_mark_and_not_the_call(
        gguf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(gguf_dir, "recited.gguf")

    def completion(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for piece in ["Sure,", " what", " specifically", " ...", " [", "cut", " off", "]", " Caller:", " hi"]:
            yield {"choices": [{"text": piece}]}

    monkeypatch.setattr(model.llm, "create_completion", completion)
    events = list(LlamaCppReplies(model).reply(STORY, CONTEXT))
    assert _text(events[:-1]) == "Sure, what specifically "
    assert events[-1] == ReplyEnd(end_call=False)


# --------------------------------------------------------------------------- OpenAI-compatible server


@pytest.fixture(scope="module")
def server(gguf_dir: Path) -> Iterator[tuple[str, Path]]:
    """llama-cpp-python's OpenAI-compatible server on the tiny model: (base_url, its log)."""
    path = gguf_dir / _written(gguf_dir, "server.gguf", True)
    log_path = gguf_dir / "server.log"
    with llama_server(path, log_path) as base_url:
        yield base_url, log_path


def _text(events: Sequence[ReplyEvent]) -> str:
    """The text of `events`, all of them deltas."""
    deltas = [e for e in events if isinstance(e, ReplyDelta)]
    assert len(deltas) == len(events)
    return "".join(d.text for d in deltas)


def _connections_to(port: int) -> set[int]:
    """Local ports of this machine's established TCP connections to 127.0.0.1:`port` (client sides)."""
    ports = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = row.split()[1:4]
        if int(remote.split(":")[1], 16) == port and state == "01":
            ports.add(int(local.split(":")[1], 16))
    return ports


def test_openai_reply_streams_from_a_real_server(server: tuple[str, Path]) -> None:
    replies = OpenAiReplies(OpenAiOptions(base_url=server[0], model="tiny", max_tokens=24, temperature=0.0))
    try:
        events = list(replies.reply(STORY, CONTEXT))
        assert isinstance(events[-1], ReplyEnd) and not events[-1].end_call
        assert len(events) > 3 and all(isinstance(e, ReplyDelta) and e.text for e in events[:-1])
        assert events == list(replies.reply(STORY, CONTEXT))
    finally:
        replies.close()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's socket table")
def test_closing_an_openai_reply_disconnects(server: tuple[str, Path]) -> None:
    base_url, log = server
    port = httpx.URL(base_url).port
    assert port is not None
    replies = OpenAiReplies(OpenAiOptions(base_url=base_url, model="tiny", max_tokens=1500))
    noticed = log.read_text().lower().count("disconnected")
    try:
        before = _connections_to(port)
        stream = replies.reply(STORY, CONTEXT)
        assert isinstance(next(stream), ReplyDelta)
        ours = _connections_to(port) - before
        assert ours  # the streaming response's connection
        stream.close()
        assert not ours & _connections_to(port)
        deadline = time.monotonic() + 60  # the server notices on its own schedule; a wait, not a measure
        while log.read_text().lower().count("disconnected") == noticed:
            assert time.monotonic() < deadline, "the server never noticed the disconnect"
            time.sleep(0.05)
    finally:
        replies.close()
    short = OpenAiReplies(OpenAiOptions(base_url=base_url, model="tiny", max_tokens=4))
    assert isinstance(list(short.reply(STORY, CONTEXT))[-1], ReplyEnd)  # and it serves the next one
    short.close()


def test_connection_refused_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    replies = OpenAiReplies(OpenAiOptions(base_url=url, model="m"))
    with pytest.raises(EngineError, match=f"cannot connect to the reply server at {url}/chat/completions"):
        list(replies.reply(STORY, CONTEXT))


# --------------------------------------------------------------------------- OpenAI wire details (mock)


def _sse(*chunks: dict[str, Any] | str) -> bytes:
    import json

    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\r\n\r\n" for c in chunks]
    return ": keep-alive\r\n\r\n".join(lines).encode()


def _delta(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta}]}


def _mock(monkeypatch: pytest.MonkeyPatch, handler: Any, **options: Any) -> OpenAiReplies:
    transport = httpx.MockTransport(handler)
    real = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real(transport=transport, **kw))
    return OpenAiReplies(OpenAiOptions(**{"base_url": "http://llm.test/v1", "model": "m", **options}))


def test_the_end_call_tool_ends_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    bodies = []

    def handler(request: Any) -> Any:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, content=_sse(
            _delta(role="assistant", content="Good"), _delta(content="bye!"),
            _delta(tool_calls=[{"index": 0, "id": "c1", "type": "function",
                                "function": {"name": "end_call", "arguments": ""}}]),
            _delta(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}]), "[DONE]"))

    replies = _mock(monkeypatch, handler)
    events = list(replies.reply(CLOSED, CONTEXT))
    assert events == [ReplyDelta("Good"), ReplyDelta("bye!"), ReplyEnd(end_call=True)]
    assert bodies[0]["tools"][0]["function"]["name"] == "end_call" and bodies[0]["stream"] is True
    assert bodies[0]["messages"][-1] == {"role": "user", "content": "No, that's all, thanks. Bye."}
    # mid-message, the tool call is not followed
    assert list(replies.reply(STORY, CONTEXT))[-1] == ReplyEnd(end_call=False)


def test_the_marker_ends_the_call_without_being_spoken(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: Any) -> Any:
        return httpx.Response(200, content=_sse(
            _delta(content="Bye"), _delta(content="! [END_"), _delta(content="CALL]"), "[DONE]"))

    events = list(_mock(monkeypatch, handler).reply(CLOSED, CONTEXT))
    assert _text(events[:-1]) == "Bye! "
    assert events[-1] == ReplyEnd(end_call=True)


def test_a_recited_cut_off_mark_is_never_spoken(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: Any) -> Any:
        return httpx.Response(200, content=_sse(
            _delta(content="Okay"), _delta(content=" ... [cut"), _delta(content=" off] more"), "[DONE]"))

    events = list(_mock(monkeypatch, handler).reply(STORY, CONTEXT))
    assert _text(events[:-1]) == "Okay "
    assert events[-1] == ReplyEnd(end_call=False)


def test_the_caller_is_not_greeted_by_the_owners_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: Any) -> Any:
        return httpx.Response(200, content=_sse(
            _delta(content="Thank"), _delta(content=" you"), _delta(content=","), _delta(content=" Mar"),
            _delta(content="co"), _delta(content="."), _delta(content=" Marco will call you."), "[DONE]"))

    context = dataclasses.replace(CONTEXT, owner_name="Marco Rossi")
    events = list(_mock(monkeypatch, handler).reply(STORY, context))
    assert _text(events[:-1]) == "Thank you. Marco will call you."
    assert events[-1] == ReplyEnd(end_call=False)


def test_a_server_refusing_tools_is_asked_again_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    with_tools = []

    def handler(request: Any) -> Any:
        body = json.loads(request.content)
        with_tools.append("tools" in body)
        if "tools" in body:
            return httpx.Response(400, json={"error": {"message": "auto tool choice requires ..."}})
        return httpx.Response(200, content=_sse(_delta(content="Hello."), "[DONE]"))

    replies = _mock(monkeypatch, handler)
    for _ in range(2):
        events = list(replies.reply(STORY, CONTEXT))
        assert _text(events[:-1]) == "Hello." and events[-1] == ReplyEnd()
    assert with_tools == [True, False, False]  # remembered


def test_http_errors_say_what_to_check_and_never_quote_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_TEST_KEY", "sk-test")
    seen = []

    def handler(request: Any) -> Any:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, json={"detail": [{"input": STORY[-1].text}]})

    replies = _mock(monkeypatch, handler, api_key_env="STANDIN_TEST_KEY", tools=False)
    with pytest.raises(EngineError) as error:
        list(replies.reply(STORY, CONTEXT))
    assert "http://llm.test/v1/chat/completions" in str(error.value)
    assert "HTTP 401" in str(error.value) and "STANDIN_TEST_KEY" in str(error.value)
    assert "delivery" not in str(error.value)
    assert seen == ["Bearer sk-test"]


def test_a_missing_api_key_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STANDIN_ABSENT_KEY", raising=False)
    with pytest.raises(EngineError, match="STANDIN_ABSENT_KEY"):
        OpenAiReplies(OpenAiOptions(api_key_env="STANDIN_ABSENT_KEY"))


def test_closing_an_openai_reply_closes_the_response(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = []

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            while True:
                yield _sse(_delta(content="word "))

        def close(self) -> None:
            closed.append(True)

    replies = _mock(monkeypatch, lambda request: httpx.Response(200, stream=Body()))
    stream = replies.reply(STORY, CONTEXT)
    assert next(stream) == ReplyDelta("word ")
    stream.close()
    assert closed == [True]
