"""SipOptions, the trunk secret, allow_from, caller numbers and codec choice: pure, no pjsua2."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sip.access import AllowList, asserted_number, caller_number, source_ip
from sip.options import SipConfigError, SipOptions
from sip.sdp import narrow_to_preferred


def test_defaults_are_direct_mode_on_5060() -> None:
    o = SipOptions()
    assert (o.mode, o.listen_host, o.listen_port, o.transports) == ("direct", "0.0.0.0", 5060, ("udp", "tcp"))
    v6 = SipOptions(listen="[::1]:5070")
    assert (v6.listen_host, v6.listen_port) == ("::1", 5070)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"listen": "5060"}, "host:port"),
    ({"transports": ("udp", "sctp")}, "transports"),
    ({"transports": ("tls",)}, "tls_cert and tls_key"),
    ({"max_calls": 0}, "max_calls"),
    ({"answer_after_s": -1}, "answer_after_s"),
    ({"rtp_port_start": 65535, "rtp_port_count": 10}, "RTP ports"),
    ({"registrar": "trunk.example.com", "username": "u", "password_env": "X"}, "SIP URI"),
    ({"registrar": "sip:trunk.example.com"}, "username"),
    ({"registrar": "sip:trunk.example.com", "username": "u"}, "never goes into the config"),
    ({"password_env": "A", "password_file": Path("/x")}, "not both"),
    ({"allow_from": ("10.0.0.0/33",)}, "allow_from"),
    ({"public_address": "203.0.113.7:5060"}, "public_address"),
    ({"public_address": "not a host"}, "public_address"),
    ({"jb_max_ms": 20}, "jb_max_ms"),
    ({"jb_max_ms": 300.5}, "whole milliseconds"),
    ({"jb_init_ms": 300}, "jitter buffer"),  # above jb_max_prefetch_ms
    ({"jb_min_prefetch_ms": 100, "jb_max_prefetch_ms": 60}, "jitter buffer"),
    ({"jb_max_prefetch_ms": 400, "jb_max_ms": 300}, "jitter buffer"),
    ({"tcp_first_message_s": 0.5}, "tcp_first_message_s"),
    ({"max_connections": 0}, "max_connections"),
    ({"max_connections": 5000}, "max_connections"),
])
def test_bad_options_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SipConfigError, match=message):
        SipOptions(**kwargs)  # type: ignore[arg-type]


def test_from_mapping_converts_and_refuses_unknown_keys(tmp_path: Path) -> None:
    o = SipOptions.from_mapping({"allow_from": ["10.0.0.1"], "transports": ["UDP"],
                                 "registrar": "sip:trunk.example.com:5080", "username": "me",
                                 "password_file": str(tmp_path / "pw")})
    assert o.allow_from == ("10.0.0.1",) and o.transports == ("udp",)
    assert o.registrar_host == "trunk.example.com"
    assert isinstance(o.password_file, Path) and o.mode == "trunk"
    with pytest.raises(SipConfigError, match="unknown keys \\['password'\\]"):
        SipOptions.from_mapping({"password": "plain"})


def test_jitter_buffer_and_plc_options_reach_pjsua() -> None:
    pj = pytest.importorskip("pjsua2")
    from sip import library

    o = SipOptions.from_mapping({"jb_init_ms": 40, "jb_min_prefetch_ms": 20, "jb_max_prefetch_ms": 120,
                                 "jb_max_ms": 240, "plc": True})
    med = library.endpoint_config(pj, o, None).medConfig
    assert (med.jbInit, med.jbMinPre, med.jbMaxPre, med.jbMax) == (40, 20, 120, 240)
    assert med.sndAutoCloseTime == -1  # the bridge's clock keeps running between calls
    assert o.plc and not SipOptions().plc


def test_password_from_env_or_file_and_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = SipOptions(registrar="sip:t.example", username="u", password_env="STANDIN_TEST_PW")
    monkeypatch.delenv("STANDIN_TEST_PW", raising=False)
    with pytest.raises(SipConfigError, match="STANDIN_TEST_PW is not set"):
        env.password()
    monkeypatch.setenv("STANDIN_TEST_PW", "hunter2")
    assert env.password() == "hunter2"
    assert "hunter2" not in repr(env)

    secret = tmp_path / "sip.secret"
    fileopt = SipOptions(registrar="sip:t.example", username="u", password_file=secret)
    with pytest.raises(SipConfigError, match="does not exist"):
        fileopt.password()
    secret.write_text("")
    with pytest.raises(SipConfigError, match="is empty"):
        fileopt.password()
    secret.write_text("s3cret \nignored\n")
    assert fileopt.password() == "s3cret"


def test_allow_list_defaults_per_mode_and_resolves_names() -> None:
    direct = AllowList.for_options(SipOptions())
    assert direct.allows("127.0.0.1:5060") and direct.allows("192.168.1.20") and direct.allows("[::1]:5060")
    assert not direct.allows("8.8.8.8:5060") and not direct.allows("garbage")

    answers = {"trunk.example.com": {ipaddress.ip_address("203.0.113.7")}}

    def resolver(name: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if name not in answers:
            raise OSError("no such host")
        return answers[name]

    trunk = AllowList.for_options(
        SipOptions(registrar="sip:trunk.example.com", username="u", password_env="X"), resolver)
    assert not trunk.allows("203.0.113.7:5060")  # not resolved yet: nobody
    assert trunk.refresh() == []
    assert trunk.allows("203.0.113.7:5060") and not trunk.allows("127.0.0.1:5060")
    del answers["trunk.example.com"]
    assert trunk.refresh() == ["trunk.example.com"]
    assert trunk.allows("203.0.113.7:5060")  # a failed lookup keeps the last known addresses

    explicit = AllowList(["198.51.100.0/24", "::ffff:0:0/96"], resolver)
    assert explicit.allows("198.51.100.9:5060") and not explicit.allows("198.51.101.9:5060")
    assert source_ip("[::ffff:198.51.100.9]:5060") == ipaddress.ip_address("198.51.100.9")


@pytest.mark.parametrize(("header", "number"), [
    ('"Bob" <sip:+390212345@trunk.example.com;user=phone>;tag=abc', "+390212345"),
    ("<sip:0212345@10.0.0.1:5060>", "0212345"),
    ("sip:alice@example.com", "alice"),
    ("<tel:+1-555-0100;phone-context=x>", "+1-555-0100"),
    ("<sip:%2B4930123@gw>", "+4930123"),
    ('"Anonymous" <sip:anonymous@anonymous.invalid>', "anonymous"),
    ("<sip:trunk.example.com>", ""),
    ("garbage", ""),
    # the display name is the caller's to write: a URI in it is not the number
    ('"<sip:+15550001111@x>" <sip:+393471234567@trunk>;tag=1', "+393471234567"),
    ('"sip:+15550001111@x" <sip:+393471234567@trunk>', "+393471234567"),
    ('"a < b" <sip:+393471234567@trunk>;tag=1', "+393471234567"),
    ('"say \\"<sip:1@x>\\"" <sip:+393471234567@trunk>', "+393471234567"),
    ("Bob <sip:+393471234567@trunk>", "+393471234567"),
    ('"never closed <sip:+15550001111@x>', ""),
    ('"Bob" tel:+15550001111', ""),
])
def test_caller_number_is_the_from_user_part(header: str, number: str) -> None:
    assert caller_number(header) == number


INVITE_HEAD = ("INVITE sip:standin@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKx\r\n"
               'f: "Anon" <sip:anonymous@anonymous.invalid>;tag=1\r\n')


@pytest.mark.parametrize(("headers", "number"), [
    ('P-Asserted-Identity: "Bob" <sip:+390212345@trunk>\r\n', "+390212345"),
    ('P-Asserted-Identity: <sip:+390212345@trunk>, <tel:+390299999>\r\n', "+390299999"),  # tel first
    ('p-asserted-identity: "A, <b>" <sip:+390212345@trunk>,\r\n <tel:+390299999>\r\n', "+390299999"),
    ('P-Asserted-Identity: "<tel:+1555>" <sip:+390212345@trunk>\r\n', "+390212345"),
    ("P-Preferred-Identity: <tel:+390299999>\r\n", ""),
    ("", ""),
])
def test_asserted_identity_is_read_from_the_whole_message(headers: str, number: str) -> None:
    message = INVITE_HEAD + headers + "Content-Length: 0\r\n\r\nP-Asserted-Identity: <tel:+1999>\r\n"
    assert asserted_number(message) == number


OFFER = ("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
         "m=audio 4000 RTP/AVP 0 8 9 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")
LOCAL = ("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=pjmedia\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 4002 RTP/AVP 0 8 9 96 120 121\r\na=rtcp:4003 IN IP4 127.0.0.1\r\na=sendrecv\r\n"
         "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n"
         "a=rtpmap:96 L16/44100\r\na=rtpmap:120 telephone-event/16000\r\na=fmtp:120 0-16\r\n"
         "a=rtpmap:121 telephone-event/8000\r\na=fmtp:121 0-16\r\n")


def test_local_sdp_is_narrowed_to_the_preferred_offered_codec() -> None:
    narrowed = narrow_to_preferred(LOCAL, OFFER)
    assert "m=audio 4002 RTP/AVP 9 120 121\r\n" in narrowed
    assert "PCMU" not in narrowed and "L16" not in narrowed and "a=rtpmap:9 G722/8000" in narrowed
    assert "a=rtcp:4003 IN IP4 127.0.0.1" in narrowed and "a=fmtp:121 0-16" in narrowed
    no_g722 = OFFER.replace(" 9 101", " 101")
    assert "m=audio 4002 RTP/AVP 0 120 121\r\n" in narrow_to_preferred(LOCAL, no_g722)
    # nothing in common or nothing to read: unchanged (pjmedia answers 488 itself)
    assert narrow_to_preferred(LOCAL, OFFER.replace("0 8 9 101", "18")) == LOCAL
    assert narrow_to_preferred(LOCAL, "garbage") == LOCAL
