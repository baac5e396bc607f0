"""Replies from any OpenAI-compatible server (vLLM's `vllm serve`, llama.cpp's server, Ollama), streamed.

POST {base_url}/chat/completions with `stream: true`; the answer is server-sent events, one JSON chunk
per `data:` line, ending with `data: [DONE]`. The model may end the call with the `end_call` tool; a
server that refuses tools (vLLM without `--enable-auto-tool-choice` answers 400) is asked again without
them, and from then on the text marker the reply templates teach is the only way. Closing the reply
generator closes the HTTP response, so the server sees the disconnect and stops generating.

`extract` asks for one JSON object that a JSON schema describes (the message taken at the end of a
call), in one non-streamed request: `response_format` `json_schema` (vLLM, llama.cpp's C++ server,
OpenAI); a server that refuses it (llama-cpp-python's server answers 422) is asked again with
`json_object` plus the schema, its own way of taking one (it answers 500 to a request it cannot validate).

Errors name the URL and what to check, never the caller's words: server error bodies can echo the
prompt, so they are not quoted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.engines import CallContext, EngineError, Line, ReplyDelta, ReplyEnd, ReplyEvent
from models.prompts import END_CALL_TOOL, ReplyText, build_messages

__all__ = ["OpenAiOptions", "OpenAiReplies"]


@dataclass(frozen=True, slots=True)
class OpenAiOptions:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""  # as the server names it (`vllm serve <model>`, `ollama list`)
    api_key_env: str = ""  # the name of an environment variable holding the API key; "" for none
    timeout_s: float = 30.0  # to connect, and between two pieces of the stream
    max_tokens: int = 200
    temperature: float = 0.6
    tools: bool = True  # offer the end_call tool
    template_dir: str | None = None  # the owner's reply templates; None: the shipped ones


class OpenAiReplies:
    """A `ReplyModel` over HTTP. One instance serves every call (httpx's client is thread-safe)."""

    def __init__(self, options: OpenAiOptions) -> None:
        try:
            import httpx
        except ImportError as e:
            raise EngineError("httpx is not installed; run `pip install httpx`") from e
        headers = {}
        if options.api_key_env:
            key = os.environ.get(options.api_key_env)
            if not key:
                raise EngineError(f"the environment variable {options.api_key_env} (api_key_env) holds "
                                  "no API key; set it, or leave api_key_env empty")
            headers["Authorization"] = f"Bearer {key}"
        self.options = options
        self.url = options.base_url.rstrip("/") + "/chat/completions"
        self._httpx = httpx
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(options.timeout_s))
        self._tools = options.tools
        self._json_format = "json_schema"  # how this server takes a schema, once known

    def close(self) -> None:
        self._client.close()

    def reply(self, story: Sequence[Line], context: CallContext) -> Generator[ReplyEvent]:
        messages = build_messages(story, context, self.options.template_dir)
        return self._stream(messages, ReplyText.answering(story, context))

    def _stream(self, messages: list[dict[str, str]], text_out: ReplyText) -> Generator[ReplyEvent]:
        response = self._open(messages)
        end_call = False
        try:
            for data in _sse_data(response.iter_lines()):
                if data.strip() == "[DONE]":
                    break
                delta, called = _parse_chunk(data, self.url)
                end_call = end_call or called
                text = text_out.feed(delta)
                if text:
                    yield ReplyDelta(text)
                if text_out.done:
                    break
        except self._httpx.TimeoutException as e:
            raise EngineError(f"the reply server at {self.url} sent nothing for {self.options.timeout_s} s; "
                              "is it overloaded, or is timeout_s too short?") from e
        except self._httpx.HTTPError as e:
            raise EngineError(f"the reply stream from {self.url} broke off ({type(e).__name__}); "
                              "check the server's log") from e
        finally:
            response.close()
        tail = text_out.flush()
        if tail:
            yield ReplyDelta(tail)
        yield ReplyEnd(end_call=(end_call and text_out.may_end) or text_out.end_call)

    def extract(self, messages: list[dict[str, str]], schema: Mapping[str, Any], *, max_tokens: int = 400,
                timeout_s: float = 60.0, interrupt: Callable[[], bool] | None = None) -> dict[str, Any]:
        """The JSON object the server's model writes for `messages` under `schema`. `interrupt` is not
        used: the server schedules its own work. Raises EngineError when the server fails, takes longer
        than `timeout_s`, or answers with something that is not a JSON object."""
        body: dict[str, Any] = {"model": self.options.model, "messages": messages, "stream": False,
                                "max_tokens": max_tokens, "temperature": 0.0}
        named = {"name": "message", "schema": dict(schema), "strict": True}
        formats = {"json_schema": {"type": "json_schema", "json_schema": named},
                   "json_object": {"type": "json_object", "schema": dict(schema)}}
        response = self._send({**body, "response_format": formats[self._json_format]}, timeout_s)
        if response.status_code in (400, 422, 500) and self._json_format == "json_schema":
            # (llama-cpp-python's server answers a request it cannot validate with 500)
            response.close()
            response = self._send({**body, "response_format": formats["json_object"]}, timeout_s)
            if response.status_code == 200:
                self._json_format = "json_object"
        self._checked(response)
        try:
            content = response.json()["choices"][0]["message"]["content"]
            data = json.loads(content)
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise EngineError(f"the reply server at {self.url} answered the message request with something "
                              "that is not a JSON object") from e
        if not isinstance(data, dict):
            raise EngineError(f"the reply server at {self.url} answered the message request with JSON that "
                              "is not an object")
        return data

    def _open(self, messages: list[dict[str, str]]) -> Any:
        """The streaming response, its status checked; without tools if the server refuses them."""
        body: dict[str, Any] = {"model": self.options.model, "messages": messages, "stream": True,
                                "max_tokens": self.options.max_tokens,
                                "temperature": self.options.temperature}
        if self._tools:
            response = self._send({**body, "tools": [END_CALL_TOOL], "tool_choice": "auto"})
            if response.status_code not in (400, 422):
                return self._checked(response)
            response.close()
            response = self._checked(self._send(body))
            self._tools = False  # the server took the request once tools were left out
            return response
        return self._checked(self._send(body))

    def _send(self, body: dict[str, Any], message_timeout_s: float | None = None) -> Any:
        """POST `body`: a reply, streamed; or with `message_timeout_s`, a message, read whole."""
        httpx = self._httpx
        try:
            if message_timeout_s is not None:
                return self._client.post(self.url, json=body, timeout=httpx.Timeout(message_timeout_s))
            return self._client.send(self._client.build_request("POST", self.url, json=body), stream=True)
        except httpx.ConnectError as e:
            raise EngineError(f"cannot connect to the reply server at {self.url} ({e}); is it running, "
                              "and are base_url's host and port right?") from e
        except httpx.TimeoutException as e:
            if message_timeout_s is not None:
                raise EngineError(f"the reply server at {self.url} did not write the message within "
                                  f"{message_timeout_s:.0f} s") from e
            raise EngineError(f"the reply server at {self.url} did not answer within "
                              f"{self.options.timeout_s} s; is it overloaded, or timeout_s too short?") from e
        except httpx.HTTPError as e:
            raise EngineError(f"request to the reply server at {self.url} failed ({type(e).__name__}); "
                              "check base_url") from e

    def _checked(self, response: Any) -> Any:
        if response.status_code == 200:
            return response
        response.close()
        status, env = response.status_code, self.options.api_key_env
        if status in (401, 403):
            hint = f"check the API key in ${env}" if env else "the server wants an API key: set api_key_env"
        elif status == 404:
            hint = f"check that base_url ends in /v1 and that the server serves model {self.options.model!r}"
        elif status in (400, 422):
            hint = ("the server rejected the request (a model it does not serve, or a prompt too long for "
                    "its context?); its log says why")
        else:
            hint = "its log says why"
        raise EngineError(f"the reply server at {self.url} answered HTTP {status} {response.reason_phrase}; "
                          f"{hint}")


def _sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each server-sent event (its `data:` lines joined); comments and other fields
    ("event:", "id:", "retry:") are skipped."""
    data: list[str] = []
    for line in lines:
        if not line.strip():
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _parse_chunk(data: str, url: str) -> tuple[str, bool]:
    """(the content delta, whether end_call was called) of one chat-completion chunk."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as e:
        raise EngineError(f"the reply server at {url} sent a stream chunk that is not JSON; is base_url an "
                          "OpenAI-compatible endpoint?") from e
    if not isinstance(chunk, dict):
        return "", False
    if chunk.get("error"):
        raise EngineError(f"the reply server at {url} reported an error mid-stream; check its log")
    choices = chunk.get("choices") or []
    delta = (choices[0].get("delta") or {}) if choices and isinstance(choices[0], dict) else {}
    called = any((call.get("function") or {}).get("name") == "end_call"
                 for call in delta.get("tool_calls") or [] if isinstance(call, dict))
    return delta.get("content") or "", called
