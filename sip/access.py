"""Who may call (allow_from) and who is calling (the From header's user part). Pure, no pjsua2."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable
from urllib.parse import unquote

from sip.options import SipOptions, parse_allow_entry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Direct mode without allow_from: the machine itself and the LAN.
LAN = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
       "fc00::/7", "fe80::/10")


def resolve(name: str) -> set[IPAddress]:
    """The addresses a host name resolves to (blocking: call it off the SIP thread)."""
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_UDP)
    return {_plain(ipaddress.ip_address(info[4][0].split("%", 1)[0])) for info in infos}


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
    """The user part of a From header or URI ('"Bob" <sip:+3902123@trunk;user=phone>;tag=x' ->
    '+3902123'; 'tel:+3902123' -> '+3902123'); '' when there is none."""
    text = from_uri.strip()
    m = re.search(r"<([^>]*)>", text)
    uri = (m.group(1) if m else text.split(";", 1)[0]).strip()
    m = re.match(r"(?i)(sips?|tel):(.*)$", uri)
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
