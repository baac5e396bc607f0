"""`standin doctor`'s network checks: SIP (the trunk password, the registrar, the registration the
running service reports), the SIP and dashboard ports, the RTP range, and what nftables lets in."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from server.doctor import nft, procs
from server.doctor.context import Doctor

# --------------------------------------------------------------------------- SIP


def check_sip(d: Doctor) -> None:
    from sip.options import SipConfigError

    o = d.sip
    if not has_pjsua2():
        d.report.add("sip", "fail", "pjsua2 (the SIP stack) is not installed in this Python",
                     f"build it: sip/build_pjsua2.sh --venv {Path(sys.prefix)} (see sip/README.md)")
    if o.registrar is not None:
        try:
            if o.password_env is not None:
                if not d.env.get(o.password_env):
                    raise SipConfigError(f"SIP password: the environment variable {o.password_env} is "
                                         "not set (in the service's environment file or this shell)")
            else:
                o.password()
        except SipConfigError as exc:
            where = o.password_file or o.password_env
            d.report.add("sip", "fail", str(exc), f"put the trunk password in {where}, "
                         "readable by the service user only (Ansible: standin_sip_password)")
        else:
            d.report.add("sip", "ok", f"the SIP password for {o.username} is set")
        host = o.registrar_host
        try:
            addresses = resolve(host)
        except OSError as exc:
            d.report.add("sip", "fail", f"the registrar {host} does not resolve ({exc})",
                         "check the box's DNS (resolvectl status) and the registrar's name")
        else:
            d.report.add("sip", "ok", f"the registrar {host} resolves to {', '.join(addresses)}")
    _check_registration(d)


def _check_registration(d: Doctor) -> None:
    o = d.sip
    health = d.health()
    if health is None:
        d.report.add("sip", "warn", "[web] listen is empty, so doctor cannot ask standin for its "
                     "registration", "set [web] listen (e.g. 127.0.0.1:8080) to let doctor ask")
        return
    if not health.answered:
        if d.processes():
            d.report.add("sip", "warn", f"standin runs (pid {procs.pid_list(d.processes())}) but its "
                         f"dashboard at {health.url} does not answer ({health.error})",
                         "see its log: journalctl -u standin -e")
        else:
            d.report.add("sip", "warn", "standin is not running, so its registration cannot be "
                         "checked", "start it: systemctl start standin (then run doctor again)")
        return
    body = health.body or {}
    sip = body.get("sip")
    if "sip" not in body:
        said = body.get("status", health.status)
        d.report.add("sip", "warn", f"standin's dashboard answered ({said}) but without details: "
                     "doctor needs an API token",
                     "give one with --token, or put STANDIN_API_TOKENS in standin.env beside the "
                     "config (Ansible: standin_api_tokens)")
        return
    if not isinstance(sip, dict):
        serve = body.get("serve") or {}
        d.report.add("sip", "warn", "the dashboard runs without standin serve: "
                     f"{serve.get('detail', 'no SIP status')}", "start it: systemctl start standin")
        return
    state = str(sip.get("state", "unknown"))
    registrar = sip.get("registrar") or o.registrar
    code, reason = sip.get("code", 0), sip.get("reason", "")
    if state == "registered":
        expires = f", expires in {sip['expires_s']} s" if sip.get("expires_s") else ""
        d.report.add("sip", "ok", f"registered at {registrar} as {o.username} ({code} {reason}"
                     f"{expires})")
    elif state == "direct":
        d.report.add("sip", "ok", f"direct mode: no registration; calls are taken on {o.listen}")
    elif state == "registering":
        d.report.add("sip", "warn", f"still registering at {registrar} (no answer yet)",
                     "wait a few seconds and run doctor again; if it stays, check the network path "
                     "to the registrar and the firewall")
    else:
        d.report.add("sip", "fail", f"not registered at {registrar}: {state} {code} {reason}".rstrip(),
                     registration_fix(int(code or 0)))


# --------------------------------------------------------------------------- ports


def wanted_ports(d: Doctor) -> list[tuple[str, str, int, str]]:
    """(proto, host, port, the config key) for every port standin listens on."""
    from sip.options import split_host_port

    o = d.sip
    ports: list[tuple[str, str, int, str]] = []
    for t in o.transports:
        if t in ("udp", "tcp"):
            ports.append((t, o.listen_host, o.listen_port, "[sip] listen"))
    if "tls" in o.transports:
        ports.append(("tcp", o.listen_host, o.tls_port, "[sip] tls_port"))
    if d.cfg.web.listen:
        try:
            host, port = split_host_port(d.cfg.web.listen, "listen")
        except ValueError as exc:
            d.report.add("ports", "fail", f"[web] {exc}".replace("[sip] ", ""),
                         "write [web] listen as host:port, e.g. 127.0.0.1:8080")
        else:
            ports.append(("tcp", host, port, "[web] listen"))
    return ports


def check_ports(d: Doctor) -> None:
    running = d.running()
    health = d.health()
    for proto, host, port, key in wanted_ports(d):
        label = f"{proto} {host}:{port} ({key})"
        state = procs.probe_bind(proto, host, port)
        if state == "free":
            if running and key != "[web] listen" and d.starting():
                d.report.add("ports", "warn", f"{label}: standin started moments ago and does not "
                             "listen there yet (it loads the models first)",
                             "run doctor again in a minute")
            elif running and key != "[web] listen":
                d.report.add("ports", "fail", f"{label}: standin runs but does not listen there",
                             "see its log (journalctl -u standin -e); it may run with another config")
            else:
                d.report.add("ports", "ok", f"{label} is free for standin")
        elif state == "taken":
            owners = procs.port_owners(proto, port)
            if owners and all(p.is_standin for p in owners):
                d.report.add("ports", "ok", f"{label} is held by standin (pid {procs.pid_list(owners)})")
            elif key == "[web] listen" and health is not None and health.answered and not owners:
                d.report.add("ports", "ok", f"{label} is held by standin's dashboard")
            elif owners:
                other = next(p for p in owners if not p.is_standin)
                d.report.add("ports", "fail", f"{label} is taken by pid {other.pid} ({other.command})",
                             f"stop that program, or give standin another port in {key}")
            elif running:
                d.report.add("ports", "ok", f"{label} is held, by standin as far as this user can "
                             "see (run doctor as root to see the process)")
            else:
                d.report.add("ports", "fail", f"{label} is taken by a process this user cannot see",
                             f"find it as root (ss -lnup 'sport = :{port}'; ss -lntp "
                             f"'sport = :{port}'), stop it, or give standin another port in {key}")
        elif state == "noaddr":
            d.report.add("ports", "fail", f"{label}: {host} is not an address of this box",
                         f"use one of its addresses (ip -brief address) or 0.0.0.0 in {key}")
        elif state == "denied":
            d.report.add("ports", "fail", f"{label}: ports below 1024 need privileges",
                         f"use a port from 1024 up in {key} (5060 for SIP, 8080 for the dashboard)")
        else:
            d.report.add("ports", "fail", f"{label}: cannot be bound: {state}", f"check {key}")


# --------------------------------------------------------------------------- RTP


def check_rtp(d: Doctor) -> None:
    o = d.sip
    first, count = o.rtp_port_start, o.rtp_port_count
    last = first + count - 1
    table = procs.socket_inodes("udp")
    busy = {p: i for p, i in table.items() if first <= p <= last}
    owners = procs.inode_owners(set().union(*busy.values())) if busy else {}
    foreign = sorted(p for p, inodes in busy.items()
                     if not all(i in owners and owners[i].is_standin for i in inodes))
    need = 2 * o.max_calls
    free = count - len(foreign)
    label = f"udp {first}-{last} ([sip] rtp_port_start/rtp_port_count)"
    if free < need:
        d.report.add("rtp", "fail", f"{label}: only {free} ports free, {o.max_calls} calls need "
                     f"{need}",
                     "move the range ([sip] rtp_port_start) to unused ports, or stop what holds them "
                     f"(ss -lnup 'sport >= :{first} and sport <= :{last}')")
    elif foreign:
        names = sorted({owners[i].command for p in foreign for i in busy[p] if i in owners})
        d.report.add("rtp", "warn", f"{label}: {len(foreign)} ports held by other programs"
                     + (f" ({'; '.join(names[:3])})" if names else ""),
                     "keep the RTP range for standin alone: move it or those programs")
    else:
        d.report.add("rtp", "ok", f"{label}: {count} ports free for {o.max_calls} calls")


# --------------------------------------------------------------------------- firewall


def check_firewall(d: Doctor, ruleset: Mapping[str, Any] | None = None) -> None:
    if ruleset is None:
        try:
            ruleset = nft.read_ruleset(d.timeout_s)
        except nft.FirewallUnreadable as exc:
            d.report.add("firewall", "info", f"the firewall cannot be read: {exc}",
                         "run doctor as root to check what nftables lets in")
            return
    firewall_findings(d, nft.Ruleset.parse(ruleset))


def firewall_findings(d: Doctor, rs: nft.Ruleset) -> None:
    o = d.sip
    if not rs.input_chains():
        d.report.add("firewall", "warn", "no nftables input chain: every port of this box is open to "
                     "every network that reaches it",
                     "install the firewall (the Ansible role standin_firewall) to let SIP and RTP in "
                     "from the trunk only and the dashboard from the LAN only")
        return
    trunk: list[str] = []
    if o.registrar_host:
        try:
            trunk = resolve(o.registrar_host)
        except OSError:
            trunk = []
    for proto, host, port, key in wanted_ports(d):
        label = f"{proto} {port} ({key})"
        if _is_loopback(host):
            d.report.add("firewall", "ok", f"{label}: listens on loopback only")
            continue
        v = rs.verdict(proto, port)
        if v.closed:
            d.report.add("firewall", "fail" if key.startswith("[sip]") else "warn",
                         f"{label}: {v.describe()}", firewall_fix(proto, str(port), key))
            continue
        if key.startswith("[sip]") and trunk and proto == "udp":
            admitted = [a for a in trunk if nft.opening_admits(rs, v, a) is not False]
            if not admitted:
                d.report.add("firewall", "fail", f"{label}: {v.describe()}; the registrar "
                             f"({', '.join(trunk)}) is not among them, so its calls are dropped",
                             firewall_fix(proto, str(port), key, trunk))
                continue
        if key == "[web] listen" and v.any:
            d.report.add("firewall", "warn", f"{label}: {v.describe()}",
                         "let only the LAN reach the dashboard (Ansible: standin_firewall_lan)")
        else:
            d.report.add("firewall", "ok", f"{label}: {v.describe()}")
    if _is_loopback(o.listen_host):
        return
    runs = nft.port_intervals(rs, "udp", o.rtp_port_start, o.rtp_port_count)
    for lo, hi, v in runs:
        span = f"udp {lo}-{hi} (RTP)" if lo != hi else f"udp {lo} (RTP)"
        if v.closed:
            d.report.add("firewall", "fail", f"{span}: {v.describe()}: callers would not be heard",
                         firewall_fix("udp", f"{lo}-{hi}", "[sip] rtp_port_start", trunk))
        elif v.any:
            # a call's media latches to the first address it hears from; open to all, that can be anyone's
            d.report.add("firewall", "warn", f"{span}: {v.describe()}: a stranger who sends to a call's "
                         "port before the caller does takes its audio",
                         "let RTP in from the trunk's media addresses only (Ansible: standin_firewall)")
        else:
            d.report.add("firewall", "ok", f"{span}: {v.describe()}")


# --------------------------------------------------------------------------- helpers


def resolve(host: str) -> list[str]:
    """The addresses a host name resolves to (an address stays itself); OSError when it does not."""
    return sorted({str(a[4][0]) for a in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)})


def has_pjsua2() -> bool:
    import importlib.util

    return importlib.util.find_spec("pjsua2") is not None


def registration_fix(code: int) -> str:
    if code in (401, 403, 407):
        return ("the registrar refused the credentials: check [sip] username and the password "
                "(Ansible: standin_sip_username, standin_sip_password)")
    if code == 404:
        return "the registrar does not know this user: check [sip] username and registrar"
    if code in (0, 408, 503):
        return ("the registrar did not answer: check DNS, the route to it, and that the firewall lets its "
                "answers in")
    return "see the registrar's answer above and standin's log: journalctl -u standin -e"


def firewall_fix(proto: str, ports: str, key: str, sources: Iterable[str] = ()) -> str:
    srcs = list(sources)
    v4 = [s for s in srcs if ":" not in s]
    saddr = f"ip saddr {{ {', '.join(v4)} }} " if v4 else ""
    return (f"let it in: nft add rule inet standin input {saddr}{proto} dport {ports} accept "
            f"(or run the Ansible role standin_firewall; {key} must match its variables)")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
