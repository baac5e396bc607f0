"""The dashboard's pages, rendered on the server: login, inbox, calls, contacts, profiles, status.

Forms post back here (with the session's CSRF token in a hidden field) and redirect (303) on success.
Other modules render their own pages on base.html with `render`.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from server.contacts import manage
from server.ringthrough import do_not_disturb, set_do_not_disturb
from server.web import api, queries
from server.web.auth import OwnerDep, SignedIn, client_address, current_owner, get_auth, require_owner
from server.web.limits import MAX_OFFSET

PAGE_SIZE = 50
TEMPLATES = Path(__file__).with_name("templates")


def _page_context(request: Request) -> dict[str, Any]:
    owner: SignedIn | None = getattr(request.state, "owner", None)
    return {"owner": owner, "csrf_token": owner.csrf if owner else "", "path": request.url.path}


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


templates = Jinja2Templates(directory=TEMPLATES, context_processors=[_page_context])
templates.env.filters.update(when=_when, clock=_clock, ms=_ms)


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    """A page from templates/, with `owner`, `csrf_token` and `path` filled in for base.html."""
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code, headers=headers)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None, default: str = "/messages") -> str:
    """Only a path on this site: never another host (`//evil`, `/\\evil`, `https://...`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


router = APIRouter(include_in_schema=False)
owner_only = [Depends(require_owner)]


# --------------------------------------------------------------------------- login


@router.get("/login")
async def login_page(request: Request, next: str = "/messages") -> Response:
    if await current_owner(request) is not None:
        return see_other(safe_next(next))
    return render(request, "login.html", {"next": safe_next(next), "error": ""})


@router.post("/login")
async def login(request: Request) -> Response:
    auth = get_auth(request)
    form = await request.form()
    target = safe_next(_field(form, "next"))
    address = client_address(request)
    wait = auth.limiter.retry_after(address)
    if wait:
        return render(request, "login.html", {"next": target, "error": "Too many failed logins. Try again in "
                                              f"{math.ceil(wait / 60)} minute(s)."},
                      status_code=429, headers={"Retry-After": str(wait)})
    if not await run_in_threadpool(auth.check_password, _field(form, "password")):
        auth.limiter.failed(address)
        error = ("Wrong password." if auth.password_hash() is not None else
                 "No password is set yet: run `standin passwd` on the server.")
        return render(request, "login.html", {"next": target, "error": error}, status_code=401)
    auth.limiter.clear(address)
    response = see_other(target)
    auth.set_cookie(response, auth.new_session())
    return response


@router.post("/logout")
async def logout(request: Request, owner: OwnerDep) -> Response:
    auth = get_auth(request)
    if owner.via == "session":
        auth.revoke(owner)
    response = see_other("/login")
    auth.clear_cookie(response)
    return response


def _field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


# --------------------------------------------------------------------------- messages and calls


def _offset(offset: int) -> int:
    """A page's offset as the database can take it: a link edited by hand shows the nearest page."""
    return min(max(0, offset), MAX_OFFSET)


@router.get("/", dependencies=owner_only)
def home() -> Response:
    return see_other("/messages")


@router.get("/messages", dependencies=owner_only)
def messages_page(request: Request, view: str = "open", offset: int = 0) -> Response:
    view = view if view in queries.INBOX_VIEWS else "open"
    offset = _offset(offset)
    with api.session_for(request) as session:
        inbox = queries.inbox(session, PAGE_SIZE, offset, view)
        open_count = queries.open_messages(session)
    back = f"/messages?{urlencode({'view': view, 'offset': offset})}"
    return render(request, "messages.html", {"inbox": inbox, "view": view, "open_count": open_count,
                                             "back": back})


async def _message_action(request: Request, message_id: int, done: bool) -> Response:
    form = await request.form()
    await run_in_threadpool(api.set_message_done, request, message_id, done)
    return see_other(safe_next(_field(form, "back")))


@router.post("/messages/{message_id:id}/done", dependencies=owner_only)
async def mark_done(request: Request, message_id: int) -> Response:
    return await _message_action(request, message_id, True)


@router.post("/messages/{message_id:id}/reopen", dependencies=owner_only)
async def reopen(request: Request, message_id: int) -> Response:
    return await _message_action(request, message_id, False)


@router.get("/calls", dependencies=owner_only)
def calls_page(request: Request, offset: int = 0) -> Response:
    with api.session_for(request) as session:
        calls = queries.list_calls(session, PAGE_SIZE, _offset(offset))
    return render(request, "calls.html", {"calls": calls})


@router.get("/calls/{call_id:id}", dependencies=owner_only)
def call_page(request: Request, call_id: int) -> Response:
    detail = api.get_call(request, call_id)
    entries = queries.timeline(detail)
    scale = chart_scale(detail["latencies"])
    for entry in entries:
        if entry["type"] == "latency":
            entry["chart"] = waterfall(entry, scale)
    return render(request, "call_detail.html", {"call": detail, "timeline": entries})


# --------------------------------------------------------------------------- latency waterfall

CHART_LABEL_W = 130
CHART_PLOT_W = 400
CHART_ROW_H = 18
TICK_STEPS = (25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000)
STAGE_ROWS = (("STT", "stt_ms"), ("judge", "judge_ms"), ("LLM first token", "llm_first_token_ms"),
              ("TTS first audio", "tts_first_audio_ms"))


def _stages(lat: dict[str, Any]) -> list[tuple[str, float | None, float]]:
    """(label, ms, start ms): the stages laid end to end from the caller's end of speech; TTS starts when
    the reply's first clause was ready."""
    stt, judge = lat["stt_ms"] or 0.0, lat["judge_ms"] or 0.0
    llm_start = stt + judge
    first_text = lat["llm_first_clause_ms"] or lat["llm_first_token_ms"] or 0.0
    starts = {"stt_ms": 0.0, "judge_ms": stt, "llm_first_token_ms": llm_start,
              "tts_first_audio_ms": llm_start + first_text}
    return [(label, lat[key], starts[key]) for label, key in STAGE_ROWS]


def chart_scale(latencies: list[dict[str, Any]]) -> tuple[float, float]:
    """One time scale (ms) for every waterfall of a call, so turns compare at a glance, and its tick step."""
    longest = 100.0
    for lat in latencies:
        for _label, ms, start in _stages(lat):
            longest = max(longest, start + (ms or 0.0))
        longest = max(longest, lat["voice_to_voice_ms"] or 0.0, lat["llm_first_clause_ms"] or 0.0)
    step = next((s for s in TICK_STEPS if longest / s <= 6), TICK_STEPS[-1])
    return math.ceil(longest / step) * step, step


def waterfall(lat: dict[str, Any], scale: tuple[float, float]) -> dict[str, Any]:
    """Geometry for one reply's SVG waterfall: a bar per stage and a line where the bot's voice began."""
    scale_ms, step = scale

    def x(ms: float) -> float:
        return round(CHART_LABEL_W + ms / scale_ms * CHART_PLOT_W, 1)

    rows: list[dict[str, Any]] = []
    for i, (label, ms, start) in enumerate(_stages(lat)):
        row = {"label": label, "ms": ms, "y": i * CHART_ROW_H + 4, "x": x(start),
               "width": max(1.0, round(x(start + ms) - x(start), 1)) if ms is not None else 0.0}
        if label == "LLM first token" and lat["llm_first_clause_ms"] is not None:
            row["clause_ms"] = lat["llm_first_clause_ms"]
            row["clause_width"] = max(0.0, round(x(start + lat["llm_first_clause_ms"]) - x(start), 1))
        rows.append(row)
    height = len(rows) * CHART_ROW_H + 22
    ticks = [{"x": x(step * i), "label": f"{step * i:.0f}"} for i in range(round(scale_ms / step) + 1)]
    v2v = lat["voice_to_voice_ms"]
    return {"rows": rows, "ticks": ticks, "height": height, "width": CHART_LABEL_W + CHART_PLOT_W + 60,
            "axis_y": len(rows) * CHART_ROW_H + 6, "v2v": v2v,
            "v2v_x": x(min(max(v2v, 0.0), scale_ms)) if v2v is not None else None}


# --------------------------------------------------------------------------- contacts and profiles


def _contact_data(form: FormData) -> dict[str, Any]:
    numbers = [n.strip() for n in _field(form, "numbers").replace(",", "\n").splitlines() if n.strip()]
    return {"name": _field(form, "name"), "numbers": numbers, "profile": _field(form, "profile"),
            "notes": _field(form, "notes")}


def _profile_data(form: FormData) -> dict[str, Any]:
    data: dict[str, Any] = {key: _field(form, key) for key in ("name", "greeting", "manner", "language")}
    timeout = _field(form, "silence_timeout_s").strip()
    try:
        data["silence_timeout_s"] = float(timeout) if timeout else None
    except ValueError:
        raise manage.Invalid("silence_timeout_s must be a number of seconds") from None
    for flag in ("backchannels", "end_on_sales", "blocked"):
        data[flag] = flag in form
    return data


def _echo(kind: str, form: FormData, item_id: int | None) -> dict[str, Any]:
    """The form's values as the owner typed them, to show again with an error."""
    if kind == "contacts":
        return {**_contact_data(form), "id": item_id}
    flags = {flag: flag in form for flag in ("backchannels", "end_on_sales", "blocked")}
    return {**{key: _field(form, key) for key in ("name", "greeting", "manner", "language",
                                                  "silence_timeout_s")}, **flags, "id": item_id}


KINDS: dict[str, dict[str, Any]] = {
    "contacts": {"one": "contact", "get": manage.get_contact, "create": manage.create_contact,
                 "update": manage.update_contact, "delete": manage.delete_contact, "form": _contact_data},
    "profiles": {"one": "profile", "get": manage.get_profile, "create": manage.create_profile,
                 "update": manage.update_profile, "delete": manage.delete_profile, "form": _profile_data},
}


@router.get("/contacts", dependencies=owner_only)
def contacts_page(request: Request, search: str = "") -> Response:
    with api.session_for(request) as session:
        contacts = manage.list_contacts(session, search=search)
    return render(request, "contacts.html", {"contacts": contacts, "search": search})


@router.get("/profiles", dependencies=owner_only)
def profiles_page(request: Request) -> Response:
    with api.session_for(request) as session:
        profiles = manage.list_profiles(session)
    return render(request, "profiles.html", {"profiles": profiles})


def _form_page(request: Request, kind: str, item: dict[str, Any] | None, error: str = "",
               status_code: int = 200) -> Response:
    with api.session_for(request) as session:
        profiles = manage.list_profiles(session) if kind == "contacts" else []
    return render(request, f"{KINDS[kind]['one']}_form.html",
                  {"item": item, "profiles": profiles, "error": error}, status_code=status_code)


def _edit_routes(kind: str) -> None:
    ops = KINDS[kind]

    @router.get(f"/{kind}/new", dependencies=owner_only, name=f"new_{kind}")
    def new_form(request: Request) -> Response:
        return _form_page(request, kind, None)

    @router.get(f"/{kind}/{{item_id:id}}", dependencies=owner_only, name=f"edit_{kind}")
    def edit_form(request: Request, item_id: int) -> Response:
        with api.session_for(request) as session:
            item = ops["get"](session, item_id)
        return _form_page(request, kind, item)

    async def save(request: Request, item_id: int | None) -> Response:
        form = await request.form()

        def write() -> None:
            data = ops["form"](form)
            with api.session_for(request) as session:
                if item_id is None:
                    ops["create"](session, data)
                else:
                    ops["update"](session, item_id, data)

        try:
            await run_in_threadpool(write)
        except HTTPException as exc:
            if exc.status_code == 404:
                raise
            error, status_code = str(exc.detail), exc.status_code
        except manage.Invalid as exc:
            error, status_code = str(exc), 422
        else:
            return see_other(f"/{kind}")
        return await run_in_threadpool(_form_page, request, kind, _echo(kind, form, item_id), error,
                                       status_code)

    @router.post(f"/{kind}", dependencies=owner_only, name=f"create_{kind}")
    async def create(request: Request) -> Response:
        return await save(request, None)

    @router.post(f"/{kind}/{{item_id:id}}", dependencies=owner_only, name=f"update_{kind}")
    async def update(request: Request, item_id: int) -> Response:
        return await save(request, item_id)

    @router.post(f"/{kind}/{{item_id:id}}/delete", dependencies=owner_only, name=f"delete_{kind}")
    def delete(request: Request, item_id: int) -> Response:
        with api.session_for(request) as session:
            ops["delete"](session, item_id)
        return see_other(f"/{kind}")


_edit_routes("contacts")
_edit_routes("profiles")


# --------------------------------------------------------------------------- status


@router.post("/do-not-disturb", dependencies=owner_only)
async def set_dnd(request: Request) -> Response:
    """Turn do-not-disturb on or off: nobody is put through to the owner's phone while it is on."""
    form = await request.form()
    on = _field(form, "on") == "1"
    await run_in_threadpool(set_do_not_disturb, api.context(request).config, on)
    return see_other(safe_next(_field(form, "back"), "/status"))


@router.get("/status", dependencies=owner_only)
def status_page(request: Request) -> Response:
    ctx = api.context(request)
    database = api.database_health(ctx)
    status = api.serve_status(ctx)
    counts: dict[str, Any] = {}
    failed: list[dict[str, Any]] = []
    if database["ok"]:
        with api.session_for(request) as session:
            counts = queries.counts(session)
            failed = queries.failed_deliveries(session)
    serve = {k: v for k, v in status.items() if k not in ("sip", "models")}
    owner = ctx.config.owner
    ring = {"phone": bool(owner.phone), "do_not_disturb": do_not_disturb(ctx.config),
            "quiet_hours": ", ".join(owner.quiet_hours)}
    return render(request, "status.html", {"ring": ring,
        "healthy": api.healthy(database, status), "database": database, "sip": status.get("sip"),
        "models": status.get("models"), "serve": serve, "counts": counts, "failed": failed})
