"""Whole calls on real weights (the test set: whisper tiny.en hears, the Qwen2.5-Coder 0.5B judges and
replies and writes the message, piper speaks with its word clock): the caller's real words reach the
owner's message, through the owner path fed from a recording and through a real SIP call."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile
from sqlalchemy import select

from server.owner import Owner
from server.serve import answer
from server.store.db import open_database
from server.store.schema import Call, Message
from tests.real_models import real_config, speak
from tests.server.owner_kit import WavTransport

pytestmark = pytest.mark.slow

GREETING_S = 6.0  # the caller starts after the greeting
LINE = "Hi, this is Anna from the bakery. Please ask Marco to call me back about the invoice."
KEYWORDS = ("anna", "bakery", "marco", "invoice")


def heard(summary: dict[str, Any]) -> str:
    return " ".join(f["text"] for f in summary["caller_fragments"] if f["text"]).lower()


def check_call(summary: dict[str, Any], database: str) -> None:
    said = heard(summary)
    assert sum(k in said for k in KEYWORDS) >= 3, said  # whisper heard the caller
    replies = [b for b in summary["bot_turns"] if b["kind"] == "reply" and b["start_s"] is not None]
    assert replies, summary["bot_turns"]  # the model answered, and piper spoke it with its word clock
    assert all(w["end_s"] > w["start_s"] for b in replies for w in b["words"]), replies
    kinds = {e["role"]: e["kind"] for e in summary["engines"]}
    assert (kinds["stt"], kinds["llm"], kinds["tts"]) == ("whisper", "llama_cpp", "piper+espeak"), kinds
    db = open_database(database)
    try:
        with db.session() as s:
            call = s.scalars(select(Call)).one()
            message = s.scalars(select(Message)).one()
            assert message.call_id == call.id
            text = message.text.lower()
            assert "invoice" in text or "bakery" in text, (message.source, message.text)
    finally:
        db.close()


def test_a_call_on_real_models_leaves_the_callers_words(tmp_path: Path) -> None:
    from server.engines import build_engines, warm_up

    config = real_config(tmp_path)
    db = open_database(config.storage.database)
    engines = build_engines(config)
    warm_up(engines)
    owner = Owner(config, db, engines)
    transport = WavTransport(speak(LINE, lead_s=GREETING_S, tail_s=1.0), speed=1.0, tail_s=8.0)

    async def call() -> dict[str, Any]:
        owner.start()
        try:
            summary = await answer(transport, owner.engines, config, owner.calls_dir, owner=owner)
            await asyncio.to_thread(owner.flush, 120)
            return summary
        finally:
            await asyncio.to_thread(owner.stop)

    try:
        summary = asyncio.run(call())
    finally:
        db.close()
    check_call(summary, config.storage.database)


def served_over_sip(config: Any, phone: Callable[[str], Awaitable[None]]) -> list[dict[str, Any]]:
    """Run `phone(address)` (a caller dialling standin's UDP address) against a SIP endpoint whose calls
    go through `answer` with an Owner on `config`'s real engines; the summaries, once messages are out."""
    from server.engines import build_engines, warm_up
    from sip.endpoint import SipEndpoint
    from tests.sip.endpoint_kit import loopback_options

    db = open_database(config.storage.database)
    engines = build_engines(config)
    warm_up(engines)
    owner = Owner(config, db, engines)
    summaries: list[dict[str, Any]] = []

    async def on_call(call: Any) -> None:
        summaries.append(await answer(call, engines, config, owner.calls_dir, owner=owner))

    async def run() -> None:
        owner.start()
        endpoint = SipEndpoint(loopback_options(), on_call, loop=asyncio.get_running_loop())
        endpoint.start()
        try:
            await phone(endpoint.addresses["udp"])
            for _ in range(200):
                if summaries:
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(owner.flush, 120)
        finally:
            await asyncio.to_thread(endpoint.stop)
            await asyncio.to_thread(owner.stop)

    try:
        asyncio.run(run())
    finally:
        db.close()
    return summaries


def test_a_sip_call_on_real_models_leaves_the_callers_words(tmp_path: Path) -> None:
    from tests.sip.endpoint_kit import require_pjsua2
    from tests.sip.test_live_calls import pjsua2_call

    require_pjsua2()
    config = real_config(tmp_path)
    wav = tmp_path / "caller.wav"
    audio = speak(LINE, lead_s=GREETING_S, tail_s=0.5)
    soundfile.write(wav, audio, 16000, subtype="PCM_16")

    async def phone(address: str) -> None:
        await pjsua2_call(address, wav, tmp_path / "phone", len(audio) / 16000 + 9.0)

    summaries = served_over_sip(config, phone)
    assert len(summaries) == 1, "the SIP call was not answered"
    print("heard:", heard(summaries[0]), file=sys.stderr)
    check_call(summaries[0], config.storage.database)


def test_sipps_sample_recording_leaves_no_invented_words_on_real_models(tmp_path: Path) -> None:
    # tiny.en once wrote "Please join me in the comments below." for g711a.pcap (speech in another
    # language), and that became the owner's message.
    from tests.sip.endpoint_kit import require_pjsua2
    from tests.sip.sipp import free_port, pcap_folder, run_sipp

    require_pjsua2()
    pcap_folder(tmp_path)
    config = real_config(tmp_path, call={"greeting": "Hello."})

    async def phone(address: str) -> None:
        args = ["-sn", "uac_pcap", address, "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1",
                "-mp", str(free_port())]
        result = await run_sipp(args, tmp_path, timeout_s=40)
        assert result.ok, result.output

    [summary] = served_over_sip(config, phone)
    assert heard(summary) == "", summary["caller_fragments"]
    db = open_database(config.storage.database)
    try:
        with db.session() as s:
            # no words heard, none invented: at most the note that someone spoke and was not made out
            for message in s.scalars(select(Message)):
                assert (message.source, message.transcript) == ("standin", "")
                assert message.text.startswith("The caller spoke for about ")
                assert "none of it could be made out" in message.text
    finally:
        db.close()
