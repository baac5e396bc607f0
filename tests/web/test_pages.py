"""The server-rendered pages: inbox, calls, a call's transcript and waterfall, contacts, profiles, status."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from server.web.pages import chart_scale, safe_next, waterfall
from server.web.queries import unheard
from tests.web.conftest import PASSWORD, Site, add_call, add_contacts, make_site


def test_login_page_and_next(site: Site) -> None:
    page = site.client.get("/login?next=/calls/3")
    assert page.status_code == 200 and 'type="password"' in page.text
    assert 'name="next" value="/calls/3"' in page.text
    redirect = site.client.get("/calls/3?x=1", follow_redirects=False).headers["location"]
    assert redirect == "/login?next=%2Fcalls%2F3%3Fx%3D1"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = site.client.post("/login", data={"password": PASSWORD, "next": evil},
                                    follow_redirects=False)
        assert response.headers["location"] == "/messages", evil
        site.client.cookies.clear()


def test_safe_next() -> None:
    assert safe_next("/calls?offset=50") == "/calls?offset=50"
    assert safe_next("calls") == safe_next("//x") == safe_next(None) == "/messages"


def test_security_headers(site: Site) -> None:
    for response in (site.client.get("/login"), site.client.get("/api/calls")):
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    css = site.client.get("/static/style.css")
    assert css.status_code == 200 and "cache-control" not in css.headers
    assert "http" not in re.sub(r"http://www\.w3\.org", "", css.text)  # no external assets


def test_inbox_page(owner: Site) -> None:
    db = owner.context.db
    add_call(db, 1, urgency="normal")
    add_call(db, 2, urgency="high", deliveries=("failed",))
    add_call(db, 3, urgency="low", done=True)
    add_call(db, 4, urgency="normal")
    page = owner.client.get("/messages").text
    assert "3 open" in page
    order = [int(n) for n in re.findall(r'id="message-(\d+)"', page)]
    assert order == [2, 4, 1]  # urgent on top, then newest first; done ones are not in "open"
    assert "1 delivery failed" in page
    assert 'href="tel:+39065550002"' in page
    assert [int(n) for n in re.findall(r'id="message-(\d+)"', owner.client.get("/messages?view=all").text)
            ] == [2, 4, 1, 3]
    assert "Reopen" in owner.client.get("/messages?view=done").text

    response = owner.client.post("/messages/2/done", data={"csrf_token": owner.csrf,
                                                           "back": "/messages?view=open&offset=0"},
                                 follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/messages?view=open&offset=0"
    assert [int(n) for n in re.findall(r'id="message-(\d+)"', owner.client.get("/messages").text)] == [4, 1]
    response = owner.client.post("/messages/4/done", data={"csrf_token": owner.csrf, "back": "//evil"},
                                 follow_redirects=False)
    assert response.headers["location"] == "/messages"
    assert owner.client.post("/messages/99/done", data={"csrf_token": owner.csrf}).status_code == 404


def test_inbox_pagination_links(owner: Site) -> None:
    for n in range(55):
        add_call(owner.context.db, n)
    first = owner.client.get("/messages").text
    assert first.count('class="message ') == 50 and "1–50 of 55" in first
    assert 'href="/messages?view=open&amp;offset=50"' in first
    second = owner.client.get("/messages?view=open&offset=50").text
    assert second.count('class="message ') == 5 and "51–55 of 55" in second


def test_calls_page(owner: Site) -> None:
    for n in range(3):
        add_call(owner.context.db, n, caller_name="Anna Rossi" if n == 1 else "")
    add_call(owner.context.db, 3, state="failed", urgency=None)
    page = owner.client.get("/calls").text
    assert [int(n) for n in re.findall(r'href="/calls/(\d+)"', page)] == [4, 3, 2, 1]
    assert "Anna Rossi" in page and "state-failed" in page and "0:42" in page


def test_call_page_transcript_audio_and_waterfall(owner: Site) -> None:
    calls_dir = Path(owner.context.config.storage.calls_dir)
    (calls_dir / "c1").mkdir(parents=True)
    (calls_dir / "c1" / "call.wav").write_bytes(b"RIFF")
    call_id = add_call(owner.context.db, 1, urgency="high", folder=str(calls_dir / "c1"))
    page = owner.client.get(f"/calls/{call_id}").text
    # Caller fragments and bot turns interleave in time order.
    order = [page.index(s) for s in ("Hello, you have reached", "Hi, this is Anna", "Thank you Anna",
                                     "Wait, it is about your car", "Call me back on", "I will pass it on")]
    assert order == sorted(order)
    # The cut-off turn shows what was heard, the mark, and what was meant but never heard.
    assert re.search(r"confirmed for Tuesday, at <mark class=\"cut\"[^>]*>\[cut off\]</mark> "
                     r"<del class=\"unheard\"[^>]*>three o&#39;clock.</del>", page)
    assert f'<audio controls preload="metadata" src="/api/calls/{call_id}/recording">' in page
    svgs = re.findall(r'<svg class="waterfall".*?</svg>', page, re.S)
    assert len(svgs) == 2
    first = svgs[0]
    for label in ("STT", "judge", "LLM first token", "TTS first audio"):
        assert f">{label}</text>" in first
    assert len(re.findall(r'<rect class="bar stage-\d"', first)) == 4
    assert 'class="bar clause"' in first and '<line class="v2v"' in first
    assert "<title>STT: 120 ms</title>" in first and "<title>LLM first clause: 140 ms</title>" in first
    assert "first audio after <strong>600 ms</strong>" in page
    assert "not measured" in svgs[1]  # the second reply has no judge time
    assert "turn WAIT" in page and "p(complete) 0.22" in page
    assert "Mark done" in page


def test_call_page_escapes_what_callers_say(owner: Site) -> None:
    call_id = add_call(owner.context.db, 1, caller_name="<script>alert(1)</script>")
    page = owner.client.get(f"/calls/{call_id}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert owner.client.get("/calls/999").status_code == 404
    assert "there is no call 999" in owner.client.get("/calls/999").text


def test_waterfall_geometry() -> None:
    lat: dict[str, Any] = {"caller_end_s": 1.0, "stt_ms": 100.0, "judge_ms": 20.0, "llm_first_token_ms": 80.0,
                           "llm_first_clause_ms": 150.0, "tts_first_audio_ms": 60.0, "first_audio_s": 1.5,
                           "voice_to_voice_ms": 500.0}
    scale = chart_scale([lat])
    assert scale == (500, 100)
    chart = waterfall(lat, scale)
    stt, judge, llm, tts = chart["rows"]
    assert stt["x"] == 130 and stt["width"] == 80.0  # 100 of 500 ms on 400 px
    assert judge["x"] == 210 and llm["x"] == 226
    assert llm["clause_width"] == 120.0
    assert tts["x"] == 226 + 120  # TTS starts when the first clause is ready
    assert chart["v2v_x"] == 530
    assert [t["label"] for t in chart["ticks"]] == ["0", "100", "200", "300", "400", "500"]
    assert chart_scale([{**lat, "voice_to_voice_ms": 1730.0}]) == (2000, 500)


def test_unheard() -> None:
    assert unheard("The delivery is on Tuesday, at", "The delivery is on Tuesday, at three.") == "three."
    assert unheard("The delivery is on Tuesday, at ... [cut off]", "The delivery is on Tuesday, at three."
                   ) == "three."
    assert unheard("", "Hello there.") == "Hello there."
    assert unheard("Something else", "Hello there.") == "Hello there."


def test_contacts_pages(owner: Site) -> None:
    ids = add_contacts(owner.context.db)
    page = owner.client.get("/contacts").text
    assert "Mum" in page and "+390611112222" in page and "family" in page
    assert "Mum" not in owner.client.get("/contacts?search=nobody").text
    form = owner.client.get("/contacts/new").text
    assert '<option value="family">' in form and '<option value="sales">' in form

    response = owner.client.post("/contacts", data={"csrf_token": owner.csrf, "name": "Anna",
                                                    "numbers": "+39 06 3333 4444\n+39 333 1234567",
                                                    "profile": "sales", "notes": ""}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/contacts"
    anna = next(c for c in owner.client.get("/api/contacts").json()["items"] if c["name"] == "Anna")
    assert anna["numbers"] == ["+390633334444", "+393331234567"] and anna["profile"] == "sales"

    edit = owner.client.get(f"/contacts/{anna['id']}").text
    assert '<option value="sales" selected>' in edit and "+390633334444\n+393331234567" in edit
    response = owner.client.post(f"/contacts/{anna['id']}", data={
        "csrf_token": owner.csrf, "name": "Anna B.", "numbers": "+390633334444", "profile": "", "notes": "x"},
        follow_redirects=False)
    assert response.status_code == 303
    assert owner.client.get(f"/api/contacts/{anna['id']}").json()["profile"] is None

    clash = owner.client.post("/contacts", data={"csrf_token": owner.csrf, "name": "Copy",
                                                 "numbers": "+390611112222", "profile": ""})
    assert clash.status_code == 409 and "already belongs to" in clash.text
    assert 'value="Copy"' in clash.text  # what was typed comes back
    empty = owner.client.post("/contacts", data={"csrf_token": owner.csrf, "name": "No number",
                                                 "numbers": ""})
    assert empty.status_code == 422

    response = owner.client.post(f"/contacts/{ids['mum']}/delete", data={"csrf_token": owner.csrf},
                                 follow_redirects=False)
    assert response.status_code == 303
    assert owner.client.get(f"/contacts/{ids['mum']}").status_code == 404
    assert owner.client.post(f"/contacts/{ids['mum']}/delete", data={"csrf_token": "x"}).status_code == 403


def test_profiles_pages(owner: Site) -> None:
    ids = add_contacts(owner.context.db)
    page = owner.client.get("/profiles").text
    assert "family" in page and "ends sales calls" in page and "20 s" in page
    new = owner.client.get("/profiles/new").text
    assert 'action="/profiles"' in new and 'name="backchannels" checked' in new
    assert 'name="blocked" checked' not in new
    response = owner.client.post("/profiles", data={"csrf_token": owner.csrf, "name": "night",
                                                    "greeting": "", "manner": "quiet", "language": "en",
                                                    "silence_timeout_s": "8", "blocked": "on"},
                                 follow_redirects=False)
    assert response.status_code == 303
    night = next(p for p in owner.client.get("/api/profiles").json()["items"] if p["name"] == "night")
    assert night["blocked"] is True and night["backchannels"] is False and night["silence_timeout_s"] == 8.0

    edit = owner.client.get(f"/profiles/{ids['family']}").text
    assert 'value="family"' in edit and 'name="backchannels" checked' in edit
    bad = owner.client.post(f"/profiles/{ids['family']}", data={"csrf_token": owner.csrf, "name": "family",
                                                               "silence_timeout_s": "soon"})
    assert bad.status_code == 422 and "silence_timeout_s must be a number" in bad.text
    assert 'value="soon"' in bad.text
    bad_language = owner.client.post("/profiles", data={"csrf_token": owner.csrf, "name": "x",
                                                        "language": "English"})
    assert bad_language.status_code == 422 and "language must be a code" in bad_language.text

    response = owner.client.post(f"/profiles/{ids['family']}/delete", data={"csrf_token": owner.csrf},
                                 follow_redirects=False)
    assert response.status_code == 303
    assert owner.client.get(f"/api/contacts/{ids['mum']}").json()["profile"] is None


def test_status_page(config, db) -> None:
    state = {"sip": {"ok": False, "registered": False, "registrar": "sip:trunk.example", "error": "timeout"},
             "models": {"ok": True, "stt": "whisper small (cpu, int8)", "llm": "qwen2.5-1.5b"}, "ok": True}
    add_call(db, 1, deliveries=("failed", "pending"))
    site = make_site(config, db, status=lambda: state)
    site.login()
    page = site.client.get("/status").text
    assert "degraded" in page and "sip:trunk.example" in page and "whisper small (cpu, int8)" in page
    assert "ntfy://***/0" in page and "HTTP 503" in page
    assert re.search(r"<dt>pending</dt>\s*<dd>1</dd>", page)
    assert re.search(r"<dt>ended</dt>\s*<dd>1</dd>", page)


def test_nav_links_and_logout_form(owner: Site) -> None:
    page = owner.client.get("/messages").text
    for href in ("/messages", "/calls", "/contacts", "/profiles", "/status", "/call"):
        assert f'href="{href}"' in page
    assert f'<input type="hidden" name="csrf_token" value="{owner.csrf}">' in page
    assert owner.client.get("/", follow_redirects=False).headers["location"] == "/messages"
