"""The JSON API under /api: calls, messages, contacts, profiles, health. Errors are {"error": "..."}."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.contacts import manage
from server.web import queries
from server.web.auth import AuthRequired, OwnerDep, SignedIn, current_owner, require_owner
from server.web.context import WebContext
from server.web.limits import MAX_OFFSET

router = APIRouter(prefix="/api", dependencies=[Depends(require_owner)])
public = APIRouter(prefix="/api")

Limit = Query(50, ge=1, le=200)
Offset = Query(0, ge=0, le=MAX_OFFSET)


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.standin
    return ctx


@contextmanager
def session_for(request: Request) -> Iterator[Session]:
    """A database session; the contacts module's errors become the matching HTTP status."""
    try:
        with context(request).db.session() as session:
            yield session
    except manage.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except manage.Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except manage.ContactsError as exc:
        raise HTTPException(422, str(exc)) from None


def not_found(what: str, ident: int) -> HTTPException:
    return HTTPException(404, f"there is no {what} {ident}")


async def json_object(request: Request, owner: OwnerDep) -> dict[str, Any]:
    """The request's body as a JSON object, read only once the owner is known: FastAPI reads a `Body`
    parameter before it runs any dependency, credentials included."""
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise HTTPException(422, "the body must be a JSON object (Content-Type: application/json)")
    return data


JsonObject = Annotated[dict[str, Any], Depends(json_object)]
JSON_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object"}}}}}


# --------------------------------------------------------------------------- calls


@router.get("/calls")
def list_calls(request: Request, limit: int = Limit, offset: int = Offset) -> dict[str, Any]:
    """Calls, newest first."""
    with session_for(request) as session:
        return queries.list_calls(session, limit, offset)


@router.get("/calls/{call_id:id}")
def get_call(request: Request, call_id: int) -> dict[str, Any]:
    """One call: what the caller said, what the bot meant and what was heard, decisions, latencies,
    the message taken, and the engines and model files (sha256) that served it."""
    with session_for(request) as session:
        detail = queries.call_detail(session, call_id)
    if detail is None:
        raise not_found("call", call_id)
    has = _recording(request, detail.pop("folder")) is not None
    detail["recording"] = f"/api/calls/{call_id}/recording" if has else None
    return detail


def recording_path(request: Request, call_id: int) -> Path | None:
    """The call's stereo call.wav, when it exists inside [storage] calls_dir."""
    with session_for(request) as session:
        folder = queries.call_folder(session, call_id)
    return _recording(request, folder)


def _recording(request: Request, folder: str | None) -> Path | None:
    if not folder:
        return None
    calls_dir = Path(context(request).config.storage.calls_dir).resolve()
    wav = (Path(folder) / "call.wav").resolve()
    return wav if wav.is_relative_to(calls_dir) and wav.is_file() else None


@router.get("/calls/{call_id:id}/recording")
def get_recording(request: Request, call_id: int) -> Response:
    wav = recording_path(request, call_id)
    if wav is None:
        raise HTTPException(404, f"there is no recording of call {call_id}")
    return FileResponse(wav, media_type="audio/wav", filename=f"call-{call_id}.wav",
                        content_disposition_type="inline")


# --------------------------------------------------------------------------- messages


@router.get("/messages")
def list_messages(request: Request, view: str = Query("all", pattern="^(open|done|all)$"),
                  limit: int = Limit, offset: int = Offset) -> dict[str, Any]:
    """The inbox: open messages first, urgent ones on top, newest first."""
    with session_for(request) as session:
        return queries.inbox(session, limit, offset, view)


def set_message_done(request: Request, message_id: int, done: bool) -> dict[str, Any]:
    with session_for(request) as session:
        message = queries.set_done(session, message_id, done)
    if message is None:
        raise not_found("message", message_id)
    return message


@router.post("/messages/{message_id:id}/done")
def mark_done(request: Request, message_id: int) -> dict[str, Any]:
    return set_message_done(request, message_id, True)


@router.post("/messages/{message_id:id}/reopen")
def reopen(request: Request, message_id: int) -> dict[str, Any]:
    return set_message_done(request, message_id, False)


# --------------------------------------------------------------------------- contacts and profiles


def _crud(name: str, ops: dict[str, Callable[..., Any]]) -> None:
    """GET and POST /api/{name}s, GET, PUT and DELETE /api/{name}s/{id}, on server.contacts.manage."""
    path = f"/{name}s"

    @router.get(path, name=f"list_{name}s")
    def list_all(request: Request) -> dict[str, Any]:
        with session_for(request) as session:
            return {"items": ops["list"](session)}

    @router.post(path, status_code=201, name=f"create_{name}", openapi_extra=JSON_BODY)
    def create_one(request: Request, data: JsonObject) -> dict[str, Any]:
        with session_for(request) as session:
            result: dict[str, Any] = ops["create"](session, data)
            return result

    @router.get(path + "/{item_id:id}", name=f"get_{name}")
    def get_one(request: Request, item_id: int) -> dict[str, Any]:
        with session_for(request) as session:
            result: dict[str, Any] = ops["get"](session, item_id)
            return result

    @router.put(path + "/{item_id:id}", name=f"update_{name}", openapi_extra=JSON_BODY)
    def update_one(request: Request, item_id: int, data: JsonObject) -> dict[str, Any]:
        with session_for(request) as session:
            result: dict[str, Any] = ops["update"](session, item_id, data)
            return result

    @router.delete(path + "/{item_id:id}", status_code=204, name=f"delete_{name}")
    def delete_one(request: Request, item_id: int) -> Response:
        with session_for(request) as session:
            ops["delete"](session, item_id)
        return Response(status_code=204)


_crud("contact", {"list": manage.list_contacts, "get": manage.get_contact, "create": manage.create_contact,
                  "update": manage.update_contact, "delete": manage.delete_contact})
_crud("profile", {"list": manage.list_profiles, "get": manage.get_profile, "create": manage.create_profile,
                  "update": manage.update_profile, "delete": manage.delete_profile})


# --------------------------------------------------------------------------- health


def database_health(ctx: WebContext) -> dict[str, Any]:
    try:
        with ctx.db.session() as session:
            session.execute(text("SELECT 1"))
        return {"ok": True, "revision": ctx.db.revision()}
    except SQLAlchemyError as exc:
        return {"ok": False, "error": f"the database did not answer ({type(exc).__name__})"}


def serve_status(ctx: WebContext) -> dict[str, Any]:
    try:
        found = ctx.status()
    except Exception as exc:  # a broken status callback must not take the dashboard down
        return {"ok": False, "detail": f"the status is not available ({type(exc).__name__})"}
    return found if isinstance(found, dict) else {"ok": False, "detail": "the status is not a dict"}


def healthy(database: dict[str, Any], status: dict[str, Any]) -> bool:
    parts = [status, status.get("sip"), status.get("models")]
    return database["ok"] and not any(isinstance(p, dict) and p.get("ok") is False for p in parts)


@public.get("/health")
async def health(request: Request) -> JSONResponse:
    """{"status": "ok" | "degraded"} for anyone (503 when degraded); the details with credentials."""
    try:
        owner: SignedIn | None = await current_owner(request)
    except AuthRequired:
        owner = None
    ctx = context(request)
    database = await run_in_threadpool(database_health, ctx)
    status = serve_status(ctx)
    body: dict[str, Any] = {"status": "ok" if healthy(database, status) else "degraded"}
    if owner is not None:
        body |= {"database": database, "sip": status.get("sip"), "models": status.get("models"),
                 "serve": {k: v for k, v in status.items() if k not in ("sip", "models")}}
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
