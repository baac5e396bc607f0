"""A client that streams a long request body the way an attacker would, and notices an early answer.

httpx writes the whole body before it reads the answer, so it cannot say how much of the body the server
took before refusing it. `post_streaming` sends from a generator only while the socket takes more, reads
whenever the server has said something, and stops pulling the generator once the answer's head is in:
`Sent.pulled` is how much of the body the server let in before it answered.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class Sent:
    status: int | None = None  # None: the connection ended without an answer
    pulled: int = 0  # body bytes taken from the generator
    seconds: float = 0.0  # from the first byte sent to the answer's head
    head: bytes = b""
    closed: bool = False  # the server closed the connection after answering
    errors: list[str] = field(default_factory=list)


def body(total: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """`total` bytes (at least 13) of one JSON object, {"notes": "xxx…"}, one chunk at a time: the
    client holds no more than a chunk."""
    head, tail = b'{"notes": "', b'"}'
    filler = b"x" * chunk
    sent = 0
    while sent < total:
        part = filler[: min(chunk, total - sent)]
        if sent == 0:
            part = head + part[len(head):]
        if sent + len(part) == total:
            part = part[: len(part) - len(tail)] + tail
        sent += len(part)
        yield part


def post_streaming(host: str, port: int, path: str, total: int, *, chunked: bool, method: str = "POST",
                   content_type: str = "application/json", headers: dict[str, str] | None = None,
                   payload: bytes | None = None, timeout_s: float = 60.0) -> Sent:
    """Send `total` bytes of `body()`, or `payload` when given."""
    if payload is not None:
        total = len(payload)
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Type: {content_type}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    result = Sent()
    chunks = body(total) if payload is None else iter([payload])
    pending = ("\r\n".join(head) + "\r\n\r\n").encode()
    received = b""
    sending = True
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout_s) as sock, \
            selectors.DefaultSelector() as selector:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while time.monotonic() - start < timeout_s:
            for _key, events in selector.select(timeout=1.0):
                if events & selectors.EVENT_READ:
                    try:
                        data = sock.recv(CHUNK)
                    except ConnectionResetError:
                        result.errors.append("reset while reading")
                        data = b""
                    received += data
                    if result.status is None and b"\r\n\r\n" in received:
                        result.seconds = time.monotonic() - start
                        _parse(result, received)
                        sending = False
                        selector.modify(sock, selectors.EVENT_READ)
                    if not data:
                        result.closed = True
                        return result
                if events & selectors.EVENT_WRITE and sending:
                    if not pending:
                        part = next(chunks, None)
                        if part is None:
                            pending = b"0\r\n\r\n" if chunked else b""
                            sending = False
                            selector.modify(sock, selectors.EVENT_READ)
                        else:
                            result.pulled += len(part)
                            pending = (f"{len(part):x}\r\n".encode() + part + b"\r\n") if chunked else part
                    try:
                        pending = pending[sock.send(pending):]
                    except (BrokenPipeError, ConnectionResetError) as exc:
                        result.errors.append(f"{type(exc).__name__} while sending")
                        sending = False
                        selector.modify(sock, selectors.EVENT_READ)
            if result.status is not None and _complete(received) and not _closing(result.head):
                return result  # answered, and the connection stays open
    result.errors.append("timed out")
    return result


def _parse(result: Sent, received: bytes) -> Sent:
    head = received.split(b"\r\n\r\n", 1)[0]
    if head.startswith(b"HTTP/1.1 "):
        result.status = int(head.split(b" ", 2)[1])
        result.head = head
    return result


def _closing(head: bytes) -> bool:
    return any(line.lower().replace(b" ", b"") == b"connection:close" for line in head.split(b"\r\n"))


def _complete(received: bytes) -> bool:
    """The answer's head and a body as long as its Content-Length are in."""
    head, _, rest = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(rest) >= int(value)
    return False
