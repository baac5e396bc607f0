"""The dashboard: screened calls marked as such, and the do-not-disturb switch behind the owner's login."""

from __future__ import annotations

import dataclasses

from server.config import OwnerConfig
from server.contacts import default_plan
from server.ringthrough import call_ring_options, dnd_file, do_not_disturb
from server.store.schema import Call
from tests.web.conftest import Site, add_call


def test_a_screened_call_is_marked_on_the_list_and_its_page(owner: Site) -> None:
    plain = add_call(owner.context.db, 1)
    screened = add_call(owner.context.db, 2)
    with owner.context.db.session() as s:
        call = s.get(Call, screened)
        assert call is not None
        call.ended_reason = "screened: recording"
    listing = owner.client.get("/calls").text
    assert listing.count('class="badge screened"') == 1
    assert 'class="badge screened"' in owner.client.get(f"/calls/{screened}").text
    assert 'class="badge screened"' not in owner.client.get(f"/calls/{plain}").text
    assert owner.client.get("/api/calls").json()["items"][0]["ended_reason"] == "screened: recording"


def test_do_not_disturb_is_switched_on_the_dashboard_and_stops_ring_through(owner: Site) -> None:
    config = dataclasses.replace(owner.context.config, owner=OwnerConfig(phone="sip:me@192.168.1.20"))
    owner.context.config = config
    assert not do_not_disturb(config) and "Turn do not disturb on" in owner.client.get("/status").text
    plan = default_plan(config)
    assert call_ring_options(config, plan, "+390655500001", can_dial=True).allowed

    response = owner.client.post("/do-not-disturb", data={"csrf_token": owner.csrf, "on": "1"},
                                 follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/status"
    assert do_not_disturb(config) and dnd_file(config).read_text() == "on\n"
    assert "Turn do not disturb off" in owner.client.get("/status").text
    ring = call_ring_options(config, plan, "+390655500001", can_dial=True)
    assert not ring.allowed and ring.why_not == "do not disturb"

    owner.client.post("/do-not-disturb", data={"csrf_token": owner.csrf, "on": "0"})
    assert not do_not_disturb(config)
    assert call_ring_options(config, plan, "+390655500001", can_dial=True).allowed


def test_the_switch_needs_the_owner_and_the_csrf_token(site: Site) -> None:
    assert site.client.post("/do-not-disturb", data={"on": "1"}, follow_redirects=False).status_code in (
        303, 401, 403)
    assert not do_not_disturb(site.context.config)
    site.login()
    assert site.client.post("/do-not-disturb", data={"on": "1"}).status_code == 403  # no CSRF token
    assert not do_not_disturb(site.context.config)
