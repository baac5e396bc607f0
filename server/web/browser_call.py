"""The browser test call: GET /call (the page) and the websocket /ws/call (the call's audio).

The page streams the owner's microphone into a normal call (server/web/ws_transport.py has the
protocol) and plays the bot back, so the owner can try standin without a phone. The call runs through
`WebContext.start_browser_call`, which `standin serve` wires to the same code that answers SIP calls:
it is stored, summarised and passed on like any other. One test call at a time.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import HTMLResponse
from starlette.websockets import WebSocketDisconnect

from server.web.auth import SignedIn, require_owner, require_owner_ws
from server.web.ws_transport import CLOSE_ERROR, CLOSE_TRY_LATER, ProtocolError, WebSocketCall
from sip.media import FRAME, RATE

log = logging.getLogger(__name__)

router = APIRouter()


def _context(request: Request | WebSocket) -> Any:
    return request.app.state.standin


@router.get("/call", response_class=HTMLResponse)
async def call_page(request: Request, owner: Annotated[SignedIn, Depends(require_owner)]) -> HTMLResponse:
    from server.web.pages import render

    available = _context(request).start_browser_call is not None
    return render(request, "call.html", {"available": available, "rate": RATE, "frame": FRAME})


@router.websocket("/ws/call")
async def call_socket(websocket: WebSocket,
                      owner: Annotated[SignedIn, Depends(require_owner_ws)]) -> None:
    start_call = _context(websocket).start_browser_call
    await websocket.accept()
    if start_call is None:
        await websocket.close(CLOSE_TRY_LATER, "test calls need standin serve")
        return
    state = websocket.app.state
    if getattr(state, "browser_call_busy", False):
        await websocket.close(CLOSE_TRY_LATER, "another test call is running")
        return
    state.browser_call_busy = True
    call = WebSocketCall(websocket)
    try:
        try:
            await call.handshake()
        except ProtocolError as exc:
            await call.close(exc.code, exc.reason)
            return
        except WebSocketDisconnect:
            return
        call.start()
        log.info("%s: browser test call from %s", call.call_id, call.remote_address)
        try:
            summary = await start_call(call)
        except Exception as exc:  # answer() logged it; its text may quote the caller
            log.error("%s: the browser test call failed (%s)", call.call_id, type(exc).__name__)
            call.fail(CLOSE_ERROR, "the call failed on the server")
            await call.finish({"type": "error", "message": "the call failed on the server; see its log"})
            return
        await call.finish(_ended(call, summary))
        log.info("%s: browser test call ended (%s); %d frames in, %d dropped, %d out, %d dropped",
                 call.call_id, call.end_reason, call.frames_in, call.frames_dropped, call.frames_out,
                 call.frames_out_dropped)
    finally:
        call.abort()
        state.browser_call_busy = False


def _ended(call: WebSocketCall, summary: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "ended", "reason": call.end_reason, "call_id": call.call_id}
    if isinstance(summary, dict):
        for key in ("id", "url", "duration_s"):
            if isinstance(summary.get(key), int | float | str):
                message[key] = summary[key]
    return message
