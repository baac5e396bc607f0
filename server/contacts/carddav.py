"""Contacts from a CardDAV address book (`[contacts] carddav_url`), imported like the vCard file.

Every vCard of the one address book collection is fetched (RFC 6352): a PROPFIND first makes sure the
URL is an address book, then a REPORT addressbook-query asks for every card's data; a server that
refuses the query (or answers it with no cards at all) is asked again the long way: a PROPFIND lists the
cards, a REPORT addressbook-multiget fetches them. The cards then go to the vCard import
(server/contacts/vcard.py) as contacts of source "carddav": updated in place by UID, removed when they
leave the address book, with the file's contacts and those entered by hand left alone.

The password comes from the environment variable `carddav_password_env` or the file
`carddav_password_file`, never from the configuration itself, and is sent as HTTP basic auth; it is never
logged, and no message here holds it or any contact's data. Errors (`CarddavError`) name the URL and
the HTTP status. A fetch that fails changes nothing.

The server's XML is parsed with defusedxml when it is installed; without it, with the standard library's
ElementTree, which is safe here too: its expat parser never fetches external entities (no XXE: one is
an "undefined entity" error), and expat 2.4.1 and later, which current Pythons bundle, caps entity
expansion ("billion laughs"; `pyexpat.EXPAT_VERSION` says which one a Python linked to its system's has).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from server.config import Config, ContactsConfig
from server.contacts.vcard import ImportSummary, VcardError, import_vcard_text
from server.store.db import Database

log = logging.getLogger(__name__)

SOURCE = "carddav"  # Contact.source of the address book's contacts
TIMEOUT_S = 30.0
_DAV = "{DAV:}"
_CARD = "{urn:ietf:params:xml:ns:carddav}"
_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
_QUERY = _HEAD + """<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><C:address-data/></D:prop>
  <C:filter test="allof"/>
</C:addressbook-query>"""  # no conditions, all of which every card meets
_PROPFIND = _HEAD + """<D:propfind xmlns:D="DAV:">
  <D:prop><D:resourcetype/><D:getcontenttype/><D:getetag/></D:prop>
</D:propfind>"""
_REFUSED = {400, 403, 405, 415, 422, 501}  # a REPORT a server does not do
_BATCH = 100  # cards per addressbook-multiget
Sleep = Callable[[float], Awaitable[object]]


class CarddavError(VcardError):
    """The address book as a whole cannot be fetched: unreachable, refused, or not an address book."""


def fetch_address_book(contacts: ContactsConfig, *, timeout_s: float = TIMEOUT_S) -> dict[str, str]:
    """Every card of `[contacts] carddav_url`: its vCard text by its href. Blocking."""
    url = _checked_url(contacts.carddav_url)
    auth = password_auth(contacts)
    host = urlsplit(url).hostname
    if auth is not None and url.startswith("http:") and host not in ("localhost", "127.0.0.1", "::1"):
        log.warning("the CardDAV password goes to %s unencrypted (http://); use https://", host)
    with httpx.Client(auth=auth, timeout=timeout_s, follow_redirects=True,
                      headers={"User-Agent": "standin"}) as client:
        book = _Book(client, url, timeout_s)
        book.check()
        cards = book.query()
        if not cards:  # refused, or an empty answer to a query some servers read as "no card matches"
            cards = book.multiget(book.hrefs())
    return cards


def address_book_text(cards: dict[str, str]) -> str:
    """The cards one after the other, in the order of their hrefs (the earlier card keeps a number two
    cards share, so the same one does every time)."""
    return "".join(cards[href].strip() + "\r\n" for href in sorted(cards))


def import_carddav(db: Database, contacts: ContactsConfig, *, timeout_s: float = TIMEOUT_S) -> ImportSummary:
    """Fetch the address book and import it; raises CarddavError (the contacts unchanged) when the
    fetch fails."""
    return store_address_book(db, contacts.carddav_url, fetch_address_book(contacts, timeout_s=timeout_s))


def store_address_book(db: Database, url: str, cards: dict[str, str]) -> ImportSummary:
    with db.session() as session:
        summary = import_vcard_text(session, address_book_text(cards), source=SOURCE)
    log.info("CardDAV import from %s: %d cards; %d added, %d updated, %d unchanged, %d removed, %d skipped",
             public_url(url), len(cards), summary.added, summary.updated, summary.unchanged, summary.removed,
             summary.skipped)
    return summary


def sync_carddav(config: Config, db: Database) -> ImportSummary | None:
    """Import `[contacts] carddav_url` when one is configured."""
    return import_carddav(db, config.contacts) if config.contacts.carddav_url else None


@contextlib.asynccontextmanager
async def carddav_refreshing(config: Config, db: Database, *,
                             sleep: Sleep = asyncio.sleep) -> AsyncIterator[None]:
    """While the block runs, with `[contacts] carddav_url` set: import the address book now and every
    `carddav_refresh_min` minutes after (at most once a minute; only at the start when it is 0 or less),
    in the background. See `refresh_once` for a failure."""
    if not config.contacts.carddav_url:
        yield
        return
    task = asyncio.create_task(_keep_fresh(config, db, sleep), name="carddav-refresh")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _keep_fresh(config: Config, db: Database, sleep: Sleep) -> None:
    every_s = max(config.contacts.carddav_refresh_min, 1) * 60  # not more often than once a minute
    while True:
        await refresh_once(config, db)
        if config.contacts.carddav_refresh_min <= 0:
            return
        await sleep(every_s)


async def refresh_once(config: Config, db: Database) -> ImportSummary | None:
    """One background import. A failure is logged (the URL and why, no contact's data) and keeps the
    contacts as they were; returns None then."""
    url = public_url(config.contacts.carddav_url)
    try:
        # the fetch touches no database: when cancelled, its thread is left to end on its own
        cards = await asyncio.to_thread(fetch_address_book, config.contacts)
        job = asyncio.ensure_future(asyncio.to_thread(store_address_book, db, config.contacts.carddav_url,
                                                      cards))
        try:
            summary = await asyncio.shield(job)
        except asyncio.CancelledError:
            await asyncio.wait([job])  # the import commits or rolls back before the database may close
            raise
    except CarddavError as exc:
        log.warning("%s; the contacts from the last CardDAV import stay", exc)
        return None
    except Exception as exc:  # the database's messages can quote the contacts: only the kind of error
        log.error("the CardDAV import from %s failed (%s); the contacts from the last import stay",
                  url, type(exc).__name__)
        return None
    if summary.problems:
        log.warning("CardDAV import from %s: %d problems with cards; `standin contacts import --carddav` "
                    "lists them", url, len(summary.problems))
    return summary


def password_auth(contacts: ContactsConfig) -> httpx.BasicAuth | None:
    """Basic auth from `carddav_username` and the password from the environment or the file; None
    (no auth) when none of them is set."""
    user, env, file = contacts.carddav_username, contacts.carddav_password_env, contacts.carddav_password_file
    if env and os.environ.get(env):
        password = os.environ[env]
    elif file:
        path = Path(file).expanduser()
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise CarddavError(f"cannot read the CardDAV password file {path} ([contacts] "
                               f"carddav_password_file): {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise CarddavError(f"the CardDAV password file {path} is not UTF-8 text") from None
        if not password:
            raise CarddavError(f"the CardDAV password file {path} is empty")
    elif env:
        raise CarddavError(f"the environment variable {env} ([contacts] carddav_password_env) is not set")
    elif user:
        raise CarddavError("[contacts] carddav_username is set but not where its password is: set "
                           "carddav_password_env or carddav_password_file")
    else:
        return None
    if not user:
        raise CarddavError("a CardDAV password is set but not [contacts] carddav_username")
    return httpx.BasicAuth(user, password)


def public_url(url: str) -> str:
    """`url` as messages may show it: without any user name or password in it."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _checked_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.username is not None or parts.password is not None:
        raise CarddavError("[contacts] carddav_url must hold no user name or password: put the user "
                           "name in carddav_username, the password in carddav_password_env or "
                           "carddav_password_file")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CarddavError(f"[contacts] carddav_url must be an http:// or https:// URL, not {url!r}")
    return url.strip()


class _Book:
    """One address book collection on its server."""

    def __init__(self, client: httpx.Client, url: str, timeout_s: float) -> None:
        self.client, self.url, self.timeout_s = client, url, timeout_s
        self.public = public_url(url)
        self.truncated = False  # a multistatus said 507: more results than the server would send

    def check(self) -> None:
        """Raise unless the URL is an address book (a principal's or home collection is not)."""
        response = self._send("PROPFIND", self.url, _PROPFIND, "0")
        self._status(response)
        entries = self._entries(response)
        kinds = _kinds(entries[0][1]) if entries else set()
        if f"{_CARD}addressbook" in kinds:
            return
        why = f"{self.public} is not a CardDAV address book"
        if f"{_DAV}collection" in kinds:
            inside = self._entries(self._checked(self._send("PROPFIND", self.url, _PROPFIND, "1")))
            books = [public_url(urljoin(self.url, href)) for href, props in inside
                     if f"{_CARD}addressbook" in _kinds(props)]
            if books:
                why += f" but a collection of them ({', '.join(books)})"
        raise CarddavError(f"{why}; set [contacts] carddav_url to one address book")

    def query(self) -> dict[str, str]:
        """Every card by an addressbook-query; {} when the server refuses it."""
        response = self._send("REPORT", self.url, _QUERY, "1")
        if response.status_code in _REFUSED:
            log.info("%s refuses addressbook-query (HTTP %d); listing its cards instead", self.public,
                     response.status_code)
            return {}
        self.truncated = False
        cards = self._cards(self._checked(response))
        if self.truncated:  # RFC 6352 8.6.2: the server sent only part of the answer (a result limit)
            log.info("%s cut its answer to addressbook-query short; listing its cards instead", self.public)
            return {}
        return cards

    def hrefs(self) -> list[str]:
        """The cards the collection holds, by a PROPFIND."""
        response = self._checked(self._send("PROPFIND", self.url, _PROPFIND, "1"))
        own = unquote(urlsplit(self.url).path).rstrip("/")
        found = []
        for href, props in self._entries(response):
            kind = props.get(f"{_DAV}getcontenttype")
            ctype = (kind.text or "").lower() if kind is not None else ""
            if unquote(urlsplit(urljoin(self.url, href)).path).rstrip("/") == own or \
                    f"{_DAV}collection" in _kinds(props):
                continue
            if not ctype or "vcard" in ctype or href.lower().endswith(".vcf"):
                found.append(href)
        return found

    def multiget(self, hrefs: list[str]) -> dict[str, str]:
        cards: dict[str, str] = {}
        for start in range(0, len(hrefs), _BATCH):
            root = ET.Element(f"{_CARD}addressbook-multiget")
            prop = ET.SubElement(root, f"{_DAV}prop")
            ET.SubElement(prop, f"{_DAV}getetag")
            ET.SubElement(prop, f"{_CARD}address-data")
            for href in hrefs[start:start + _BATCH]:
                ET.SubElement(root, f"{_DAV}href").text = href
            body = _HEAD + ET.tostring(root, encoding="unicode")
            # RFC 6352 8.7 says Depth: 0 where its examples (and most clients) send 1; servers ignore it
            response = self._send("REPORT", self.url, body, "1")
            if response.status_code in _REFUSED:
                raise CarddavError(f"{self.public} refuses both addressbook-query and addressbook-multiget "
                                   f"(HTTP {response.status_code}); it does not look like a CardDAV server")
            cards.update(self._cards(self._checked(response)))
        return cards

    # ------------------------------------------------------------------ HTTP and XML

    def _send(self, method: str, url: str, body: str, depth: str) -> httpx.Response:
        try:
            return self.client.request(method, url, content=body.encode(), headers={
                "Depth": depth, "Content-Type": 'application/xml; charset="utf-8"'})
        except httpx.TimeoutException:
            raise CarddavError(f"the CardDAV server at {self.public} did not answer within "
                               f"{self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise CarddavError(f"cannot reach the CardDAV server at {self.public}: "
                               f"{exc or type(exc).__name__}") from None

    def _checked(self, response: httpx.Response) -> httpx.Response:
        self._status(response)
        return response

    def _status(self, response: httpx.Response) -> None:
        code = response.status_code
        if code == 207:
            return
        if code == 401:
            raise CarddavError(f"the CardDAV server at {self.public} refused the user name or password "
                               "(HTTP 401); check [contacts] carddav_username and the password")
        if code == 403:
            raise CarddavError(f"the CardDAV server refused access to {self.public} (HTTP 403)")
        if code == 404:
            raise CarddavError(f"there is nothing at {self.public} (HTTP 404); check [contacts] carddav_url")
        raise CarddavError(f"{self.public} answered HTTP {code} {response.reason_phrase}".rstrip()
                           + ", not a CardDAV multistatus; is it a CardDAV address book?")

    def _entries(self, response: httpx.Response) -> list[tuple[str, dict[str, ET.Element]]]:
        """Each <response> of the multistatus: its href and the properties it has (status 200)."""
        try:
            root = _xml(response.content)
        except (ET.ParseError, ValueError):  # defusedxml's refusals are ValueErrors
            raise CarddavError(f"{self.public} answered with XML that cannot be read; is it a CardDAV "
                               "address book?") from None
        if root.tag != f"{_DAV}multistatus":
            raise CarddavError(f"{self.public} answered without a DAV multistatus; is it a CardDAV address "
                               "book?")
        entries = []
        for item in root.iterfind(f"{_DAV}response"):
            href = (item.findtext(f"{_DAV}href") or "").strip()
            props: dict[str, ET.Element] = {}
            for propstat in item.iterfind(f"{_DAV}propstat"):
                if _ok(propstat.findtext(f"{_DAV}status")):
                    props.update((p.tag, p) for p in propstat.iterfind(f"{_DAV}prop/*"))
            status = item.findtext(f"{_DAV}status")
            if href and _ok(status):
                entries.append((href, props))
            self.truncated |= (status or "").split()[1:2] == ["507"]
        return entries

    def _cards(self, response: httpx.Response) -> dict[str, str]:
        cards = {}
        for href, props in self._entries(response):
            data = props.get(f"{_CARD}address-data")
            if data is not None and (data.text or "").strip():
                cards[href] = data.text or ""
        return cards


def _kinds(props: dict[str, ET.Element]) -> set[str]:
    kind = props.get(f"{_DAV}resourcetype")
    return {child.tag for child in kind} if kind is not None else set()


def _ok(status: str | None) -> bool:
    """A DAV status line ("HTTP/1.1 200 OK") says success; no status at all counts as success."""
    if status is None:
        return True
    parts = status.split()
    return len(parts) > 1 and parts[1].startswith("2")


def _xml(data: bytes) -> ET.Element:
    try:
        from defusedxml.ElementTree import fromstring
    except ImportError:  # the standard library's, safe too (see the module's docstring)
        return ET.fromstring(data)
    element: ET.Element = fromstring(data)
    return element
