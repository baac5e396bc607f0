"""What a request may carry, on the app as `standin serve` serves it: a long body is refused before it is
read (401 without credentials, 413 past `[web] max_body_bytes`), an id that cannot exist is a 404, and a
failure answers 500 and logs no caller's words."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.routing import BaseRoute, Route

from server.config import ConfigError, load
from server.web import queries
from server.web.app import create_app
from server.web.context import WebContext
from server.web.limits import MAX_ID, MAX_OFFSET, Id
from tests.store.postgres import both_backends
from tests.web.conftest import PASSWORD, TOKEN, add_call, add_contacts, csrf_of, live_server, with_web
from tests.web.streaming import post_streaming

LIMIT = 1024 * 1024  # [web] max_body_bytes by default
BIG = 50 * 1024 * 1024
# What loopback socket buffers can take in before the server reads anything, with room to spare; a
# server that reads the body takes all of it.
IN_FLIGHT = 20 * 1024 * 1024
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "secret caller words +393471234567"


def _where(live: str) -> tuple[str, int]:
    parts = urlsplit(live)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _session(live: str) -> tuple[dict[str, str], str]:
    """The owner's session cookie (as headers) and its CSRF token, logged in through the form."""
    login = httpx.post(f"{live}/login", data={"password": PASSWORD, "next": "/messages"})
    assert login.status_code == 303, login.text
    cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
    page = httpx.get(f"{live}/messages", headers={"Cookie": cookie})
    return {"Cookie": cookie}, csrf_of(page.text)


def test_a_long_body_without_credentials_is_refused_unread(live: str) -> None:
    host, port = _where(live)
    for method, path, status in [("POST", "/api/contacts", 401), ("PUT", "/api/profiles/1", 401),
                                 ("POST", "/contacts", 303), ("POST", "/messages/1/done", 303),
                                 ("POST", "/metrics", 405)]:
        sent = post_streaming(host, port, path, BIG, chunked=True, method=method)
        assert sent.status == status, (path, sent)
        assert sent.pulled < IN_FLIGHT and sent.closed, (path, sent)
    for path in ("/api/contacts", "/contacts"):  # a declared length over the limit: 413 at once
        declared = post_streaming(host, port, path, BIG, chunked=False)
        assert declared.status == 413 and declared.pulled < IN_FLIGHT and declared.closed, declared
    for chunked in (True, False):  # the login form is read without credentials, up to the limit
        login = post_streaming(host, port, "/login", BIG, chunked=chunked,
                               content_type="application/x-www-form-urlencoded")
        assert login.status == 413 and login.pulled < IN_FLIGHT and login.closed, login


def test_a_long_body_with_credentials_is_refused_at_the_limit(live: str) -> None:
    host, port = _where(live)
    for chunked in (True, False):
        sent = post_streaming(host, port, "/api/contacts", BIG, chunked=chunked, headers=BEARER)
        assert sent.status == 413 and sent.pulled < IN_FLIGHT and sent.closed, (chunked, sent)
    cookie, csrf = _session(live)
    api = post_streaming(host, port, "/api/profiles", BIG, chunked=True,
                         headers={**cookie, "X-CSRF-Token": csrf})
    assert api.status == 413 and api.pulled < IN_FLIGHT, api
    # a form's CSRF token is in the body: reading it for the token is bounded too
    form = post_streaming(host, port, "/contacts", BIG, chunked=True, headers=cookie,
                          content_type="application/x-www-form-urlencoded")
    assert form.status == 413 and form.pulled < IN_FLIGHT, form
    answer = httpx.post(f"{live}/api/contacts", headers=BEARER, content=b"{" + b" " * LIMIT)
    assert answer.status_code == 413
    assert answer.json()["error"].startswith(f"the request body is larger than {LIMIT} bytes")


def _padded(data: bytes, size: int) -> Iterator[bytes]:
    yield data
    yield b" " * (size - len(data))  # JSON allows trailing white space


def test_bodies_up_to_the_limit_still_work(live: str) -> None:
    with httpx.Client(base_url=live, headers=BEARER) as client:
        created = client.post("/api/contacts", json={"name": "Anna", "numbers": ["+390633334444"]})
        assert created.status_code == 201, created.text
        full = client.post("/api/profiles", content=_padded(b'{"name": "full"}', LIMIT))
        assert full.status_code == 201, full.text
        over = client.post("/api/profiles", content=_padded(b'{"name": "over"}', LIMIT + 1))
        assert over.status_code == 413
        assert [p["name"] for p in client.get("/api/profiles").json()["items"]] == ["full"]
        assert client.get("/api/contacts").json()["items"][0]["name"] == "Anna"


def test_the_limit_comes_from_the_config(config, db) -> None:
    with live_server(with_web(config, max_body_bytes=8192), db) as live:
        assert httpx.post(f"{live}/api/profiles", headers=BEARER,
                          content=_padded(b'{"name": "a"}', 8193)).status_code == 413
        assert httpx.post(f"{live}/api/profiles", headers=BEARER,
                          content=_padded(b'{"name": "a"}', 8192)).status_code == 201
    with pytest.raises(ConfigError, match="max_body_bytes must be at least 4096"):
        load(None, {"web": {"max_body_bytes": 100}})


def _routes(routes: list[BaseRoute]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
        included = getattr(route, "original_router", None)  # newer FastAPI keeps an included router whole
        if included is not None:
            yield from _routes(included.routes)


def _id_routes(config, db) -> list[Route]:
    return [r for r in _routes(create_app(WebContext(config, db)).routes) if r.param_convertors]


def test_every_path_parameter_is_a_database_id(config, db) -> None:
    routes = _id_routes(config, db)
    paths = {r.path for r in routes}
    assert {"/api/calls/{call_id:id}/recording", "/calls/{call_id:id}", "/api/contacts/{item_id:id}",
            "/messages/{message_id:id}/reopen", "/profiles/{item_id:id}/delete"} <= paths
    for route in routes:
        for name, convertor in route.param_convertors.items():
            assert isinstance(convertor, Id), f"{route.path}: {{{name}}} must be {{{name}:id}}"


def test_an_id_is_a_whole_number_from_1_to_max_id() -> None:
    rng = random.Random(7)
    numbers = [*range(-2, 1200), MAX_ID - 1, MAX_ID, MAX_ID + 1, 2**32, 2**63, 10**9, 10**10,
               *(rng.randrange(1, 2**34) for _ in range(20_000))]
    for n in numbers:
        assert bool(re.fullmatch(Id.regex, str(n))) == (1 <= n <= MAX_ID), n
    for text in ("", "01", "007", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "١٢"):
        assert not re.fullmatch(Id.regex, text), text


def _requests(routes: list[Route], ident: str) -> Iterator[tuple[str, str]]:
    for route in routes:
        url = route.path
        for name in route.param_convertors:
            url = url.replace(f"{{{name}:id}}", ident)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield method, url


@both_backends
def test_ids_that_cannot_exist_are_404(live: str, config, db) -> None:
    add_call(db, 1)
    add_contacts(db)
    routes = _id_routes(config, db)
    with httpx.Client(base_url=live, headers=BEARER) as client:
        for ident in (str(2**64), str(2**63), str(MAX_ID + 1), "9" * 30, "-1", "0", "abc", "1e3", "007"):
            for method, url in _requests(routes, ident):
                response = client.request(method, url, json={} if url.startswith("/api/") else None)
                assert response.status_code == 404, (method, url, response.status_code, response.text)
        # the largest id goes to the database, which finds nothing rather than overflowing
        for method, url in _requests(routes, str(MAX_ID)):
            response = client.request(method, url, json={} if url.startswith("/api/") else None)
            assert response.status_code == 404, (method, url, response.status_code, response.text)
            assert f" {MAX_ID}" in response.text, (method, url, response.text)  # "there is no call …"
        assert client.get("/api/calls", params={"offset": MAX_OFFSET + 1}).status_code == 422
        assert client.get("/api/calls", params={"offset": MAX_OFFSET}).json()["items"] == []
        assert client.get("/calls", params={"offset": 2**64}).status_code == 200
        assert client.get("/messages", params={"offset": 2**64}).status_code == 200
        assert client.get("/api/calls/1").json()["caller_name"] == "Caller 1"


@pytest.fixture
def uvicorn_log() -> Iterator[list[str]]:
    """uvicorn's own log records, formatted with their tracebacks (uvicorn's loggers do not propagate)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(logging.Formatter().format(record))

    handler = Keep()
    logger = logging.getLogger("uvicorn")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def test_a_failure_answers_500_and_logs_no_callers_words(
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, live: str,
        uvicorn_log: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky(*args: object) -> None:
        raise ValueError(SECRET)

    monkeypatch.setattr(queries, "call_detail", leaky)
    with httpx.Client(base_url=live, headers=BEARER) as client:
        api = client.get("/api/calls/1")
        assert api.status_code == 500
        assert api.json() == {"error": "internal error; the server log has the details"}
        page = client.get("/calls/1")
        assert page.status_code == 500 and "internal error" in page.text
        # the error page itself failing: the last resort answers
        monkeypatch.setattr("server.web.app.error_response", leaky)
        last = client.get("/api/calls/1")
        assert last.status_code == 500 and last.text == "internal error"
        assert client.get("/api/calls").status_code == 200
    logged = caplog.text + "\n".join(uvicorn_log) + "".join(capfd.readouterr())
    assert "+39347" not in logged and "caller words" not in logged
    failures = [r.getMessage() for r in caplog.records if "failed with ValueError" in r.getMessage()]
    assert len(failures) == 4, failures  # the call's failure three times, the error page's once
    assert failures[0].startswith("GET /api/calls/{call_id:id} failed with ValueError, raised at ")
    assert "server/web/api.py" in failures[0]
