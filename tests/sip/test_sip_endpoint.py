"""The SIP endpoint against SIPp on loopback: a real A-law call, refusals, busy, ringing and CANCEL,
garbage on the port, registration to a trunk. Every SIPp run and every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sip.endpoint import SipEndpoint
from tests.sip.endpoint_kit import Handler, loopback_options, require_pjsua2, running, window_rms
from tests.sip.sipp import (
    SIPP_SHARE,
    answered_call,
    answered_call_checking,
    call_ended_by_standin,
    cancelled_call,
    free_port,
    info_dtmf_call,
    port_free,
    refused_call,
    registrar,
    run_sipp,
    scenario,
    sipp_binary,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_peers() -> None:
    require_pjsua2()
    sipp_binary()


def target(endpoint: SipEndpoint) -> str:
    return endpoint.addresses["udp"]


def test_sipp_pcap_call_is_answered_heard_and_ends_cleanly(tmp_path: Path) -> None:
    if not (SIPP_SHARE / "g711a.pcap").is_file():
        pytest.skip(f"SIPp's sample pcap is not at {SIPP_SHARE}")
    (tmp_path / "pcap").mkdir()  # uac_pcap plays pcap/g711a.pcap and pcap/dtmf_2833_1.pcap from its cwd
    for name in ("g711a.pcap", "dtmf_2833_1.pcap"):
        shutil.copy(SIPP_SHARE / name, tmp_path / "pcap" / name)
    options = loopback_options()
    handler = Handler()

    async def scenario_run() -> Any:
        async with running(options, handler) as endpoint:
            result = await run_sipp(["-sn", "uac_pcap", target(endpoint), "-m", "1", "-i", "127.0.0.1",
                                     "-mi", "127.0.0.1", "-mp", str(free_port())], tmp_path)
            await asyncio.wait_for(handler.calls[0].call.wait_ended(), 5) if handler.calls else None
            await asyncio.sleep(0.1)
            digits = []
            while handler.calls and not handler.calls[0].call.dtmf.empty():
                digits.append(handler.calls[0].call.dtmf.get_nowait())
            rtp = handler.calls[0].call.local_rtp if handler.calls else None
            rtp_free_after_call = rtp is not None and await _wait_for(
                lambda: port_free(int(rtp.rsplit(":", 1)[1])), 3)
        return result, [*digits, f"rtp_free={rtp_free_after_call}"]

    result, notes = asyncio.run(scenario_run())
    assert result.ok, result.output
    assert len(handler.calls) == 1
    handled = handler.calls[0]
    call = handled.call
    assert handled.ended and call.end_reason == "caller hung up"
    assert call.caller_number == "sipp" and call.remote_address.startswith("127.0.0.1:")
    assert call.codec == "PCMA/8000"
    assert notes == ["1", "rtp_free=True"]  # the RFC 2833 digit; the call's RTP port is closed again
    audio = handled.audio()
    assert all(len(f) == 320 and f.dtype == np.int16 for f in handled.frames)
    assert len(audio) >= 8 * 16000  # 7 s of speech, 1 s pause, the digit
    levels = window_rms(audio)
    # The pcap opens with 0.6 s of near silence, then speech; its quiet start and the 7 s of speech
    # arrive as such.
    assert levels[:3].max() < 50, levels[:10]
    assert levels.max() > 2000 and (levels > 300).sum() >= 30, levels.round()
    # The bot's side was pulled once per 20 ms frame for the whole call.
    assert abs(handled.pulls - len(handled.frames)) <= 0.1 * len(handled.frames)
    assert call.frames_dropped == 0 and call.pull_errors == 0
    # the receive statistics of the last second the call was up (refreshed once a second)
    assert call.rx_stats["packets"] > 100 and call.rx_stats["jb_delay_ms"] >= 0, call.rx_stats
    assert port_free(int(options.listen_port))


def test_caller_outside_allow_from_gets_403_and_no_call(tmp_path: Path) -> None:
    options = loopback_options(allow_from=("127.0.0.1/32",))
    handler = Handler()

    async def scenario_run() -> Any:
        async with running(options, handler) as endpoint:
            refused = await run_sipp(["-sf", scenario(tmp_path, "refused", refused_call(403)),
                                      target(endpoint), "-m", "1", "-i", "127.0.0.2"], tmp_path)
            return refused, dict(endpoint.counts)

    refused, counts = asyncio.run(scenario_run())
    assert refused.ok, refused.output
    assert handler.calls == [] and counts["refused"] == 1 and counts["answered"] == 0


def test_busy_beyond_max_calls_gets_486(tmp_path: Path) -> None:
    options = loopback_options(max_calls=1)
    handler = Handler()

    async def scenario_run() -> Any:
        async with running(options, handler) as endpoint:
            first = asyncio.create_task(run_sipp(
                ["-sf", scenario(tmp_path, "long", answered_call(2000)), target(endpoint), "-m", "1",
                 "-i", "127.0.0.1", "-p", str(free_port())], tmp_path))
            await asyncio.wait_for(handler.delivered.wait(), 10)
            second = await run_sipp(["-sf", scenario(tmp_path, "busy", refused_call(486)), target(endpoint),
                                     "-m", "1", "-i", "127.0.0.1", "-p", str(free_port())], tmp_path)
            return await first, second, dict(endpoint.counts)

    first, second, counts = asyncio.run(scenario_run())
    assert first.ok, first.output
    assert second.ok, second.output
    assert counts["busy"] == 1 and counts["answered"] == 1
    assert len(handler.calls) == 1 and handler.calls[0].call.end_reason == "caller hung up"


def test_rings_before_answering_and_cancel_before_answer_is_clean(tmp_path: Path) -> None:
    options = loopback_options(answer_after_s=0.6)
    handler = Handler()

    async def scenario_run() -> Any:
        async with running(options, handler) as endpoint:
            answered = await run_sipp(["-sf", scenario(tmp_path, "answered", answered_call(300)),
                                       target(endpoint), "-m", "1", "-i", "127.0.0.1"], tmp_path)
            cancelled = await run_sipp(["-sf", scenario(tmp_path, "cancelled", cancelled_call(200)),
                                        target(endpoint), "-m", "1", "-i", "127.0.0.1"], tmp_path)
            await asyncio.sleep(0.2)
            return answered, cancelled, dict(endpoint.counts)

    answered, cancelled, counts = asyncio.run(scenario_run())
    assert answered.ok, answered.output
    assert cancelled.ok, cancelled.output
    assert len(handler.calls) == 1  # the cancelled call never reached the handler
    handled = handler.calls[0]
    assert handled.delivered_at - handled.call.started_at >= 0.55  # it rang first
    assert counts == {"offered": 2, "answered": 1, "refused": 0, "busy": 0, "unavailable": 0, "cancelled": 1,
                      "requests_refused": 0, "connections_refused": 0}


def test_sip_info_dtmf_reaches_the_call_like_rfc_2833(tmp_path: Path) -> None:
    handler = Handler()
    seen: list[str] = []

    async def scenario_run() -> Any:
        async with running(loopback_options(), handler) as endpoint:
            caller = asyncio.create_task(run_sipp(["-sf", scenario(tmp_path, "info", info_dtmf_call("5#")),
                                                   target(endpoint), "-m", "1", "-i", "127.0.0.1"], tmp_path))
            await asyncio.wait_for(handler.delivered.wait(), 10)
            handler.calls[0].call.on_dtmf = seen.append
            result = await caller
            await asyncio.wait_for(handler.calls[0].call.wait_ended(), 5)
            await asyncio.sleep(0.05)
        return result

    result = asyncio.run(scenario_run())
    assert result.ok, result.output  # each INFO got its 200
    call = handler.calls[0].call
    digits = [call.dtmf.get_nowait() for _ in range(call.dtmf.qsize())]
    assert digits == ["5", "#"] and seen == ["5", "#"]


def test_public_address_goes_into_contact_and_sdp(tmp_path: Path) -> None:
    options = loopback_options(public_address="203.0.113.7")
    handler = Handler()

    async def scenario_run() -> Any:
        async with running(options, handler) as endpoint:
            checked = answered_call_checking(200, contact=rf"203\.0\.113\.7:{options.listen_port}",
                                             sdp=r"c=IN IP4 203\.0\.113\.7")
            result = await run_sipp(["-sf", scenario(tmp_path, "checked", checked), target(endpoint),
                                     "-m", "1", "-i", "127.0.0.1"], tmp_path)
            return result, dict(endpoint.addresses)

    result, addresses = asyncio.run(scenario_run())
    assert result.ok, result.output  # the 200's Contact and SDP carry the public address
    assert handler.calls and handler.calls[0].call.end_reason == "caller hung up"
    assert addresses["udp"] == f"127.0.0.1:{options.listen_port}"  # where it listens


def test_standin_hangs_up_with_bye_and_a_line_without_rtp_is_hung_up(tmp_path: Path) -> None:
    async def one_call(handler: Handler, **overrides: Any) -> tuple[Any, list[Any]]:
        async with running(loopback_options(**overrides), handler) as endpoint:
            result = await run_sipp(["-sf", scenario(tmp_path, "ended", call_ended_by_standin()),
                                     target(endpoint), "-m", "1", "-i", "127.0.0.1"], tmp_path)
            await asyncio.sleep(0.1)
            return result, endpoint.calls()

    # the handler hangs up after 10 frames (SIPp sends no RTP; the bridge still delivers 20 ms frames)
    by_app = Handler(hang_up_after=10)
    bye, left = asyncio.run(one_call(by_app))
    assert bye.ok, bye.output
    assert by_app.calls[0].call.end_reason == "hung up: test is done" and left == []
    # nobody hangs up, but no RTP ever arrives: standin ends the call itself
    idle = Handler()
    timeout, _ = asyncio.run(one_call(idle, media_timeout_s=1.0))
    assert timeout.ok, timeout.output
    assert idle.calls[0].call.end_reason == "hung up: no media"


def test_stop_hangs_up_calls_and_leaves_nothing_behind(tmp_path: Path) -> None:
    options = loopback_options(transports=("udp", "tcp"))
    handler = Handler()

    async def scenario_run() -> Any:
        async with running(options, handler) as endpoint:
            caller = asyncio.create_task(run_sipp(
                ["-sf", scenario(tmp_path, "ended", call_ended_by_standin()), target(endpoint), "-m", "1",
                 "-i", "127.0.0.1"], tmp_path))
            await asyncio.wait_for(handler.delivered.wait(), 10)
            await asyncio.sleep(0.2)
            rtp = handler.calls[0].call.local_rtp
        return await caller, rtp

    result, rtp = asyncio.run(scenario_run())
    assert result.ok, result.output  # it got standin's BYE
    assert handler.calls[0].call.end_reason == "hung up: endpoint stopped" and handler.calls[0].ended
    assert rtp is not None and port_free(int(rtp.rsplit(":", 1)[1]))
    assert port_free(options.listen_port)
    assert not [t for t in threading.enumerate() if t.name.startswith("standin-sip")]


def test_a_port_in_use_is_a_clear_error_and_frees_the_endpoint_slot() -> None:
    from sip.library import SipUnavailable

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]

        async def start_on_taken_port() -> None:
            async with running(loopback_options(listen=f"127.0.0.1:{port}")):
                pass

        with pytest.raises(SipUnavailable, match="is the port in use"):
            asyncio.run(start_on_taken_port())

    async def start_again() -> dict[str, str]:
        async with running(loopback_options()) as endpoint:
            return dict(endpoint.addresses)

    assert "udp" in asyncio.run(start_again())


def test_tls_transport_listens(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=standin.test", "-keyout", str(key), "-out", str(cert)], check=True,
                   capture_output=True, timeout=30)
    tls_port = free_port()
    options = loopback_options(transports=("udp", "tls"), tls_port=tls_port, tls_cert=cert, tls_key=key)

    async def handshake() -> tuple[dict[str, str], str | None]:
        async with running(options) as endpoint:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", tls_port, ssl=context), 5)
            version = writer.get_extra_info("ssl_object").version()
            writer.close()
            return dict(endpoint.addresses), version

    addresses, version = asyncio.run(handshake())
    assert addresses["tls"].endswith(f":{tls_port}") and version is not None


GARBAGE_INVITES = [
    b"INVITE sip:standin@127.0.0.1 SIP/2.0\r\n\r\n",  # no headers at all
    b"INVITE sip:standin@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: g1\r\nCSeq: 1 INVITE\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 500\r\n\r\nv=0\r\n",  # body shorter than said
    b"INVITE sip:standin@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKy\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: g2\r\nCSeq: 1 INVITE\r\n"
    b"Contact: <sip:a@127.0.0.1:9>\r\nContent-Type: application/sdp\r\nContent-Length: 21\r\n\r\n"
    b"v=9\r\nm=nonsense here\r\n",  # broken SDP
    b"INVITE \xff\xfe\x00 SIP/7.0\r\nVia: ???\r\nCSeq: x\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKz\r\nCSeq: 1 INVITE\r\n\r\n",  # stray
]


def test_garbage_and_malformed_invites_leave_it_answering(tmp_path: Path) -> None:
    options = loopback_options(transports=("udp", "tcp"))
    handler = Handler()
    rng = np.random.default_rng(7)

    async def scenario_run() -> Any:
        async with running(options, handler) as endpoint:
            host, port = "127.0.0.1", options.listen_port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", 0))
                for size in [0, 1, 3, 100, 1400, 4000, 60000]:
                    udp.sendto(rng.integers(0, 256, size, dtype=np.uint8).tobytes(), (host, port))
                for packet in GARBAGE_INVITES:
                    udp.sendto(packet, (host, port))
            for packet in [rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(), *GARBAGE_INVITES]:
                with socket.create_connection((host, port), timeout=2) as tcp:
                    tcp.sendall(packet)
            await asyncio.sleep(0.5)
            good = await run_sipp(["-sf", scenario(tmp_path, "good", answered_call(300)), target(endpoint),
                                   "-m", "1", "-i", "127.0.0.1"], tmp_path)
            return good

    good = asyncio.run(scenario_run())
    assert good.ok, good.output
    assert len(handler.calls) == 1 and handler.calls[0].call.end_reason == "caller hung up"


def test_trunk_registration_reregisters_and_takes_calls_only_from_the_trunk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_TEST_SIP_PASSWORD", "s3cret-pw")
    trunk_port = free_port()
    options = loopback_options(registrar=f"sip:127.0.0.1:{trunk_port}", username="standin",
                               password_env="STANDIN_TEST_SIP_PASSWORD", register_expires_s=60)
    handler = Handler()
    states: list[str] = []

    async def scenario_run() -> Any:
        trunk = asyncio.create_task(run_sipp(
            ["-sf", scenario(tmp_path, "registrar", registrar(6, 1, "standin", "s3cret-pw")),
             "-i", "127.0.0.1", "-p", str(trunk_port), "-m", "1"], tmp_path, timeout_s=20))
        await asyncio.sleep(0.3)  # let SIPp bind
        async with running(options, handler) as endpoint:
            first = await _wait_for(lambda: endpoint.registration().state == "registered", 5)
            states.append(endpoint.registration().state)
            # the registrar granted 6 s: pjsua refreshes after 5 s (its shortest delay)
            registered_at = endpoint.registration().changed_at
            await _wait_for(lambda: endpoint.registration().changed_at > registered_at, 8)
            states.append(endpoint.registration().state)
            stranger = await run_sipp(["-sf", scenario(tmp_path, "stranger", refused_call(403)),
                                       target(endpoint), "-m", "1", "-i", "127.0.0.2"], tmp_path)
            from_trunk = await run_sipp(["-sf", scenario(tmp_path, "call", answered_call(200)),
                                         target(endpoint), "-m", "1", "-i", "127.0.0.1"], tmp_path)
        states.append(endpoint.registration().state)
        return first, stranger, from_trunk, await trunk

    first, stranger, from_trunk, trunk = asyncio.run(scenario_run())
    assert first, "never registered"
    assert states == ["registered", "registered", "stopped"]
    assert stranger.ok, stranger.output
    assert from_trunk.ok, from_trunk.output
    assert trunk.ok, trunk.output  # challenged, authenticated, refreshed, unregistered at stop
    assert len(handler.calls) == 1


def test_wrong_password_shows_as_failed_registration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    password_file = tmp_path / "sip.secret"
    password_file.write_text("not-the-password\n")
    trunk_port = free_port()
    options = loopback_options(registrar=f"sip:127.0.0.1:{trunk_port}", username="standin",
                               password_file=password_file)

    async def scenario_run() -> Any:
        trunk = asyncio.create_task(run_sipp(
            ["-sf", scenario(tmp_path, "registrar", registrar(60, 0, "standin", "s3cret-pw")),
             "-i", "127.0.0.1", "-p", str(trunk_port), "-m", "1"], tmp_path, timeout_s=10))
        await asyncio.sleep(0.3)
        async with running(options) as endpoint:
            await _wait_for(lambda: endpoint.registration().state == "failed", 5)
            status = endpoint.registration()
        trunk.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trunk
        return status

    status = asyncio.run(scenario_run())
    assert (status.state, status.code) == ("failed", 403)


def test_missing_secret_is_a_clear_error_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from sip.endpoint import SipEndpoint
    from sip.options import SipConfigError

    monkeypatch.delenv("STANDIN_NO_SUCH_PASSWORD", raising=False)
    options = loopback_options(registrar="sip:127.0.0.1:5999", username="u",
                               password_env="STANDIN_NO_SUCH_PASSWORD")
    before = threading.active_count()
    loop = asyncio.new_event_loop()
    try:
        endpoint = SipEndpoint(options, lambda call: None, loop=loop)
        with pytest.raises(SipConfigError, match="STANDIN_NO_SUCH_PASSWORD is not set"):
            endpoint.start()
    finally:
        loop.close()
    assert threading.active_count() == before
    assert os.environ.get("STANDIN_NO_SUCH_PASSWORD") is None


async def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()
