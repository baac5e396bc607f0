"""/metrics: refused without credentials, and counts computed from the database."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete

from server.store.schema import Call, TurnLatency
from server.web.metrics import quantile
from tests.web.conftest import BASE, Site, add_call


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_need_credentials(site: Site) -> None:
    assert site.client.get("/metrics").status_code == 401
    assert site.client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = site.client.get("/metrics", headers=site.bearer())
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    site.login()
    assert site.client.get("/metrics").status_code == 200


def test_metrics_content(site: Site) -> None:
    db = site.context.db
    add_call(db, 1, urgency="high", deliveries=("sent", "failed"))
    add_call(db, 2, urgency="normal", done=True, deliveries=("pending",))
    add_call(db, 3, urgency="normal", deliveries=("pending", "sent"))
    add_call(db, 4, state="failed", urgency=None)
    with db.session() as s:
        s.add(Call(uid="live-one", state="live", started_at=BASE, error="",
                   latencies=[TurnLatency(caller_end_s=2.0, stt_ms=40.0, first_audio_s=4.0)]))
        s.get(Call, 4).error = "RuntimeError: the STT engine crashed"  # type: ignore[union-attr]

    samples = _samples(site.client.get("/metrics", headers=site.bearer()).text)
    assert samples[("standin_database_up", ())] == 1
    assert samples[("standin_calls", (("state", "ended"),))] == 3
    assert samples[("standin_calls", (("state", "failed"),))] == 1
    assert samples[("standin_calls", (("state", "live"),))] == 1
    assert samples[("standin_calls", (("state", "recovered"),))] == 0
    assert samples[("standin_calls_with_errors", ())] == 1
    assert samples[("standin_messages", (("state", "open"), ("urgency", "high")))] == 1
    assert samples[("standin_messages", (("state", "open"), ("urgency", "normal")))] == 1
    assert samples[("standin_messages", (("state", "done"), ("urgency", "normal")))] == 1
    assert samples[("standin_deliveries", (("state", "failed"),))] == 1
    assert samples[("standin_deliveries", (("state", "pending"),))] == 2
    assert samples[("standin_deliveries", (("state", "sent"),))] == 2
    assert samples[("standin_web_errors_total", ())] == 0

    # Four finished calls with two replies each (STT 120 and 150 ms); the live call's reply is not
    # counted until the call is over.
    def bucket(stage: str, le: str) -> float:
        return samples[("standin_turn_latency_seconds_bucket", (("le", le), ("stage", stage)))]

    assert bucket("stt", "0.05") == 0 and bucket("stt", "0.1") == 0
    assert bucket("stt", "0.15") == 8 and bucket("stt", "+Inf") == 8
    assert samples[("standin_turn_latency_seconds_count", (("stage", "stt"),))] == 8
    assert abs(samples[("standin_turn_latency_seconds_sum", (("stage", "stt"),))] - 1.08) < 1e-9
    assert samples[("standin_turn_latency_seconds_count", (("stage", "judge"),))] == 4
    assert samples[("standin_turn_latency_seconds_count", (("stage", "llm_first_clause"),))] == 4
    # voice to voice: 600 ms for every finished call's reply.
    assert bucket("voice_to_voice", "0.5") == 0 and bucket("voice_to_voice", "0.75") == 8
    assert bucket("voice_to_voice", "5") == 8
    recent = ("standin_turn_latency_recent_seconds", (("quantile", "0.5"), ("stage", "voice_to_voice")))
    assert abs(samples[recent] - 0.6) < 1e-9
    recent = ("standin_turn_latency_recent_seconds", (("quantile", "0.95"), ("stage", "voice_to_voice")))
    assert abs(samples[recent] - 2.0) < 1e-9  # the live call's reply is among the recent ones


def test_metrics_on_an_empty_database(site: Site) -> None:
    samples = _samples(site.client.get("/metrics", headers=site.bearer()).text)
    assert samples[("standin_calls", (("state", "ended"),))] == 0
    assert samples[("standin_turn_latency_seconds_count", (("stage", "stt"),))] == 0
    assert samples[("standin_turn_latency_seconds_sum", (("stage", "stt"),))] == 0
    assert not any(name == "standin_turn_latency_recent_seconds" for name, _ in samples)


def test_quantile() -> None:
    assert quantile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert quantile([float(v) for v in range(1, 101)], 0.95) == 95.0
    assert quantile([7.0], 0.95) == 7.0


def test_latency_totals_follow_added_and_replaced_rows(site: Site) -> None:
    db = site.context.db

    def stt() -> tuple[float, float]:
        samples = _samples(site.client.get("/metrics", headers=site.bearer()).text)
        return (samples[("standin_turn_latency_seconds_count", (("stage", "stt"),))],
                samples[("standin_turn_latency_seconds_bucket", (("le", "5"), ("stage", "stt")))]
                - samples[("standin_turn_latency_seconds_bucket", (("le", "2.5"), ("stage", "stt")))])

    add_call(db, 1)
    assert stt() == (2, 0)
    live = add_call(db, 2, state="live")
    assert stt() == (2, 0)
    add_call(db, 3)
    assert stt() == (4, 0)
    with db.session() as s:  # the live call ends: its rows are replaced by the final ones
        s.execute(delete(TurnLatency).where(TurnLatency.call_id == live))
        s.add(TurnLatency(call_id=live, caller_end_s=1.0, stt_ms=3000.0, first_audio_s=2.0))
        s.get(Call, live).state = "ended"  # type: ignore[union-attr]
    assert stt() == (5, 1)
    with db.session() as s:
        s.execute(delete(Call).where(Call.id == live))
    assert stt() == (4, 0)
    with db.session() as s:
        s.execute(delete(Call))
    assert stt() == (0, 0)


def test_replies_into_a_pause_and_late_replies_are_counted_per_call_and_in_metrics(site: Site) -> None:
    from server.store.schema import Fragment

    db = site.context.db
    add_call(db, 1)  # replies 0.6 s after the caller stopped, and the caller waits for them to finish
    with db.session() as s:
        call = Call(uid="eager-and-late", state="ended", started_at=BASE, error="", source="sip")
        call.fragments = [Fragment(start_s=1.0, end_s=3.0, text="I need three things."),
                          Fragment(start_s=3.9, end_s=5.0, text="The quote."),
                          Fragment(start_s=9.0, end_s=10.0, text="And the invoice.")]
        call.latencies = [TurnLatency(caller_end_s=3.0, first_audio_s=3.5),  # the caller went on at 3.9
                          TurnLatency(caller_end_s=10.0, first_audio_s=12.6)]  # 2.6 s of dead air
        s.add(call)
        s.flush()
        eager = call.id
    samples = _samples(site.client.get("/metrics", headers=site.bearer()).text)
    assert samples[("standin_replies_total", (("kind", "all"),))] == 4
    assert samples[("standin_replies_total", (("kind", "answered_into_pause"),))] == 1
    assert samples[("standin_replies_total", (("kind", "waited_over_2s"),))] == 1
    detail = site.client.get(f"/api/calls/{eager}", headers=site.bearer()).json()
    assert detail["turn_figures"] == {"replies": 2, "answered_into_pause": 1, "waited_over_2s": 1}
    site.login()
    page = site.client.get(f"/calls/{eager}").text
    assert "1 into a pause" in page and "1 after over 2 s" in page
