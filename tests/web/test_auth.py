"""Login, sessions, CSRF, bearer tokens and the refusals: nothing is readable or changeable without them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from server.config import WebConfig
from server.web.auth import Auth, LoginLimiter, OwnerWsDep, load_secret, same_origin, set_password
from tests.web.conftest import PASSWORD, TOKEN, Site, add_call, make_site, with_web

PAGES = ["/", "/messages", "/calls", "/calls/1", "/contacts", "/contacts/new", "/profiles", "/profiles/new",
         "/status"]
API = ["/api/calls", "/api/calls/1", "/api/calls/1/recording", "/api/messages", "/api/contacts",
       "/api/contacts/1", "/api/profiles", "/api/profiles/1", "/metrics", "/api/openapi.json"]


def test_pages_redirect_to_login_and_api_answers_401(site: Site) -> None:
    add_call(site.context.db, 1)
    for path in PAGES:
        response = site.client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    for path in API:
        response = site.client.get(path)
        assert response.status_code == 401, path
        assert response.json() == {"error": "authentication required"}
        assert "Caller 1" not in response.text


def test_state_changing_requests_without_credentials_are_refused(site: Site) -> None:
    add_call(site.context.db, 1)
    assert site.client.post("/api/messages/1/done").status_code == 401
    assert site.client.post("/api/contacts", json={"name": "X", "numbers": ["+391234567"]}).status_code == 401
    assert site.client.delete("/api/profiles/1").status_code == 401
    response = site.client.post("/messages/1/done", data={"back": "/messages"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert site.client.get("/api/messages", headers=site.bearer()).json()["items"][0]["done"] is False


def test_login_then_logout(site: Site) -> None:
    response = site.client.post("/login", data={"password": PASSWORD, "next": "/calls?offset=0"},
                                follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/calls?offset=0"
    assert site.client.get("/calls").status_code == 200
    assert site.client.get("/api/calls").status_code == 200
    assert site.client.get("/login", follow_redirects=False).headers["location"] == "/messages"
    csrf = site.login()

    response = site.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert "standin_session" not in site.client.cookies
    assert site.client.get("/messages", follow_redirects=False).status_code == 303
    assert site.client.get("/api/calls").status_code == 401


def test_logged_out_session_cookie_is_dead(site: Site) -> None:
    csrf = site.login()
    cookie = site.client.cookies.get("standin_session")
    site.client.post("/logout", data={"csrf_token": csrf})
    site.client.cookies.set("standin_session", cookie or "")
    assert site.client.get("/api/calls").status_code == 401


def test_session_cookie_attributes(config, db) -> None:
    plain = make_site(config, db)
    response = plain.client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert "Max-Age=43200" in cookie

    secure = make_site(with_web(config, secure_cookies=True, session_hours=2.0), db)
    secure.client.base_url = "https://testserver"
    response = secure.client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-standin=") and "Secure" in cookie and "Max-Age=7200" in cookie
    assert secure.client.get("/api/calls").status_code == 200


def test_wrong_password_then_429_with_retry_after(site: Site) -> None:
    for _ in range(3):
        response = site.client.post("/login", data={"password": "not it at all"})
        assert response.status_code == 401
        assert "Wrong password" in response.text
    response = site.client.post("/login", data={"password": PASSWORD})
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert "standin_session" not in site.client.cookies


def test_login_limiter_window_and_addresses() -> None:
    now = [1000.0]
    limiter = LoginLimiter(attempts=2, window_s=60.0, clock=lambda: now[0])
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 0
    now[0] += 10
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 50
    assert limiter.retry_after("10.0.0.2") == 0
    now[0] += 50
    assert limiter.retry_after("10.0.0.1") == 0  # the first failure left the window
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 10
    limiter.clear("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 0


def test_no_password_set_says_how_to_set_one(site: Site) -> None:
    Path(site.context.config.web.password_file).unlink()
    response = site.client.post("/login", data={"password": PASSWORD})
    assert response.status_code == 401
    assert "standin passwd" in response.text


def test_password_from_environment(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.web.auth import hash_password

    monkeypatch.setenv("STANDIN_WEB_PASSWORD_HASH", hash_password("another secret"))
    assert site.client.post("/login", data={"password": PASSWORD}).status_code == 401
    assert site.client.post("/login", data={"password": "another secret"}, follow_redirects=False
                            ).status_code == 303


def test_changing_the_password_ends_sessions(owner: Site) -> None:
    assert owner.client.get("/api/calls").status_code == 200
    set_password(owner.context.config.web.password_file, "a brand new password")
    assert owner.client.get("/api/calls").status_code == 401


def test_csrf_required_for_cookie_requests(owner: Site) -> None:
    add_call(owner.context.db, 1)
    assert owner.client.post("/api/messages/1/done").status_code == 403
    response = owner.client.post("/api/messages/1/done", headers={"X-CSRF-Token": "forged"})
    assert response.status_code == 403
    assert response.json()["error"].startswith("missing or wrong CSRF token")
    response = owner.client.post("/messages/1/done", data={"csrf_token": "forged", "back": "/messages"})
    assert response.status_code == 403
    assert owner.client.post("/logout", data={}).status_code == 403
    assert owner.client.get("/api/messages").json()["items"][0]["done"] is False

    response = owner.client.post("/api/messages/1/done", headers={"X-CSRF-Token": owner.csrf})
    assert response.status_code == 200 and response.json()["done"] is True
    response = owner.client.post("/messages/1/reopen", data={"csrf_token": owner.csrf, "back": "/messages"},
                                 follow_redirects=False)
    assert response.status_code == 303
    assert owner.client.get("/api/messages").json()["items"][0]["done"] is False


def test_csrf_token_belongs_to_its_session(site: Site) -> None:
    add_call(site.context.db, 1)
    first = site.login()
    second = site.login()
    assert first != second
    assert site.client.post("/api/messages/1/done", headers={"X-CSRF-Token": first}).status_code == 403
    assert site.client.post("/api/messages/1/done", headers={"X-CSRF-Token": second}).status_code == 200


def test_bearer_tokens(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    add_call(site.context.db, 1)
    assert site.client.get("/api/calls", headers=site.bearer()).status_code == 200
    for bad in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"):
        response = site.client.get("/api/calls", headers={"Authorization": bad})
        assert response.status_code == 401, bad
        assert response.json() == {"error": "invalid bearer token"}
        assert response.headers["www-authenticate"] == "Bearer"
    # Bearer requests need no CSRF token.
    assert site.client.post("/api/messages/1/done", headers=site.bearer()).json()["done"] is True


def test_bad_bearer_wins_over_a_good_cookie(owner: Site) -> None:
    response = owner.client.get("/api/calls", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_tokens_from_environment(config, db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_API_TOKENS", " env-token-one-123456 ,, env-token-two-123456")
    site = make_site(with_web(config, api_tokens=()), db)
    for token in ("env-token-one-123456", "env-token-two-123456"):
        assert site.client.get("/api/calls", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert site.client.get("/api/calls", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_empty_token_lists_accept_no_bearer(config, db) -> None:
    site = make_site(with_web(config, api_tokens=("", "  ")), db)
    assert site.client.get("/api/calls", headers={"Authorization": "Bearer "}).status_code == 401
    assert site.client.get("/api/calls", headers={"Authorization": "Bearer  "}).status_code == 401


def test_session_expires(tmp_path: Path) -> None:
    set_password(tmp_path / "pw", PASSWORD)
    now = [1_000_000.0]
    auth = Auth(WebConfig(password_file=str(tmp_path / "pw"), secret_file=str(tmp_path / "key"),
                          session_hours=1.0), clock=lambda: now[0], environ={})
    cookie = auth.new_session()
    assert auth.session(cookie) is not None
    now[0] += 3599
    assert auth.session(cookie) is not None
    now[0] += 2
    assert auth.session(cookie) is None
    tampered = cookie.replace(cookie.split(".")[0], str(int(now[0]) + 3600), 1)
    assert auth.session(tampered) is None
    assert auth.session("garbage") is None and auth.session("a.b.c.d") is None


def test_sessions_do_not_survive_a_new_key(tmp_path: Path) -> None:
    set_password(tmp_path / "pw", PASSWORD)
    web = WebConfig(password_file=str(tmp_path / "pw"), secret_file=str(tmp_path / "key"))
    cookie = Auth(web, environ={}).new_session()
    assert Auth(web, environ={}).session(cookie) is not None  # the key is read back, not remade
    (tmp_path / "key").unlink()
    assert Auth(web, environ={}).session(cookie) is None


def test_files_are_private(tmp_path: Path) -> None:
    set_password(tmp_path / "etc" / "web-password", PASSWORD)
    key = load_secret(tmp_path / "etc" / "web-secret")
    for name in ("web-password", "web-secret"):
        assert stat.S_IMODE(os.stat(tmp_path / "etc" / name).st_mode) == 0o600
    assert load_secret(tmp_path / "etc" / "web-secret") == key and len(key) == 64
    assert (tmp_path / "etc" / "web-password").read_text().startswith("$argon2id$")
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["web-password", "web-secret"]
    with pytest.raises(ValueError, match="at least 8"):
        set_password(tmp_path / "short", "short")


def test_no_docs_without_auth(site: Site) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert site.client.get(path, follow_redirects=False).status_code in (303, 404), path
    assert site.client.get("/api/openapi.json").status_code == 401
    spec = site.client.get("/api/openapi.json", headers=site.bearer()).json()
    assert "/api/calls" in spec["paths"]


def test_same_origin() -> None:
    assert same_origin("http://box.lan:8080", "box.lan:8080")
    assert same_origin("https://Box.lan", "box.lan")
    assert not same_origin("http://evil.example", "box.lan:8080")
    assert not same_origin("null", "box.lan:8080")
    assert not same_origin(None, "box.lan:8080")
    assert not same_origin("http://box.lan:8081", "box.lan:8080")


def test_websocket_needs_session_and_same_origin(site: Site) -> None:
    app = site.client.app

    async def echo(websocket: WebSocket, owner: OwnerWsDep) -> None:
        await websocket.accept()
        await websocket.send_json({"via": owner.via})
        await websocket.close()

    app.add_api_websocket_route("/ws/test-echo", echo)  # type: ignore[attr-defined]
    same = {"origin": "http://testserver"}
    with pytest.raises(WebSocketDisconnect) as refused, site.client.websocket_connect("/ws/test-echo",
                                                                                      headers=same):
        pass
    assert refused.value.code == 1008
    site.login()
    with pytest.raises(WebSocketDisconnect) as refused, site.client.websocket_connect(
            "/ws/test-echo", headers={"origin": "http://evil.example"}):
        pass
    assert refused.value.code == 1008
    with site.client.websocket_connect("/ws/test-echo", headers=same) as ws:
        assert ws.receive_json() == {"via": "session"}
