"""What `standin doctor` reads from nftables: SIP from the registrar, the RTP range, the dashboard.

`data/ruleset.json` is `nft -j list ruleset` (nftables 1.0.6) of `data/ruleset.nft`; where this machine
can load a ruleset into a throwaway network namespace, the same checks also run on nft's live answer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.doctor import nft
from tests.deploy.doctor_box import Box, one

DATA = Path(__file__).with_name("data")


def live_ruleset(nft_text: str) -> dict[str, Any]:
    """`nft -j list ruleset` after loading `nft_text` into a new network namespace; skips where that
    cannot be done (no nft, no unshare, not allowed)."""
    if shutil.which("nft") is None or shutil.which("unshare") is None:
        pytest.skip("nft or unshare is not installed")
    done = subprocess.run(["unshare", "-n", "sh", "-c", "nft -f - && nft -j list ruleset"], input=nft_text,
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot load a ruleset into a network namespace here: {done.stderr.strip()}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.fixture(params=["stored", "live"])
def ruleset(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "live":
        return live_ruleset((DATA / "ruleset.nft").read_text())
    data: dict[str, Any] = json.loads((DATA / "ruleset.json").read_text())
    return data


def firewall(box: Box, ruleset: dict[str, Any], monkeypatch: pytest.MonkeyPatch, registrar: str) -> list[Any]:
    secret = box.root / "sip-password"
    secret.write_text("x\n")
    box.rewrite(sip={"listen": "0.0.0.0:5060", "registrar": f"sip:{registrar}", "username": "u",
                     "password_file": str(secret), "rtp_port_start": 40000, "rtp_port_count": 1000},
                web={"listen": "0.0.0.0:8080", "password_file": str(box.root / "web-password")})
    monkeypatch.setattr(nft, "read_ruleset", lambda timeout_s=5.0: ruleset)
    from server import doctor

    return doctor.diagnose(box.args("--only", "firewall")).findings


def test_trunk_lan_and_a_short_rtp_range(box: Box, ruleset: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    findings = firewall(box, ruleset, monkeypatch, registrar="192.0.2.5")
    one(findings, "firewall", "ok", "udp 5060 ([sip] listen): open to ip saddr @trunk4 (192.0.2.0/28, "
                                    "198.51.100.7)")
    one(findings, "firewall", "ok", "tcp 8080 ([web] listen): open to ip saddr @lan4 (10.0.0.0/8, "
                                    "192.168.0.0/16)")
    one(findings, "firewall", "ok", "udp 40000-40499 (RTP): open to ip saddr @trunk4")
    closed = one(findings, "firewall", "fail", "udp 40500-40999 (RTP): dropped by inet standin input")
    assert "udp dport 40500-40999 accept" in closed.fix


def test_registrar_outside_the_trunk_set(box: Box, ruleset: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    findings = firewall(box, ruleset, monkeypatch, registrar="203.0.113.9")
    f = one(findings, "firewall", "fail", "udp 5060 ([sip] listen)")
    assert "the registrar (203.0.113.9) is not among them" in f.what
    assert "ip saddr { 203.0.113.9 } udp dport 5060 accept" in f.fix


def test_policy_accept_opens_everything(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    rs = {"nftables": [{"chain": {"family": "inet", "table": "filter", "name": "input", "type": "filter",
                                  "hook": "input", "prio": 0, "policy": "accept"}}]}
    findings = firewall(box, rs, monkeypatch, registrar="192.0.2.5")
    rtp = one(findings, "firewall", "warn", "udp 40000-40999 (RTP): open to every address")
    assert "takes its audio" in rtp.what and "trunk's media addresses" in rtp.fix
    f = one(findings, "firewall", "warn", "tcp 8080 ([web] listen): open to every address")
    assert "standin_firewall_lan" in f.fix


def test_no_firewall_at_all(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    findings = firewall(box, {"nftables": [{"metainfo": {"version": "1.0.6"}}]}, monkeypatch, "192.0.2.5")
    one(findings, "firewall", "warn", "no nftables input chain")


def _rs(*rules: list[dict[str, Any]], policy: str = "drop") -> nft.Ruleset:
    items: list[dict[str, Any]] = [{"chain": {"family": "inet", "table": "t", "name": "in", "type": "filter",
                                              "hook": "input", "prio": 0, "policy": policy}}]
    items += [{"rule": {"family": "inet", "table": "t", "chain": "in", "expr": r}} for r in rules]
    return nft.Ruleset.parse({"nftables": items})


def _dport(proto: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": right}}


ACCEPT = {"accept": None}


def test_rules_that_do_not_open_new_traffic() -> None:
    established = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established"]}}
    loopback = {"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}
    rs = _rs([established, ACCEPT], [loopback, ACCEPT], [_dport("tcp", 5060), ACCEPT])
    assert rs.verdict("udp", 5060).closed
    assert rs.verdict("tcp", 5060).any


def test_sets_ranges_negation_and_a_catch_all_drop() -> None:
    rs = _rs([_dport("udp", {"set": [5060, {"range": [40000, 40009]}]}), ACCEPT],
             [{"match": {"op": "!=", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 9}},
              {"drop": None}], policy="accept")
    assert rs.verdict("udp", 5060).any
    assert rs.verdict("udp", 40009).any
    assert rs.verdict("udp", 40010).closed  # dropped by the != 9 rule
    assert rs.verdict("udp", 9).any  # passes the drop, then the accept policy
    runs = nft.port_intervals(rs, "udp", 40005, 10)
    assert [(lo, hi, v.any) for lo, hi, v in runs] == [(40005, 40009, True), (40010, 40014, False)]


def test_the_most_restrictive_chain_wins() -> None:
    items: list[dict[str, Any]] = [
        {"chain": {"family": "inet", "table": "a", "name": "in", "hook": "input", "policy": "accept"}},
        {"chain": {"family": "ip", "table": "b", "name": "in", "hook": "input", "policy": "drop"}},
    ]
    v = nft.Ruleset.parse({"nftables": items}).verdict("udp", 5060)
    assert v.closed and v.chain == "ip b in"


def test_opening_admits_addresses() -> None:
    saddr = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"prefix": {"addr": "192.0.2.0", "len": 24}}}}
    rs = _rs([saddr, _dport("udp", 5060), ACCEPT])
    v = rs.verdict("udp", 5060)
    assert nft.opening_admits(rs, v, "192.0.2.77") is True
    assert nft.opening_admits(rs, v, "198.51.100.1") is False
    assert nft.opening_admits(rs, v, "2001:db8::1") is False
    iface = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}
    rs = _rs([iface, _dport("udp", 5060), ACCEPT])
    assert nft.opening_admits(rs, rs.verdict("udp", 5060), "198.51.100.1") is None
