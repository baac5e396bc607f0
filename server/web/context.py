"""What the web app needs from the process that runs it: the configuration, the database, a live status.

`standin serve` fills `status` with the SIP registration and the models' state and `start_browser_call`
with a way to run a call over a browser's websocket; a dashboard run on its own leaves the defaults.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.config import Config
from server.store.db import Database


def not_running() -> dict[str, Any]:
    return {"running": False, "detail": "not running under standin serve"}


@dataclass
class WebContext:
    """Put on `app.state.standin` by `create_app`.

    `status()` returns a JSON-able dict; the dashboard reads its "sip" and "models" entries (dicts shown
    as they are) and counts the whole as unhealthy when it, "sip" or "models" holds `"ok": False`. It must
    never hold secrets: it is shown to the owner and summarised by /api/health. It is called on the event
    loop and on worker threads, so it must be quick and only read state.
    """

    config: Config
    db: Database
    status: Callable[[], dict[str, Any]] = not_running
    start_browser_call: Callable[[Any], Awaitable[dict[str, Any]]] | None = None
