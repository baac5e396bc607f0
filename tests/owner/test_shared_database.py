"""Two standins sharing one database (Postgres is how they do): each message is stored once, with its
deliveries once, whichever node gets there first, and a delivery one node is claiming is left alone by
the other. The race is made to happen at the exact point it can, by a hook, not by timing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine

import server.notify
from models.judge_rules import RulesJudge
from models.llm_script import ScriptLlm
from server.config import NotifyConfig, load
from server.notify import Outbox, channel
from server.owner import Owner
from server.runtime import Engines
from server.store.db import Database, open_database
from server.store.schema import Call, Delivery, Fragment, Message, utcnow
from tests.fakes import SpanStt, SpanVad, ToneTts
from tests.store.postgres import postgres_only

CHANNELS = [channel("json://127.0.0.1:9/first"), channel("json://127.0.0.1:9/second")]


class CountingOutbox(Outbox):
    def __init__(self, db: Database) -> None:
        super().__init__(db, NotifyConfig(), channels=CHANNELS)
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def owner_of(db: Database, node: str) -> tuple[Owner, CountingOutbox]:
    outbox = CountingOutbox(db)
    engines = Engines(SpanVad([]), SpanStt([]), RulesJudge(), ScriptLlm(["Go on."]), ToneTts())
    return Owner(load(None), db, engines, outbox=outbox, node=node), outbox


@pytest.fixture
def node_b(database_url: str) -> Iterator[Database]:
    """The same database as `db`, through a pool of its own, as another standin sees it."""
    database = open_database(database_url)
    yield database
    database.close()


def test_two_nodes_storing_one_calls_message_keep_one_with_its_deliveries(
        db: Database, node_b: Database) -> None:
    with db.session() as s:
        call = Call(uid="20260101-100000-call-1", caller_number="+393331234567", state="ended",
                    fragments=[Fragment(start_s=0.5, end_s=2.0, text="Please call me back.")])
        s.add(call)
    owner_a, outbox_a = owner_of(db, "box-1")
    owner_b, outbox_b = owner_of(node_b, "box-2")

    raced: list[int | None] = []

    def a_stores_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # B has looked and found no message; A stores its own before B's insert reaches the database.
        if statement.startswith("INSERT INTO messages") and not raced:
            raced.append(owner_a.make_message(call.id))

    event.listen(node_b.engine, "before_cursor_execute", a_stores_first)
    stored_by_b = owner_b.make_message(call.id)

    [stored_by_a] = raced
    assert stored_by_a is not None and stored_by_b == stored_by_a  # B answers with A's message
    with db.session() as s:
        [message] = s.scalars(select(Message)).all()
        deliveries = s.scalars(select(Delivery)).all()
    assert message.id == stored_by_a and message.text == "Please call me back."
    assert sorted(d.channel for d in deliveries) == sorted(c.id for c in CHANNELS)  # A's, once each
    assert {d.message_id for d in deliveries} == {message.id}
    assert (outbox_a.woken, outbox_b.woken) == (1, 0)
    assert owner_b.make_message(call.id) == message.id  # and later looks find it


def guarded(url: str) -> Database:
    """Another node's database, whose statements give up on a row lock after a while instead of waiting
    forever: with the claim skipping locked rows they never wait at all."""
    engine: Engine = create_engine(url, connect_args={"options": "-c lock_timeout=10s"})
    return Database(engine)


@postgres_only
def test_a_claim_another_node_is_making_is_left_to_it(
        db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    now = utcnow()
    with db.session() as s:
        message = Message(call=Call(uid="20260101-100000-call-1"), text="Please call me back.")
        message.deliveries = [  # a send whose process died (its lease ran out), and one due now
            Delivery(channel=CHANNELS[0].id, label=CHANNELS[0].label, state="sending", attempts=1,
                     due_at=now - timedelta(seconds=5)),
            Delivery(channel=CHANNELS[1].id, label=CHANNELS[1].label, state="pending", attempts=0,
                     due_at=now - timedelta(seconds=1))]
        s.add(message)

    inside, release = threading.Event(), threading.Event()
    render = server.notify.render

    def render_slowly(message: Message) -> Any:  # node A holds its claim open here
        inside.set()
        release.wait(60)
        return render(message)

    monkeypatch.setattr(server.notify, "render", render_slowly)
    node_a = Outbox(db, NotifyConfig(), channels=CHANNELS, clock=lambda: now)
    claimed_by_a: list[Any] = []
    worker = threading.Thread(target=lambda: claimed_by_a.extend(node_a._claim()), daemon=True)
    worker.start()
    other = guarded(database_url)
    try:
        assert inside.wait(60), "node A never claimed"
        node_b = Outbox(other, NotifyConfig(), channels=CHANNELS, clock=lambda: now)
        assert node_b._claim() == []  # both are A's: neither reset nor taken, and no waiting for A
    finally:
        release.set()
        worker.join(60)
        other.close()
    assert not worker.is_alive()
    assert sorted(job.channel.id for job in claimed_by_a) == sorted(c.id for c in CHANNELS)
    with db.session() as s:
        rows = {d.channel: (d.state, d.attempts) for d in s.scalars(select(Delivery))}
    assert rows == {CHANNELS[0].id: ("sending", 2), CHANNELS[1].id: ("sending", 1)}
