"""What the firewall lets in, for `standin doctor`.

The firewall is read from `nft -j list ruleset`. For one protocol and port, each base chain on the input
hook is walked the way the kernel walks it for a new connection: rules that cannot match (another port,
loopback only, established traffic only) are passed over, an accept or drop that matches every source
ends the walk, an accept limited to sources is noted, a jump walks the target chain; at the end the chain's
policy decides. A packet must get through every input chain, so the most restrictive one counts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class FirewallUnreadable(RuntimeError):
    pass


def read_ruleset(timeout_s: float = 5.0) -> dict[str, Any]:
    """`nft -j list ruleset`, parsed. Raises FirewallUnreadable with the reason."""
    nft = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)),
                                      None)
    if nft is None:
        raise FirewallUnreadable("nft is not installed")
    try:
        done = subprocess.run([nft, "-j", "list", "ruleset"], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallUnreadable(f"nft did not answer: {exc}") from exc
    if done.returncode != 0:
        raise FirewallUnreadable((done.stderr.strip().splitlines() or ["nft failed"])[-1])
    try:
        data = json.loads(done.stdout)
    except ValueError as exc:
        raise FirewallUnreadable(f"nft's JSON could not be read: {exc}") from exc
    if not isinstance(data, dict):
        raise FirewallUnreadable("nft's JSON is not an object")
    return data


@dataclass(frozen=True, slots=True)
class Source:
    """A condition on the sender: `ip saddr { ... }`, `iifname "eth0"`, or one doctor cannot read."""

    kind: str  # "ip", "ip6", "iface", "other"
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a chain does with new traffic to one port: open to everyone (`any`), or to those that meet
    one of `openings` (each a list of conditions, all needed), closed when there is neither."""

    any: bool
    openings: tuple[tuple[Source, ...], ...] = ()
    chain: str = ""

    @property
    def closed(self) -> bool:
        return not self.any and not self.openings

    def key(self) -> tuple[Any, ...]:
        return (self.any, tuple(tuple(s.text for s in o) for o in self.openings), self.chain)

    def describe(self) -> str:
        if self.any:
            return "open to every address"
        if self.closed:
            return f"dropped by {self.chain}"
        return "open to " + "; or ".join(" and ".join(s.text for s in o) for o in self.openings)


@dataclass
class Ruleset:
    chains: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    rules: dict[tuple[str, str, str], list[list[dict[str, Any]]]] = field(default_factory=dict)
    sets: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Ruleset:
        rs = cls()
        for item in data.get("nftables", []):
            if not isinstance(item, dict):
                continue
            if "chain" in item:
                c = item["chain"]
                key = (c["family"], c["table"], c["name"])
                rs.chains[key] = c
                rs.rules.setdefault(key, [])
            elif "rule" in item:
                r = item["rule"]
                rs.rules.setdefault((r["family"], r["table"], r["chain"]), []).append(r.get("expr", []))
            elif "set" in item:
                s = item["set"]
                elem = s.get("elem", [])
                rs.sets[(s["family"], s["table"], s["name"])] = elem if isinstance(elem, list) else [elem]
        return rs

    def input_chains(self) -> list[tuple[str, str, str]]:
        return [k for k, c in self.chains.items()
                if c.get("hook") == "input" and c.get("type", "filter") == "filter"]

    def verdict(self, proto: str, port: int) -> Verdict:
        """The most restrictive input chain's verdict on new `proto` traffic to `port`."""
        worst: Verdict | None = None
        for key in self.input_chains():
            v = self._walk_base(key, proto, port)
            if worst is None or _rank(v) < _rank(worst):
                worst = v
        return worst if worst is not None else Verdict(any=True, chain="no input chain")

    def _walk_base(self, key: tuple[str, str, str], proto: str, port: int) -> Verdict:
        name = f"{key[0]} {key[1]} {key[2]}"
        openings: list[tuple[Source, ...]] = []
        ended = self._walk(key, proto, port, outer=(), openings=openings, depth=0)
        if ended == "accept":
            return Verdict(any=True, chain=name)
        if ended == "drop" or self.chains[key].get("policy", "accept") != "accept":
            return Verdict(any=False, openings=tuple(openings), chain=name)
        return Verdict(any=True, chain=name)

    def _walk(self, key: tuple[str, str, str], proto: str, port: int, *, outer: tuple[Source, ...],
              openings: list[tuple[Source, ...]], depth: int) -> str | None:
        """Walk one chain; 'accept' or 'drop' when a rule decides for every source, else None."""
        if depth > 8:
            return None
        for expr in self.rules.get(key, []):
            rule = _read_rule(expr, proto, port, key[1], self)
            if rule is None:
                continue
            conditions = outer + rule.sources
            if rule.verdict == "accept":
                if not conditions:
                    return "accept"
                openings.append(conditions)
            elif rule.verdict == "drop" and not conditions:
                return "drop"
            elif rule.verdict in ("jump", "goto") and rule.target:
                target = (key[0], key[1], rule.target)
                ended = self._walk(target, proto, port, outer=conditions, openings=openings, depth=depth + 1)
                if ended is not None and not conditions:
                    return ended
                if rule.verdict == "goto" and not conditions:
                    return None
        return None


def _rank(v: Verdict) -> int:
    return 0 if v.closed else 2 if v.any else 1


@dataclass(frozen=True, slots=True)
class _Rule:
    sources: tuple[Source, ...]
    verdict: str | None
    target: str | None = None


_FAMILY_PROTOCOLS = {"ip", "ip6"}


def _read_rule(expr: list[dict[str, Any]], proto: str, port: int, table: str,
               rs: Ruleset) -> _Rule | None:
    """The rule as it bears on new `proto` traffic to `port`; None when it cannot match that traffic."""
    sources: list[Source] = []
    verdict: str | None = None
    target: str | None = None
    for e in expr:
        if "match" in e:
            outcome = _read_match(e["match"], proto, port, table, rs)
            if outcome is False:
                return None
            if isinstance(outcome, Source):
                sources.append(outcome)
        elif "accept" in e:
            verdict = "accept"
        elif "drop" in e or "reject" in e:
            verdict = "drop"
        elif "jump" in e or "goto" in e:
            verdict = "jump" if "jump" in e else "goto"
            target = (e.get("jump") or e.get("goto") or {}).get("target")
        elif "limit" in e:
            sources.append(Source("other", e["limit"], "a rate limit"))
    return _Rule(tuple(sources), verdict, target)


def _read_match(match: Mapping[str, Any], proto: str, port: int, table: str,
                rs: Ruleset) -> bool | Source | None:
    """False: cannot match this traffic; True/None: no bearing on it; a Source: limits who may send."""
    left, right = match.get("left"), match.get("right")
    if not isinstance(left, dict):
        return Source("other", left, "a condition doctor cannot read")
    negate = str(match.get("op", "==")) == "!="
    if "payload" in left:
        p = left["payload"]
        protocol, fld = p.get("protocol"), p.get("field")
        if fld == "dport" and protocol in ("tcp", "udp", "th"):
            if protocol not in ("th", proto):
                return False
            return _in(port, right, table, rs) != negate
        if fld == "saddr" and protocol in _FAMILY_PROTOCOLS:
            text = f"{protocol} saddr {'!= ' if negate else ''}{_show(right, table, rs)}"
            return Source(protocol if not negate else "other", right, text)
        if fld in ("protocol", "nexthdr") and protocol in _FAMILY_PROTOCOLS:
            return _name_in(proto, right) != negate
    if "meta" in left:
        key = left["meta"].get("key")
        if key == "l4proto":
            return _name_in(proto, right) != negate
        if key in ("iif", "iifname"):
            if right == "lo" and not negate:
                return False
            return Source("iface", right, f"{key} {'!= ' if negate else ''}{_show(right, table, rs)}")
        if key == "nfproto":
            return None
    if "ct" in left and left["ct"].get("key") == "state":
        states = right if isinstance(right, list) else [right]
        return ("new" in states) != negate
    if "fib" in left:
        return None
    return Source("other", left, "a condition doctor cannot read")


def _name_in(name: str, right: Any) -> bool:
    if isinstance(right, dict) and "set" in right:
        return name in right["set"]
    if isinstance(right, list):
        return name in right
    return bool(right == name)


def _in(port: int, right: Any, table: str, rs: Ruleset) -> bool:
    if isinstance(right, bool):
        return False
    if isinstance(right, int):
        return port == right
    if isinstance(right, dict):
        if "range" in right:
            lo, hi = right["range"]
            return isinstance(lo, int) and isinstance(hi, int) and lo <= port <= hi
        if "set" in right:
            return any(_in(port, r, table, rs) for r in right["set"])
    if isinstance(right, list):
        return any(_in(port, r, table, rs) for r in right)
    if isinstance(right, str) and right.startswith("@"):
        return any(_in(port, r, table, rs) for r in _named_set(right, table, rs))
    return False


def _named_set(ref: str, table: str, rs: Ruleset) -> list[Any]:
    name = ref[1:]
    for (_, t, n), elems in rs.sets.items():
        if t == table and n == name:
            return [e.get("elem", {}).get("val", e) if isinstance(e, dict) and "elem" in e else e
                    for e in elems]
    return []


def _show(right: Any, table: str, rs: Ruleset) -> str:
    if isinstance(right, str) and right.startswith("@"):
        elems = _named_set(right, table, rs)
        return f"{right} ({', '.join(_show(e, table, rs) for e in elems) or 'empty'})"
    if isinstance(right, dict):
        if "prefix" in right:
            return f"{right['prefix']['addr']}/{right['prefix']['len']}"
        if "range" in right:
            return "-".join(str(_show(x, table, rs)) for x in right["range"])
        if "set" in right:
            return "{ " + ", ".join(_show(e, table, rs) for e in right["set"]) + " }"
    if isinstance(right, list):
        return "{ " + ", ".join(_show(e, table, rs) for e in right) + " }"
    return str(right)


def source_admits(source: Source, address: str, table: str, rs: Ruleset) -> bool | None:
    """Whether `address` meets the condition; None when doctor cannot tell."""
    if source.kind not in _FAMILY_PROTOCOLS:
        return None
    ip = ipaddress.ip_address(address)
    if (ip.version == 6) != (source.kind == "ip6"):
        return False
    return _addr_in(ip, source.value, table, rs)


def _addr_in(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, right: Any, table: str,
             rs: Ruleset) -> bool:
    try:
        if isinstance(right, str):
            if right.startswith("@"):
                return any(_addr_in(ip, e, table, rs) for e in _named_set(right, table, rs))
            return ip in ipaddress.ip_network(right, strict=False)
        if isinstance(right, dict):
            if "prefix" in right:
                net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}",
                                           strict=False)
                return ip in net
            if "range" in right:
                lo, hi = (ipaddress.ip_address(x) for x in right["range"])
                return type(lo) is type(ip) and lo <= ip <= hi  # type: ignore[operator]
            if "set" in right:
                return any(_addr_in(ip, e, table, rs) for e in right["set"])
        if isinstance(right, list):
            return any(_addr_in(ip, e, table, rs) for e in right)
    except ValueError:
        return False
    return False


def opening_admits(rs: Ruleset, verdict: Verdict, address: str) -> bool | None:
    """Whether new traffic from `address` gets through: True, False, or None when doctor cannot tell."""
    if verdict.any:
        return True
    table = verdict.chain.split(" ")[1] if verdict.chain.count(" ") >= 2 else ""
    unknown = False
    for conditions in verdict.openings:
        results = [source_admits(s, address, table, rs) for s in conditions]
        if all(r is True for r in results):
            return True
        if not any(r is False for r in results):
            unknown = True
    return None if unknown else False


def port_intervals(rs: Ruleset, proto: str, start: int, count: int) -> list[tuple[int, int, Verdict]]:
    """The firewall's verdict across a port range, as (first, last, verdict) runs."""
    runs: list[tuple[int, int, Verdict]] = []
    for port in range(start, start + count):
        v = rs.verdict(proto, port)
        if runs and runs[-1][2].key() == v.key() and runs[-1][1] == port - 1:
            runs[-1] = (runs[-1][0], port, runs[-1][2])
        else:
            runs.append((port, port, v))
    return runs
