"""What one request may carry: a body of at most `[web] max_body_bytes`, and ids the database can hold.

`BodyLimit` answers 413 at once to a Content-Length over the limit, and counts a body sent without one
(chunked) as the app reads it, failing the read with 413 as soon as it passes the limit: no parser ever
holds more than the limit. The web server shares its event loop with the live calls, so reading and
parsing an attacker's 200 MB would cost the calls their audio clock, not only memory.

A response sent before a long body was read closes the connection; otherwise uvicorn would go on
reading, and dropping, whatever the client still sends. Routes check credentials before they read a
body (see `api.json_object`), so a request without them is answered 401 having read nothing.

Paths take ids as `{call_id:id}`: only a whole number from 1 to MAX_ID matches, so an id that cannot
exist is a plain 404 instead of an overflow inside the database driver. The id columns are INTEGER, which
PostgreSQL keeps in 32 bits (SQLite in 64), so MAX_ID is 2**31 - 1 on both. Page offsets go to OFFSET,
a 64-bit number on both.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ID = 2**31 - 1
MAX_OFFSET = 2**63 - 1
DRAIN_BYTES = 64 * 1024  # uvicorn buffers this much of an unread body itself; dropping less is cheap


def too_large(limit: int) -> str:
    return (f"the request body is larger than {limit} bytes; send less "
            f"(the server's limit is [web] max_body_bytes)")


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """(Content-Length, chunked) of the request; uvicorn has already refused a malformed length."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            digits = value.lstrip(b"0")
            length = int(digits or b"0") if len(digits) <= 18 else 10**18  # longer is over any limit
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return length, chunked


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, refuse: Callable[[Request, int, str], Response]) -> None:
        self.app = app
        self.limit = limit
        self.refuse = refuse  # the app's error page (JSON under /api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, chunked = _framing(scope)
        if length is not None and length > self.limit:
            response = self.refuse(Request(scope), 413, too_large(self.limit))
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        unread = chunked or (length or 0) > DRAIN_BYTES  # too long to drop cheaply, and not read yet
        received = 0

        async def counted() -> Message:
            nonlocal received, unread
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, too_large(self.limit))
                unread = unread and message.get("more_body", False)
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"connection" for name, _ in headers):
                    message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, counted, closing)


def _at_most(limit: int) -> str:
    """A regex for the decimal numbers 1..limit, without leading zeros: every shorter number, and each
    number as long as `limit` that is smaller at its first differing digit."""
    digits = str(limit)
    rest = len(digits) - 1
    alternatives = [digits, *([f"[1-9][0-9]{{0,{rest - 1}}}"] if rest else [])]
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            alternatives.append(f"{digits[:i]}[{low}-{int(digit) - 1}][0-9]{{{rest - i}}}")
    return "|".join(alternatives)


class Id(Convertor[int]):
    regex = _at_most(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 1 <= value <= MAX_ID:
            raise ValueError(f"an id must be between 1 and {MAX_ID}, not {value}")
        return str(value)


register_url_convertor("id", Id())
