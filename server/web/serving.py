"""The dashboard inside `standin serve`: uvicorn on the loop that runs the calls.

The browser test call's websocket hands its audio to a call on this same loop, so the web server cannot
live in a thread or a process of its own. The listening socket is bound before anything starts, so a
port in use is one clear error instead of uvicorn exiting the process from a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn

from server.config import Config, ConfigError
from server.store.db import Database
from sip.options import SipConfigError, split_host_port

log = logging.getLogger(__name__)


def bind(listen: str, source: str = "config") -> socket.socket:
    try:  # parsed as [sip] listen is (and as `standin doctor` reads this one)
        host, port = split_host_port(listen, "listen")
    except SipConfigError:
        raise ConfigError(f"{source}: [web] listen must be host:port (\"127.0.0.1:8080\", or "
                          f"\"[::1]:8080\"), not {listen!r}") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{source}: cannot listen on [web] listen = {listen!r}: "
                          f"{exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def dashboard(config: Config, db: Database, *, status: Callable[[], dict[str, Any]],
                    start_browser_call: Callable[[Any], Awaitable[dict[str, Any]]] | None
                    ) -> AsyncIterator[str | None]:
    """Serve the dashboard and API on `[web] listen` while the block runs; yields the address it
    listens on (None when `[web] listen` is empty)."""
    if not config.web.listen:
        yield None
        return
    from server.web.app import create_app
    from server.web.context import WebContext

    sock = bind(config.web.listen, config.source)
    app = create_app(WebContext(config, db, status=status, start_browser_call=start_browser_call))
    # No proxy headers: behind no proxy, X-Forwarded-For from a local user would dodge the login limit.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           proxy_headers=False))
    # In the main thread uvicorn takes SIGINT/SIGTERM while it runs and raises them again once it has
    # stopped, so the service's own handlers (installed first) still see them.
    task = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard")
    host, port = sock.getsockname()[:2]
    address = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    try:
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn offers only a flag
            await asyncio.sleep(0.02)
        if task.done():
            task.result()
            raise RuntimeError("the dashboard stopped as it started")
        # What is alive now lives for the whole service; a full collection walking it took ~60 ms of a
        # dashboard request (benchmarks/dashboard.py --no-freeze).
        gc.collect()
        gc.freeze()
        log.info("dashboard on %s", address)
        yield address
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        sock.close()
