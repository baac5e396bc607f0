"""Prometheus metrics at GET /metrics, computed from the database at each scrape by a custom collector.

The latency histograms count the replies of every call that is over (a live call's rows are replaced
by its final ones when it ends), cumulatively, as Prometheus expects. They are kept in memory and
brought up to date from the rows added since the last scrape; when the rows counted changed in any
other way (a call deleted or recovered) they are counted again from scratch. The "recent" gauges give
the median and p95 of the last replies, live calls' included, for a quick look.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Select, case, func, literal, select, union_all
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.store.db import Database
from server.store.schema import Call, TurnLatency
from server.web import queries
from server.web.auth import OwnerDep

log = logging.getLogger(__name__)

BUCKETS_MS = (25, 50, 100, 150, 200, 300, 500, 750, 1000, 1500, 2500, 5000)
RECENT_TURNS = 200
STAGES: dict[str, Any] = {
    "stt": TurnLatency.stt_ms,
    "judge": TurnLatency.judge_ms,
    "llm_first_token": TurnLatency.llm_first_token_ms,
    "llm_first_clause": TurnLatency.llm_first_clause_ms,
    "tts_first_audio": TurnLatency.tts_first_audio_ms,
    "voice_to_voice": (TurnLatency.first_audio_s - TurnLatency.caller_end_s) * 1000,
}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def _over(query: _Query) -> _Query:
    """`query` on the turn_latencies rows of the calls that are over."""
    over = Call.state != "live"
    return query.select_from(TurnLatency).join(Call, Call.id == TurnLatency.call_id).where(over)


class LatencyTotals:
    """Each stage's count, sum and per-bucket counts over the turn_latencies rows seen so far."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.rows = 0  # rows counted in the totals
        self.last_id = 0  # ... all of them with ids up to this one
        self.count = dict.fromkeys(STAGES, 0)
        self.sum_ms = dict.fromkeys(STAGES, 0.0)
        self.buckets = {stage: [0] * (len(BUCKETS_MS) + 1) for stage in STAGES}  # the last one: above all

    def refresh(self, session: Session) -> None:
        with self._lock:
            total, newer, top = session.execute(_over(select(
                func.count(), func.count(case((TurnLatency.id > self.last_id, 1))), func.max(TurnLatency.id),
            ))).one()
            if total - newer != self.rows:
                self._reset()  # rows went away: count everything again
            if top is not None and top > self.last_id:
                self._add(session, self.last_id, top)

    def _add(self, session: Session, after: int, upto: int) -> None:
        in_range = (TurnLatency.id > after) & (TurnLatency.id <= upto)
        parts = [_over(select(literal(""), literal(0), func.count(), literal(0.0))).where(in_range)]
        for stage, expr in STAGES.items():
            bucket = case(*[(expr <= b, i) for i, b in enumerate(BUCKETS_MS)], else_=len(BUCKETS_MS))
            parts.append(_over(select(literal(stage), bucket, func.count(), func.sum(expr)))
                         .where(in_range, expr.is_not(None)).group_by(bucket))
        for stage, index, count, sum_ms in session.execute(union_all(*parts)):
            if stage == "":
                self.rows += count
                continue
            self.count[stage] += count
            self.sum_ms[stage] += sum_ms or 0.0
            self.buckets[stage][index] += count
        self.last_id = upto

    def histogram(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "standin_turn_latency_seconds", "Per reply: each stage's time, and from the caller's end of "
            "speech to the bot's first audio (voice_to_voice)", labels=["stage"])
        for stage in STAGES:
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKETS_MS, self.buckets[stage], strict=False):
                cumulative += count
                buckets.append((f"{bound / 1000:g}", float(cumulative)))
            family.add_metric([stage], [*buckets, ("+Inf", float(self.count[stage]))],
                              sum_value=self.sum_ms[stage] / 1000)
        return family


class DatabaseCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db
        self.latencies = LatencyTotals()

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration; every scrape asks the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("standin_database_up", "1 when the database answered this scrape")
        try:
            metrics = self._read()
        except SQLAlchemyError as exc:
            log.error("metrics: the database did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self) -> list[Metric]:
        with self.db.session() as session:
            counts = queries.counts(session)
            groups = queries.inbox_groups(session)
            errored = session.scalar(select(func.count()).select_from(Call).where(Call.error != "")) or 0
            self.latencies.refresh(session)
            figures = queries.turn_figures(session, over_only=True)
            recent = session.execute(select(*STAGES.values()).order_by(TurnLatency.id.desc())
                                     .limit(RECENT_TURNS)).all()
        out: list[Metric] = []
        calls = GaugeMetricFamily("standin_calls", "Stored calls by state", labels=["state"])
        for state in sorted({"live", "ended", "failed", "recovered", *counts["calls"]}):
            calls.add_metric([state], counts["calls"].get(state, 0))
        out.append(calls)
        out.append(GaugeMetricFamily("standin_calls_with_errors", "Stored calls that recorded an error",
                                     value=errored))
        messages = GaugeMetricFamily("standin_messages", "Messages taken, open or done, by urgency",
                                     labels=["state", "urgency"])
        for done, urgency, n in groups:
            messages.add_metric(["done" if done else "open", urgency], n)
        out.append(messages)
        deliveries = GaugeMetricFamily("standin_deliveries", "Notification deliveries by state",
                                       labels=["state"])
        for state in sorted({"pending", "sending", "sent", "failed", *counts["deliveries"]}):
            deliveries.add_metric([state], counts["deliveries"].get(state, 0))
        out.append(deliveries)
        out.append(self.latencies.histogram())
        turns = CounterMetricFamily(
            "standin_replies", "Replies of the calls that are over: all of them, those the caller went on "
            f"talking into within {queries.RESUMED_WITHIN_S:g} s (answered into a pause), and those that "
            f"came more than {queries.WAITED_OVER_S:g} s after the caller stopped", labels=["kind"])
        turns.add_metric(["all"], figures["replies"])
        turns.add_metric(["answered_into_pause"], figures["answered_into_pause"])
        turns.add_metric(["waited_over_2s"], figures["waited_over_2s"])
        out.append(turns)
        recent_gauge = GaugeMetricFamily(
            "standin_turn_latency_recent_seconds", f"Quantiles over the last {RECENT_TURNS} replies",
            labels=["stage", "quantile"])
        for i, stage in enumerate(STAGES):
            values = [r[i] for r in recent if r[i] is not None]
            for q in (0.5, 0.95):
                if values:
                    recent_gauge.add_metric([stage, f"{q:g}"], quantile(values, q) / 1000)
        out.append(recent_gauge)
        return out


class WebMetrics:
    """One registry per app: the database collector and the web app's own error counter."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DatabaseCollector(db))
        self.errors = Counter("standin_web_errors", "Requests the web app failed with an internal error",
                              registry=self.registry)


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, owner: OwnerDep) -> Response:
    web_metrics: WebMetrics = request.app.state.metrics
    return Response(generate_latest(web_metrics.registry), media_type=CONTENT_TYPE_LATEST)
