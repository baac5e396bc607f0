"""A call's ring-through attempt on its page and in the JSON API."""

from __future__ import annotations

import re
from typing import Any

from server.store.db import Database
from server.store.schema import Call
from tests.web.conftest import Site, add_call

ACCEPTED: dict[str, Any] = {
    "trigger": "keypad", "method": "bridge", "started_s": 12.5, "rang_s": 12.52, "answered_s": 16.1,
    "accepted_s": 19.4, "outcome": "accepted", "ended_s": 95.0, "bridged_s": 75.6, "owner_status": 200,
    "wall_ms": {"ringing_ms": 14.2, "answered_ms": 3600.0}}


def call_with_ring(db: Database, n: int, ring: dict[str, Any] | None) -> int:
    call_id = add_call(db, n)
    with db.session() as s:
        call = s.get(Call, call_id)
        assert call is not None
        call.ring_through = ring
    return call_id


def test_the_page_and_the_api_show_the_attempt_its_outcome_and_timings(owner: Site) -> None:
    call_id = call_with_ring(owner.context.db, 1, ACCEPTED)
    assert owner.client.get(f"/api/calls/{call_id}").json()["ring_through"] == ACCEPTED
    page = owner.client.get(f"/calls/{call_id}").text
    section = re.search(r'<section class="card ring-through outcome-accepted">.*?</section>', page, re.S)
    assert section, "the page has no ring-through section"
    text = re.sub(r"<[^>]+>", " ", section.group(0))
    text = " ".join(text.split())
    assert "Putting the caller through: accepted" in text
    assert "asked by the caller pressing 0" in text and "(14 ms after the request)" in text
    assert "you took the call" in text and "SIP 200" in text and "gave up" not in text


def test_a_missed_attempt_says_when_standin_gave_up_and_a_call_without_one_has_none(owner: Site) -> None:
    missed = {"trigger": "request", "method": "bridge", "started_s": 5.0, "rang_s": 5.02, "ended_s": 25.0,
              "outcome": "no answer", "owner_status": 480}
    page = owner.client.get(f"/calls/{call_with_ring(owner.context.db, 3, missed)}").text
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "outcome-no-answer" in page and "gave up 0:25" in text
    assert "asked by the caller asking for you" in text
    plain = call_with_ring(owner.context.db, 4, None)
    assert "ring-through" not in owner.client.get(f"/calls/{plain}").text
    assert owner.client.get(f"/api/calls/{plain}").json()["ring_through"] is None
