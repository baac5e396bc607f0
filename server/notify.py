"""Telling the owner: each message to each notification channel, through apprise, at least once.

A channel is one apprise URL, from `[notify] urls`, the environment (`STANDIN_NOTIFY_URLS`, comma- or
newline-separated) and the lines of `[notify] urls_file`. A URL holds the channel's secrets, so it is
never stored or logged: a delivery names its channel by a hash of the URL, and shows a label with the
secrets masked. apprise's own log lines (which may quote URLs) are kept out of the logs; a failure is
recorded with every part of its URL masked.

`Outbox.enqueue` adds one delivery per channel to a message in the caller's transaction, so a message
committed is a message that will be sent. The worker claims due deliveries ("sending", with `due_at`
moved to the end of a lease), sends them in worker threads with a timeout, and marks each sent, or
pending again with an exponential backoff (`first_retry_s` doubling up to `max_retry_s`), or failed
after `max_attempts`. A claim whose lease runs out (its process died mid-send) is taken again, by this
node's next start or any other node: delivery is at least once, and a channel may rarely see a message
twice, never none.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import apprise
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.config import NotifyConfig
from server.core.screening import is_screened
from server.store.db import Database
from server.store.schema import Call, Delivery, Message, utcnow

log = logging.getLogger(__name__)

ENV = "STANDIN_NOTIFY_URLS"
LEASE_MARGIN_S = 30.0  # a claim outlives the send's timeout by this much before another may take it
MASK = "****"
_PUBLIC_HOST = re.compile(r"(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?")


class NotifyError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Channel:
    id: str  # sha256 of the URL
    label: str  # the URL with its secrets masked
    url: str = field(repr=False)


def channel(url: str) -> Channel:
    url = url.strip()
    digest = hashlib.sha256(url.encode()).hexdigest()
    return Channel(digest, mask_url(url, digest), url)


def mask_url(url: str, digest: str = "") -> str:
    """`scheme://host/…`: the host only when it is a public name or an address, the rest masked."""
    scheme, sep, rest = url.strip().partition("://")
    shown = MASK
    if sep:
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        _, at, host = authority.rpartition("@")
        if not _PUBLIC_HOST.fullmatch(host):
            host = MASK
        path = "/…" if rest[len(authority):] else ""
        shown = f"{scheme[:20]}://{MASK + '@' if at else ''}{host[:100]}{path}"
    return f"{shown} #{digest[:6]}" if digest else shown


def configured_channels(config: NotifyConfig, environ: Mapping[str, str] | None = None) -> list[Channel]:
    """Every configured channel, once each. An URL apprise cannot use is a NotifyError saying where."""
    environ = os.environ if environ is None else environ
    found: list[tuple[str, str]] = [(url, "[notify] urls") for url in config.urls]
    found += [(url, ENV) for url in re.split(r"[,\n]", environ.get(ENV, ""))]
    if config.urls_file:
        path = Path(config.urls_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise NotifyError(f"cannot read [notify] urls_file {path}: {exc.strerror or exc}") from None
        found += [(line, f"{path} line {n}") for n, line in enumerate(lines, 1)
                  if not line.strip().startswith("#")]
    result: dict[str, Channel] = {}
    for url, where in found:
        if not url.strip():
            continue
        ch = channel(url)
        if _plugin(ch.url) is None:
            raise NotifyError(f"{where}: {ch.label} is not a notification URL apprise knows; see "
                              "https://github.com/caronc/apprise/wiki for the URL of each service")
        result.setdefault(ch.id, ch)
    return list(result.values())


def render(message: Message) -> tuple[str, str, apprise.NotifyType]:
    """The title, body and apprise type of the notification for `message`."""
    number = message.callback_number or (message.call.caller_number if message.call else "")
    caller = message.caller_name.strip() or number or "an unknown caller"
    urgent = message.urgency == "high"
    title = f"{'URGENT: ' if urgent else ''}Call from {caller}"
    lines = [message.text.strip() or "(no message was left)", ""]
    if number:
        lines.append(f"Call back: {number}")
    lines.append(f"Called: {message.created_at.astimezone():%Y-%m-%d %H:%M}")
    return title, "\n".join(lines), apprise.NotifyType.WARNING if urgent else apprise.NotifyType.INFO


def backoff_s(config: NotifyConfig, attempts: int) -> float:
    """How long after its `attempts`-th failure a delivery is tried again."""
    return min(config.first_retry_s * 2.0 ** min(max(attempts - 1, 0), 60), config.max_retry_s)


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    label: str
    ok: bool
    error: str = ""


def send_test(urls: Sequence[str | Channel], timeout_s: float = 30.0) -> list[ChannelCheck]:
    """Send a test notification to each URL or channel (for `standin doctor`); blocking."""
    checks = []
    for url in urls:
        ch = url if isinstance(url, Channel) else channel(url)
        result: list[str | None] = []

        def attempt(ch: Channel = ch, result: list[str | None] = result) -> None:
            result.append(_send(ch, "standin test", "This is a test notification from standin.",
                                apprise.NotifyType.INFO))

        worker = threading.Thread(target=attempt, name="notify-test", daemon=True)
        worker.start()
        worker.join(timeout_s)
        error = result[0] if result else f"no answer within {timeout_s:g} s"
        checks.append(ChannelCheck(ch.label, error is None, error or ""))
    return checks


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: int
    attempts: int
    channel: Channel
    title: str
    body: str
    kind: apprise.NotifyType


class Outbox:
    """The deliveries of messages to channels, and the worker that sends them."""

    def __init__(self, db: Database, config: NotifyConfig, *, channels: Sequence[Channel] | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], datetime] = utcnow,
                 timeout_s: float = 30.0, poll_s: float = 60.0, batch: int = 4) -> None:
        self.db = db
        self.config = config
        self.channels = list(channels) if channels is not None else configured_channels(config, environ)
        self.clock = clock
        self.timeout_s = timeout_s
        self.poll_s = poll_s  # looks for work this often anyway (other nodes, expired claims)
        self.batch = batch
        self._by_id = {c.id: c for c in self.channels}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def enqueue(self, session: Session, message: Message) -> list[Delivery]:
        """One pending delivery of `message` per channel, in `session`'s transaction; call `wake()`
        once it has committed. Channels that already have one are left alone. The message of a screened
        call, or of a call the owner took themselves, gets none unless `[notify] screened` / `taken` asks
        for them: it stays on the dashboard."""
        if message.id is None:
            session.flush()
        reason, ring = session.execute(select(Call.ended_reason, Call.ring_through)
                                       .where(Call.id == message.call_id)).one_or_none() or (None, None)
        if is_screened(reason) and not self.config.screened:
            return []
        if (ring or {}).get("outcome") == "accepted" and not self.config.taken:
            return []
        have = set(session.scalars(select(Delivery.channel).where(Delivery.message_id == message.id)))
        now = self.clock()
        added = [Delivery(message_id=message.id, channel=c.id, label=c.label, state="pending", attempts=0,
                          due_at=now, last_error="") for c in self.channels if c.id not in have]
        session.add_all(added)
        session.flush()
        return added

    def wake(self) -> None:
        """Look for due deliveries now. Safe to call from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        if self._task is not None:
            return
        if not self.channels:
            log.warning("no notification channels are configured: messages are kept for the dashboard only")
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="notify-outbox")

    async def stop(self) -> None:
        """Stop after the sends under way (each ends within `timeout_s`)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(task, self.timeout_s + 5)
        except TimeoutError:
            log.warning("the notification worker did not stop in time; unsent deliveries are retried later")

    async def run_due(self) -> float:
        """Send every delivery due now; the seconds until the next one is due (at most `poll_s`)."""
        while not self._stopping:
            jobs = await asyncio.to_thread(self._claim)
            if not jobs:
                break
            await asyncio.gather(*(self._deliver(job) for job in jobs))
        return await asyncio.to_thread(self._next_delay)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                delay = await self.run_due()
            except Exception:
                log.exception("the notification worker failed; trying again in %g s", self.poll_s)
                delay = self.poll_s
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _claim(self) -> list[_Job]:
        now = self.clock()
        jobs: list[_Job] = []
        with self.db.session() as session:
            self._reclaim(session, now)
            due = session.scalars(
                select(Delivery.id).where(Delivery.state == "pending", Delivery.due_at <= now)
                .order_by(Delivery.due_at, Delivery.id).limit(self.batch)
                .with_for_update(skip_locked=True)).all()  # not what another node is claiming
            lease = now + timedelta(seconds=self.timeout_s + LEASE_MARGIN_S)
            for delivery_id in due:
                claimed = session.execute(
                    update(Delivery).where(Delivery.id == delivery_id, Delivery.state == "pending")
                    .values(state="sending", attempts=Delivery.attempts + 1, due_at=lease))
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue  # another node took it first
                delivery = session.get(Delivery, delivery_id, populate_existing=True)
                assert delivery is not None
                ch = self._by_id.get(delivery.channel)
                if ch is None:
                    delivery.state, delivery.last_error = "failed", "its channel is no longer configured"
                    log.warning("delivery %d: its channel %s is no longer configured", delivery.id,
                                delivery.label)
                    continue
                title, body, kind = render(delivery.message)
                jobs.append(_Job(delivery.id, delivery.attempts, ch, title, body, kind))
        return jobs

    def _reclaim(self, session: Session, now: datetime) -> None:
        """Claims whose lease ran out (their process died mid-send) are due again, or failed."""
        # Locked, so that a claim another node is making (it reclaims and claims in one transaction) is
        # skipped rather than reset to pending under it and sent twice. SQLite has no row locks (and no
        # FOR UPDATE): there one writer at a time does the same.
        stale = session.scalars(
            select(Delivery).where(Delivery.state == "sending", Delivery.due_at <= now)
            .with_for_update(skip_locked=True)).all()
        for delivery in stale:
            log.warning("delivery %d to %s was being sent by a process that stopped; it is sent again",
                        delivery.id, delivery.label)
            if delivery.attempts >= self.config.max_attempts:
                delivery.state = "failed"
                delivery.last_error = delivery.last_error or "the process sending it stopped"
            else:
                delivery.state, delivery.due_at = "pending", now

    async def _deliver(self, job: _Job) -> None:
        try:
            error = await asyncio.wait_for(
                asyncio.to_thread(_send, job.channel, job.title, job.body, job.kind), self.timeout_s)
        except TimeoutError:
            error = f"no answer within {self.timeout_s:g} s"
        await asyncio.to_thread(self._finish, job, error)

    def _finish(self, job: _Job, error: str | None) -> None:
        now = self.clock()
        with self.db.session() as session:
            delivery = session.get(Delivery, job.delivery_id)
            if delivery is None:
                return  # its message was deleted meanwhile
            if error is None:
                delivery.state, delivery.sent_at, delivery.last_error = "sent", now, ""
                log.info("delivery %d to %s sent (attempt %d)", delivery.id, delivery.label, job.attempts)
                return
            if (delivery.state, delivery.attempts) != ("sending", job.attempts):
                return  # the claim ran out and the delivery is someone else's now
            delivery.last_error = error[:2000]
            if job.attempts >= self.config.max_attempts:
                delivery.state = "failed"
                # The channel's answer may quote the message, so it is kept on the delivery (shown to the
                # owner on the dashboard), never in the log.
                log.warning("delivery %d to %s failed for good after %d attempts", delivery.id,
                            delivery.label, job.attempts)
                return
            delay = backoff_s(self.config, job.attempts)
            delivery.state, delivery.due_at = "pending", now + timedelta(seconds=delay)
            log.warning("delivery %d to %s failed (attempt %d), retrying in %g s", delivery.id,
                        delivery.label, job.attempts, delay)

    def _next_delay(self) -> float:
        with self.db.session() as session:
            due = session.scalar(select(func.min(Delivery.due_at))
                                 .where(Delivery.state.in_(("pending", "sending"))))
        if due is None:
            return self.poll_s
        return min(max((due - self.clock()).total_seconds(), 0.0), self.poll_s)


# --------------------------------------------------------------------------- apprise, kept quiet


class _AppriseLog(logging.Handler):
    """apprise's warnings, per sending thread, to explain a failure; nothing reaches the logs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: dict[int, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.lines.get(record.thread or 0)
        if lines is not None:
            with contextlib.suppress(Exception):
                lines.append(record.getMessage())


_APPRISE_LOG = _AppriseLog()


def _quiet_apprise() -> None:
    logger = logging.getLogger("apprise")
    if _APPRISE_LOG not in logger.handlers:
        logger.addHandler(_APPRISE_LOG)
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        logging.getLogger("urllib3").setLevel(logging.WARNING)  # its debug lines quote request paths


def _plugin(url: str) -> object | None:
    _quiet_apprise()
    return apprise.Apprise.instantiate(url)


def _send(ch: Channel, title: str, body: str, kind: apprise.NotifyType) -> str | None:
    """None once `ch` took the notification, else why not (masked). Blocking."""
    _quiet_apprise()
    me = threading.get_ident()
    _APPRISE_LOG.lines[me] = lines = []
    try:
        notifier = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        if not notifier.add(ch.url):
            return "apprise does not understand this URL"
        result = notifier.notify(body=body, title=title, notify_type=kind)
        if result:
            return None
        logs = getattr(result, "logs", None)  # apprise >= 2 keeps each call's log lines with its result
        if callable(logs):
            lines = [entry.message for entry in logs()]
        return scrub(ch.url, "; ".join(dict.fromkeys(lines)) or "the service refused the notification")
    except Exception as exc:
        return scrub(ch.url, f"{type(exc).__name__}: {exc}")
    finally:
        _APPRISE_LOG.lines.pop(me, None)


def scrub(url: str, text: str) -> str:
    """`text` with every part of `url` that may be a secret masked (user, password, tokens, path, query)."""
    rest = url.partition("://")[2]
    parts = {url, rest, *re.split(r"[/@?&#=:,]+", rest)}
    parts = {p for p in parts if len(p) >= 4 and not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", p)}
    for part in sorted(parts | {quote(p, safe="") for p in parts} | {unquote(p) for p in parts},
                       key=len, reverse=True):
        if len(part) >= 4:
            text = text.replace(part, MASK)
    return text
