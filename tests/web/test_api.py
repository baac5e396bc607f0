"""The JSON API on realistic rows: calls, messages, contacts, profiles, recordings, health, errors."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.store.postgres import both_backends
from tests.web.conftest import Site, add_call, add_contacts, make_site


@both_backends
def test_calls_paginated_newest_first(owner: Site) -> None:
    ids = [add_call(owner.context.db, n, urgency="high" if n == 3 else "normal") for n in range(5)]
    first = owner.client.get("/api/calls?limit=2").json()
    assert [c["id"] for c in first["items"]] == [ids[4], ids[3]]
    assert first["total"] == 5 and first["next_offset"] == 2 and first["prev_offset"] is None
    second = owner.client.get("/api/calls", params={"limit": 2, "offset": 2}).json()
    assert [c["id"] for c in second["items"]] == [ids[2], ids[1]]
    assert second["prev_offset"] == 0
    last = owner.client.get("/api/calls?limit=2&offset=4").json()
    assert [c["id"] for c in last["items"]] == [ids[0]] and last["next_offset"] is None
    call = second["items"][0]
    assert call["caller_name"] == "Caller 2" and call["caller_number"] == "+39065550002"
    assert call["started_at"] == "2026-11-20T09:20:00Z"
    assert call["message"]["urgency"] == "normal" and call["message"]["done"] is False
    assert owner.client.get("/api/calls?limit=0").status_code == 422
    assert owner.client.get("/api/calls?limit=201").status_code == 422
    assert "limit" in owner.client.get("/api/calls?limit=x").json()["error"]


@both_backends
def test_call_detail(owner: Site) -> None:
    call_id = add_call(owner.context.db, 7, urgency="high")
    detail = owner.client.get(f"/api/calls/{call_id}").json()
    assert detail["fragments"][0]["text"] == "Hi, this is Anna from the garage."
    reply = detail["bot_turns"][1]
    assert reply["cut_off"] is True
    assert reply["heard"] == "Thank you Anna. The delivery is confirmed for Tuesday, at"
    assert reply["intended"].endswith("at three o'clock.")
    assert reply["unheard"] == "three o'clock."
    assert [d["verdict"] for d in detail["decisions"]] == ["COMPLETE", "WAIT", "COMPLETE"]
    first = detail["latencies"][0]
    assert first["stt_ms"] == 120.0 and first["voice_to_voice_ms"] == 600.0
    assert detail["latencies"][1]["judge_ms"] is None
    assert detail["message"]["urgency"] == "high" and detail["message"]["deliveries"] == {"sent": 1}
    assert detail["recording"] is None
    assert "folder" not in detail and "has_folder" not in detail

    response = owner.client.get("/api/calls/999")
    assert response.status_code == 404 and response.json() == {"error": "there is no call 999"}


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x01\x00\x02\x00" * 1600)


def test_recording(owner: Site, tmp_path: Path) -> None:
    calls_dir = Path(owner.context.config.storage.calls_dir)
    _wav(calls_dir / "20261120-a" / "call.wav")
    _wav(tmp_path / "elsewhere" / "call.wav")
    inside = add_call(owner.context.db, 1, folder=str(calls_dir / "20261120-a"))
    outside = add_call(owner.context.db, 2, folder=str(tmp_path / "elsewhere"))
    escaping = add_call(owner.context.db, 3, folder=str(calls_dir / ".." / "elsewhere"))
    missing = add_call(owner.context.db, 4, folder=str(calls_dir / "gone"))

    assert owner.client.get(f"/api/calls/{inside}").json()["recording"] == f"/api/calls/{inside}/recording"
    response = owner.client.get(f"/api/calls/{inside}/recording")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    assert response.content[:4] == b"RIFF" and len(response.content) == 44 + 6400
    partial = owner.client.get(f"/api/calls/{inside}/recording", headers={"Range": "bytes=0-3"})
    assert partial.status_code == 206 and partial.content == b"RIFF"
    for call_id in (outside, escaping, missing):
        assert owner.client.get(f"/api/calls/{call_id}").json()["recording"] is None
        response = owner.client.get(f"/api/calls/{call_id}/recording")
        assert response.status_code == 404
        assert response.json() == {"error": f"there is no recording of call {call_id}"}
    owner.client.cookies.clear()
    assert owner.client.get(f"/api/calls/{inside}/recording").status_code == 401


def _inbox(site: Site, **params: Any) -> list[tuple[str, bool, int]]:
    items = site.client.get("/api/messages", params=params).json()["items"]
    return [(m["urgency"], m["done"], int(m["text"].rsplit("(", 1)[1].rstrip(").")) ) for m in items]


@both_backends
def test_inbox_order(owner: Site) -> None:
    db = owner.context.db
    for n, urgency, done in [(0, "high", True), (1, "normal", False), (2, "high", False), (3, "low", False),
                             (4, "normal", False), (5, "normal", True), (6, "high", False), (7, "low", True)]:
        add_call(db, n, urgency=urgency, done=done)
    add_call(db, 8, urgency=None)  # a call without a message
    expected = [("high", False, 6), ("high", False, 2), ("normal", False, 4), ("normal", False, 1),
                ("low", False, 3), ("high", True, 0), ("normal", True, 5), ("low", True, 7)]
    assert _inbox(owner) == expected
    assert _inbox(owner, view="open") == expected[:5]
    assert _inbox(owner, view="done") == expected[5:]
    pages = [_inbox(owner, limit=3, offset=o) for o in (0, 3, 6)]
    assert pages[0] + pages[1] + pages[2] == expected
    body = owner.client.get("/api/messages?limit=3&offset=3").json()
    assert body["total"] == 8 and body["next_offset"] == 6
    assert owner.client.get("/api/messages?view=nope").status_code == 422


@both_backends
def test_mark_done_and_reopen(owner: Site) -> None:
    add_call(owner.context.db, 1, urgency="high")
    add_call(owner.context.db, 2, urgency="normal")
    headers = {"X-CSRF-Token": owner.csrf}
    done = owner.client.post("/api/messages/1/done", headers=headers).json()
    assert done["done"] is True and done["done_at"] is not None
    again = owner.client.post("/api/messages/1/done", headers=headers).json()
    assert again["done_at"] == done["done_at"]
    assert _inbox(owner) == [("normal", False, 2), ("high", True, 1)]
    reopened = owner.client.post("/api/messages/1/reopen", headers=headers).json()
    assert reopened["done"] is False and reopened["done_at"] is None
    response = owner.client.post("/api/messages/42/done", headers=headers)
    assert response.status_code == 404 and response.json() == {"error": "there is no message 42"}


@both_backends
def test_profiles_crud(owner: Site) -> None:
    h = {"X-CSRF-Token": owner.csrf}
    created = owner.client.post("/api/profiles", headers=h, json={"name": "work", "manner": "brief",
                                                                  "silence_timeout_s": 12})
    assert created.status_code == 201
    profile = created.json()
    assert profile["name"] == "work" and profile["silence_timeout_s"] == 12.0 and profile["contacts"] == 0
    pid = profile["id"]
    assert owner.client.get(f"/api/profiles/{pid}").json()["manner"] == "brief"
    updated = owner.client.put(f"/api/profiles/{pid}", headers=h, json={"blocked": True}).json()
    assert updated["blocked"] is True and updated["manner"] == "brief"
    assert [p["name"] for p in owner.client.get("/api/profiles").json()["items"]] == ["work"]

    conflict = owner.client.post("/api/profiles", headers=h, json={"name": "Work"})
    assert conflict.status_code == 409 and "already exists" in conflict.json()["error"]
    invalid = owner.client.post("/api/profiles", headers=h, json={"name": "x", "colour": "red"})
    assert invalid.status_code == 422 and "colour" in invalid.json()["error"]
    assert owner.client.post("/api/profiles", headers=h, json=["not", "an", "object"]).status_code == 422
    assert owner.client.post("/api/profiles", headers=h, content=b"{oops").status_code == 422

    assert owner.client.delete(f"/api/profiles/{pid}", headers=h).status_code == 204
    missing = owner.client.get(f"/api/profiles/{pid}")
    assert missing.status_code == 404 and missing.json() == {"error": f"there is no profile {pid}"}
    assert owner.client.delete(f"/api/profiles/{pid}", headers=h).status_code == 404


@both_backends
def test_contacts_crud(owner: Site) -> None:
    ids = add_contacts(owner.context.db)
    h = {"X-CSRF-Token": owner.csrf}
    listed = owner.client.get("/api/contacts").json()["items"]
    assert [(c["name"], c["numbers"], c["profile"]) for c in listed] == [("Mum", ["+390611112222"], "family")]

    created = owner.client.post("/api/contacts", headers=h, json={
        "name": "Anna (garage)", "numbers": ["+39 06 3333 4444"], "profile": "sales", "notes": "the car"})
    assert created.status_code == 201, created.text
    anna = created.json()
    assert anna["numbers"] == ["+390633334444"] and anna["source"] == "manual"
    moved = owner.client.put(f"/api/contacts/{anna['id']}", headers=h, json={"profile": None}).json()
    assert moved["profile"] is None and moved["name"] == "Anna (garage)"
    taken = owner.client.post("/api/contacts", headers=h, json={"name": "Dup", "numbers": ["+390611112222"]})
    assert taken.status_code == 409 and "Mum" in taken.json()["error"]
    nameless = owner.client.post("/api/contacts", headers=h, json={"numbers": ["+390600000001"]})
    assert nameless.status_code == 422 and nameless.json() == {"error": "a contact needs a name"}
    assert owner.client.get(f"/api/contacts/{ids['mum']}").json()["notes"] == "Calls on Sundays"

    assert owner.client.delete(f"/api/contacts/{ids['mum']}", headers=h).status_code == 204
    assert owner.client.get(f"/api/contacts/{ids['mum']}").status_code == 404
    assert [c["name"] for c in owner.client.get("/api/contacts").json()["items"]] == ["Anna (garage)"]


def test_health(config, db) -> None:
    state: dict[str, Any] = {"sip": {"ok": True, "registered": True, "registrar": "sip:trunk.example"},
                             "models": {"ok": True, "stt": "whisper small"}, "ok": True, "calls_active": 1}
    site = make_site(config, db, status=lambda: state)
    assert site.client.get("/api/health").json() == {"status": "ok"}
    detail = site.client.get("/api/health", headers=site.bearer()).json()
    assert detail["status"] == "ok" and detail["database"]["ok"] is True
    assert detail["database"]["revision"] == db.revision()
    assert detail["sip"]["registrar"] == "sip:trunk.example" and detail["models"]["stt"] == "whisper small"
    assert detail["serve"] == {"ok": True, "calls_active": 1}
    assert site.client.get("/api/health", headers={"Authorization": "Bearer nope"}).json() == {"status": "ok"}

    state["sip"] = {"ok": False, "registered": False, "error": "403 Forbidden"}
    response = site.client.get("/api/health")
    assert response.status_code == 503 and response.json() == {"status": "degraded"}


def test_health_without_serve_and_with_a_broken_status(config, db) -> None:
    site = make_site(config, db)
    detail = site.client.get("/api/health", headers=site.bearer()).json()
    assert detail["status"] == "ok"
    assert detail["serve"] == {"running": False, "detail": "not running under standin serve"}

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret-ish detail")

    site = make_site(config, db, status=broken)
    response = site.client.get("/api/health", headers=site.bearer())
    assert response.status_code == 503
    assert "secret-ish" not in response.text and "RuntimeError" in response.text


def test_internal_errors_are_json_without_details(config, db, caplog) -> None:
    add_call(db, 1, caller_number="+39061234567")
    site = make_site(config, db)
    site.client = type(site.client)(site.client.app, raise_server_exceptions=False)
    with db.session() as s:
        s.execute(text("DROP TABLE turn_latencies"))
    response = site.client.get("/api/calls/1", headers=site.bearer())
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; the server log has the details"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "OperationalError" in logged and "turn_latencies" not in logged and "+3906" not in logged
    assert site.client.get("/api/health", headers=site.bearer()).json()["database"]["ok"] is True
    metrics = site.client.get("/metrics", headers=site.bearer()).text
    assert "standin_web_errors_total 1.0" in metrics
    assert "standin_database_up 0.0" in metrics


def test_unknown_api_path_is_json(owner: Site) -> None:
    response = owner.client.get("/api/nothing-here")
    assert response.status_code == 404 and response.json() == {"error": "not found"}
