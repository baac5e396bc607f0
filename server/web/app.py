"""The dashboard and API as one FastAPI app: `create_app(WebContext(config, db))`, served by uvicorn."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.web import api, browser_call, metrics, pages
from server.web.auth import Auth, AuthRequired, CsrfFailed, require_owner
from server.web.context import WebContext
from server.web.limits import BodyLimit

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SOURCE = Path(__file__).resolve().parents[1]  # the `server` package: where a failure is looked for
_LOGGED = "standin.logged"  # the exception `log_failure` logged for this request
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin"),
           (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()")]


class SecurityHeaders:
    """Every response gets a strict CSP and friends; nothing but /static is cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in HEADERS if h[0] not in present]
                if not cacheable and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path == "/metrics"


def error_response(request: Request, status: int, error: str,
                   headers: dict[str, str] | None = None) -> Response:
    if wants_json(request):
        return JSONResponse({"error": error}, status_code=status, headers=headers)
    return pages.render(request, "error.html", {"status": status, "error": error}, status, headers)


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AuthRequired)
    async def auth_required(request: Request, exc: AuthRequired) -> Response:
        if wants_json(request):
            return JSONResponse({"error": exc.reason}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if request.method != "GET":  # after logging in, the browser could only GET a form's target
            return RedirectResponse("/login", status_code=303)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        return error_response(request, 403, "missing or wrong CSRF token; reload the page and try again")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "not found"
        return error_response(request, exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, 422, _validation_message(exc))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        request.app.state.metrics.errors.inc()
        log_failure(request.scope, exc)
        return error_response(request, 500, "internal error; the server log has the details")


def log_failure(scope: Scope, exc: BaseException) -> None:
    """Log a failed request by its route, the exception's type and where in standin it was raised.

    Never the exception's text, nor its traceback's source lines: they may quote callers' numbers or
    words (a SQL error quotes its parameters)."""
    if scope.get(_LOGGED) is exc:
        return
    scope[_LOGGED] = exc
    route = getattr(scope.get("route"), "path", None) or "(no route)"
    method = scope.get("method", scope["type"].upper())
    ours = []
    for frame, line in traceback.walk_tb(exc.__traceback__):
        path = Path(frame.f_code.co_filename).resolve()
        if path.is_relative_to(SOURCE):
            ours.append(f"{path.relative_to(SOURCE.parent)}:{line} {frame.f_code.co_name}")
    log.error("%s %s failed with %s, raised at %s", method, route, type(exc).__name__,
              " < ".join(reversed(ours[-4:])) or "a library call")


class Unhandled:
    """The outermost layer: an exception that got past everything else ends here, logged by
    `log_failure` and answered with a plain 500 if nothing was sent yet.

    Starlette re-raises every exception after the app's 500 handler answered it, and uvicorn would then
    log it with its text and traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log_failure(scope, exc)
            if scope["type"] == "http" and not started:
                await PlainTextResponse("internal error", status_code=500)(scope, receive, send)


class StandinApp(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        return Unhandled(super().build_middleware_stack())


def create_app(context: WebContext) -> FastAPI:
    """The dashboard, the API, /metrics and the browser test call, on `context`'s config and database."""
    app = StandinApp(title="standin", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.standin = context
    app.state.auth = Auth(context.config.web)
    app.state.metrics = metrics.WebMetrics(context.db)
    app.add_middleware(BodyLimit, limit=context.config.web.max_body_bytes, refuse=error_response)
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=[Depends(require_owner)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    app.include_router(api.public)
    app.include_router(api.router)
    app.include_router(metrics.router)
    app.include_router(browser_call.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
