"""The owner's login, sessions, CSRF tokens and the API's bearer tokens.

One owner, one password: an argon2id hash in `[web] password_file` (written by `set_password`) or in
STANDIN_WEB_PASSWORD_HASH. A login gets a signed session cookie holding its expiry, a random id and a
fingerprint of the password hash, so changing the password ends every session. The CSRF token is derived
from the session id and must come with every state-changing request that rides on the cookie. API clients
send `Authorization: Bearer <token>` ([web] api_tokens, STANDIN_API_TOKENS); a browser never adds that
header by itself, so those requests need no CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import os
import secrets
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request, WebSocket, WebSocketException, status
from starlette.responses import Response

from server.config import WebConfig

log = logging.getLogger(__name__)

PASSWORD_ENV = "STANDIN_WEB_PASSWORD_HASH"
TOKENS_ENV = "STANDIN_API_TOKENS"
MIN_PASSWORD_LENGTH = 8
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_hasher = PasswordHasher()  # argon2id with the library's current parameters


class AuthRequired(Exception):
    """No valid credentials: the app answers 401 on the API and a redirect to /login on pages."""

    def __init__(self, reason: str = "authentication required") -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfFailed(Exception):
    """A cookie-authenticated state-changing request without the session's CSRF token: 403."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The owner, as a request proves it: a session cookie or the API token (the owner side of the box,
    messages and notifications, is `server.owner.Owner`)."""

    via: str  # "session" | "token"
    csrf: str = ""  # the session's CSRF token; "" for bearer tokens
    sid: str = ""
    expires: float = 0.0


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically; the file is mode 0600 from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_password(path: str | Path, password: str) -> None:
    """Store the owner's password as an argon2id hash in `path` (mode 0600). Ends every open session."""
    _write_private(Path(path), hash_password(password) + "\n")


def load_secret(path: str | Path) -> bytes:
    """The session signing key in `path`; made (32 random bytes, hex, mode 0600) when there is none."""
    path = Path(path)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = secrets.token_hex(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile
            return load_secret(path)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
        log.info("made a new session key in %s", path)
    except OSError as exc:
        raise RuntimeError(f"cannot read the session key {path}: {exc.strerror or exc}") from exc
    if len(key) < 32:
        raise RuntimeError(f"the session key in {path} is too short; delete the file to make a new one")
    return key.encode()


class LoginLimiter:
    """At most `attempts` failed logins per client address within `window_s`; then wait."""

    MAX_ADDRESSES = 10_000

    def __init__(self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = max(1, attempts)
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # logins are checked on the thread pool

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        horizon = self.clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again; 0 when it may now."""
        with self._lock:
            failures = self._recent(address)
            if len(failures) < self.attempts:
                return 0
            return max(1, math.ceil(failures[-self.attempts] + self.window_s - self.clock()))

    def failed(self, address: str) -> None:
        with self._lock:
            if address not in self._failures and len(self._failures) >= self.MAX_ADDRESSES:
                for other in list(self._failures):
                    if not self._recent(other):
                        del self._failures[other]
            self._failures.setdefault(address, deque(maxlen=self.attempts)).append(self.clock())

    def clear(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def api_tokens(web: WebConfig, environ: Mapping[str, str] | None = None) -> tuple[bytes, ...]:
    env = (environ if environ is not None else os.environ).get(TOKENS_ENV, "")
    tokens = [*web.api_tokens, *env.split(",")]
    return tuple(t.strip().encode() for t in tokens if t.strip())


class Auth:
    def __init__(self, web: WebConfig, clock: Callable[[], float] = time.time,
                 environ: Mapping[str, str] | None = None) -> None:
        self.web = web
        self.clock = clock
        self.environ: Mapping[str, str] = environ if environ is not None else os.environ
        self.key = load_secret(web.secret_file)
        self.tokens = api_tokens(web, self.environ)
        self.limiter = LoginLimiter(web.login_attempts, web.login_window_s)
        self.cookie_name = "__Host-standin" if web.secure_cookies else "standin_session"
        self._revoked: dict[str, float] = {}  # session id -> its expiry

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self.key, "|".join(parts).encode(), hashlib.sha256).digest())

    # ------------------------------------------------------------------ password

    def password_hash(self) -> str | None:
        from_env = self.environ.get(PASSWORD_ENV, "").strip()
        if from_env:
            return from_env
        try:
            return Path(self.web.password_file).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read the password file: %s", exc.strerror or type(exc).__name__)
            return None

    def check_password(self, password: str) -> bool:
        stored = self.password_hash()
        if stored is None:
            return False
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    # ------------------------------------------------------------------ sessions

    def new_session(self) -> str:
        """A signed cookie value for a session starting now (after a successful login)."""
        stored = self.password_hash() or ""
        expires = str(int(self.clock() + self.web.session_hours * 3600))
        sid = secrets.token_urlsafe(18)
        fingerprint = self._mac("pw", stored)[:22]
        return ".".join((expires, sid, fingerprint, self._mac("s1", expires, sid, fingerprint)))

    def session(self, cookie: str | None) -> SignedIn | None:
        if not cookie or cookie.count(".") != 3:
            return None
        expires, sid, fingerprint, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("s1", expires, sid, fingerprint)):
            return None
        stored = self.password_hash()
        if not expires.isdigit() or int(expires) <= self.clock() or sid in self._revoked or stored is None:
            return None
        if not hmac.compare_digest(fingerprint, self._mac("pw", stored)[:22]):
            return None
        return SignedIn("session", csrf=self._mac("csrf", sid), sid=sid, expires=float(expires))

    def revoke(self, owner: SignedIn) -> None:
        now = self.clock()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[owner.sid] = owner.expires

    def set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(self.cookie_name, value, max_age=int(self.web.session_hours * 3600), path="/",
                            secure=self.web.secure_cookies, httponly=True, samesite="strict")

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(self.cookie_name, path="/", secure=self.web.secure_cookies, httponly=True,
                               samesite="strict")

    # ------------------------------------------------------------------ requests

    def bearer_ok(self, token: str) -> bool:
        given = token.encode()
        ok = False
        for known in self.tokens:  # no early exit: the time taken does not say which token came close
            ok |= hmac.compare_digest(given, known)
        return ok

    def authenticate(self, authorization: str | None, cookie: str | None) -> SignedIn | None:
        """The owner behind a request; None without credentials. A bad bearer token is refused even
        when a good cookie comes with it."""
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not self.bearer_ok(token.strip()):
                raise AuthRequired("invalid bearer token")
            return SignedIn("token")
        return self.session(cookie)


def get_auth(request: Request | WebSocket) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_owner(request: Request) -> SignedIn | None:
    """The owner, or None; for pages that look different when logged in (and for /api/health)."""
    auth = get_auth(request)
    owner = auth.authenticate(request.headers.get("authorization"), request.cookies.get(auth.cookie_name))
    if owner is not None:
        request.state.owner = owner
    return owner


async def require_owner(request: Request) -> SignedIn:
    """Dependency for every HTTP route that shows or changes the owner's data."""
    owner = await current_owner(request)
    if owner is None:
        raise AuthRequired()
    if owner.via == "session" and request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not given and request.headers.get("content-type", "").startswith(_FORMS):
            value = (await request.form()).get(CSRF_FIELD, "")
            given = value if isinstance(value, str) else ""
        if not given or not hmac.compare_digest(given.encode(), owner.csrf.encode()):
            raise CsrfFailed()
    return owner


def same_origin(origin: str | None, host: str | None) -> bool:
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


async def require_owner_ws(websocket: WebSocket) -> SignedIn:
    """Dependency for websockets: a valid session cookie, opened from a page of this same site."""
    auth = get_auth(websocket)
    owner = auth.session(websocket.cookies.get(auth.cookie_name))
    if owner is None or not same_origin(websocket.headers.get("origin"), websocket.headers.get("host")):
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="not allowed")
    return owner


OwnerDep = Annotated[SignedIn, Depends(require_owner)]
OwnerWsDep = Annotated[SignedIn, Depends(require_owner_ws)]
