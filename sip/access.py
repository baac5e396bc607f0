"""Who may call (allow_from), who is calling (the From URI, a trunk's P-Asserted-Identity) and how refusals
are logged. Pure, no pjsua2."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterable
from urllib.parse import unquote

from sip.options import SipOptions, parse_allow_entry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
log = logging.getLogger("sip.endpoint")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Direct mode without allow_from: the machine itself and the LAN.
LAN = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
       "fc00::/7", "fe80::/10")


def resolve(name: str) -> set[IPAddress]:
    """The addresses a host name resolves to (blocking: call it off the SIP thread)."""
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_UDP)
    return {_plain(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])) for info in infos}


class AllowList:
    """IP networks fixed at start, plus the addresses of host names, refreshed by `refresh()`.

    A name that stops resolving keeps its last known addresses; one that never resolved allows nothing.
    Reads (`allows`) and refreshes may come from different threads.
    """

    def __init__(self, entries: Iterable[str], resolver: Callable[[str], set[IPAddress]] = resolve) -> None:
        self.networks: list[Network] = []
        self.names: list[str] = []
        for entry in entries:
            parsed = parse_allow_entry(entry)
            if isinstance(parsed, str):
                self.names.append(parsed)
            else:
                self.networks.append(parsed)
        self._resolver = resolver
        self._by_name: dict[str, frozenset[IPAddress]] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_options(cls, options: SipOptions,
                    resolver: Callable[[str], set[IPAddress]] = resolve) -> AllowList:
        """allow_from, or the mode's default: the registrar's host (trunk) or loopback and LAN (direct)."""
        if options.allow_from:
            return cls(options.allow_from, resolver)
        if options.registrar_host is not None:
            return cls([options.registrar_host], resolver)
        return cls(LAN, resolver)

    def refresh(self) -> list[str]:
        """Resolve the host names again; returns those that failed (keeping what they had)."""
        failed = []
        for name in self.names:
            try:
                found = frozenset(self._resolver(name))
            except OSError:
                found = frozenset()
            if not found:
                failed.append(name)
                continue
            with self._lock:
                self._by_name[name] = found
        return failed

    def allows(self, address: str) -> bool:
        """`address` as pjsip reports a source: 'ip', 'ip:port' or '[v6]:port'."""
        ip = source_ip(address)
        if ip is None:
            return False
        if any(ip.version == net.version and ip in net for net in self.networks):
            return True
        with self._lock:
            return any(ip in found for found in self._by_name.values())

    def describe(self) -> str:
        with self._lock:
            resolved = {name: sorted(map(str, found)) for name, found in self._by_name.items()}
        parts = [str(n) for n in self.networks]
        parts += [f"{n} -> {resolved.get(n, 'unresolved')}" for n in self.names]
        return ", ".join(parts) or "nobody"


class RefusalTally:
    """Refusals, logged by kind: the first one of each kind in a minute at once, the rest as a count
    (a flood of them must not flood the log). Sources are logged as IP addresses only."""

    def __init__(self, window_s: float = 60.0) -> None:
        self._window_s = window_s
        self._since = 0.0
        self._counts: dict[str, int] = {}

    def note(self, what: str, source: str) -> None:
        seen = self._counts.get(what, 0)
        self._counts[what] = seen + 1
        if seen == 0:
            log.info("%s, from %s", what, source_ip(source) or "?")

    def flush(self, now: float) -> None:
        if now - self._since < self._window_s:
            return
        for what, count in self._counts.items():
            if count > 1:
                log.warning("%s: %d more in the last %.0f s", what, count - 1,
                            now - self._since if self._since else self._window_s)
        self._since, self._counts = now, {}


def source_ip(address: str) -> IPAddress | None:
    text = address.strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::\d+)?|([^:]+)(?::\d+)?|([0-9A-Fa-f:]+)", text)
    if not m:
        return None
    host = (m.group(1) or m.group(2) or m.group(3)).split("%", 1)[0]
    try:
        return _plain(ipaddress.ip_address(host))
    except ValueError:
        return None


def _plain(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def caller_number(from_uri: str) -> str:
    """The user part of a From header's URI ('"Bob" <sip:+3902123@trunk;user=phone>;tag=x' ->
    '+3902123'; 'tel:+3902123' -> '+3902123'); '' when there is none. The display name is the caller's
    to write: whatever it holds, quotes, brackets or a URI of its own, is never read as the number."""
    return uri_user(header_uri(from_uri))


def asserted_number(message: str) -> str:
    """The number a trunk asserts for the caller (P-Asserted-Identity: a tel URI first, else the first
    URI with a user part) in a whole SIP message; '' when there is none. Trust it from the trunk only."""
    users = []
    for name, value in sip_headers(message):
        if name != "p-asserted-identity":
            continue
        for part in _split_outside_quotes(value, ","):
            uri = header_uri(part)
            user = uri_user(uri)
            if user:
                users.append((not uri.lower().startswith("tel:"), user))
    return min(users, key=lambda u: u[0])[1] if users else ""


def header_uri(value: str) -> str:
    """The URI of a name-addr or addr-spec header value (From, To, P-Asserted-Identity): inside the angle
    brackets that follow the display name, or the bare URI up to its header parameters."""
    text = value.strip()
    i = 0
    if text.startswith('"'):
        i = 1
        while i < len(text) and text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        if i >= len(text):
            return ""  # the display name's quote never closes
        i += 1
    rest = text[i:]
    lt = rest.find("<")
    if lt >= 0:
        gt = rest.find(">", lt)
        return rest[lt + 1:gt].strip() if gt > lt else ""
    return "" if i else rest.split(";", 1)[0].strip()


def uri_user(uri: str) -> str:
    m = re.match(r"(?i)(sips?|tel):(.*)$", uri.strip())
    if not m:
        return ""
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "tel":
        user = rest.split(";", 1)[0]
    else:
        if "@" not in rest:
            return ""
        user = rest.rsplit("@", 1)[0].split(";", 1)[0].split(":", 1)[0]
    return unquote(user).strip()


_COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "v": "via", "l": "content-length",
            "c": "content-type"}


def sip_headers(message: str) -> list[tuple[str, str]]:
    """The headers of a whole SIP message as (lower-case full name, value), folded lines joined."""
    head = re.split(r"\r?\n\r?\n", message, maxsplit=1)[0]
    headers: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n", head)[1:]:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            headers.append((_COMPACT.get(name, name), value.strip()))
    return headers


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted, angle, escaped = False, False, False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch in "<>":
            angle = ch == "<"
        elif ch == sep and not quoted and not angle:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]
