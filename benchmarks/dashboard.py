"""Server time of the dashboard's pages and API endpoints with 10,000 stored calls.

    python benchmarks/dashboard.py [--calls 10000] [--runs 40] [--json benchmarks/dashboard.json]

Fills a temp SQLite database (WAL, as `standin serve` opens it) with realistic calls: the caller's
fragments, the bot's turns (some cut off), turn decisions, reply latencies, messages of mixed urgency
(most older ones done), their deliveries, contacts and profiles. Then it asks each page and endpoint
`--runs` times in process (Starlette's TestClient, logged in as the owner or with a bearer token) and
reports the median and p95 of the time spent inside the app, from the request's arrival to its last
byte, against the 100 ms target.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from server.config import Config, StorageConfig, WebConfig  # noqa: E402
from server.store.db import Database, open_database  # noqa: E402
from server.store.schema import (  # noqa: E402
    BotTurn,
    Call,
    Contact,
    ContactNumber,
    Decision,
    Delivery,
    Fragment,
    Message,
    Profile,
    TurnLatency,
)
from server.web.app import create_app  # noqa: E402
from server.web.auth import set_password  # noqa: E402
from server.web.context import WebContext  # noqa: E402

TARGET_MS = 100.0
PASSWORD = "benchmark password"
TOKEN = "benchmark-token-0123456789"
NAMES = ["Anna Rossi", "Marco Bianchi", "Giulia", "the garage", "Dr. Esposito's office", "", "", "Luca",
         "Sara from the bank", "Paolo", "DHL courier", ""]
CALLER_LINES = [
    "Hi, this is {name}, I'm calling about the appointment on Thursday.",
    "I need three things: the invoice, the signed contract, and the keys.",
    "So... the first one is the invoice from March.",
    "Could you tell him the delivery is ready at the depot?",
    "My number is {number}, please call me back after five.",
    "It's quite urgent, the water is leaking into the flat downstairs.",
    "Never mind, I'll send an email instead.",
    "Yes, that's right.", "Mm-hm.", "Is he coming to the dinner on Saturday?",
]
BOT_LINES = [
    ("greeting", "Hello, you've reached Marco's phone. I'm his assistant; how can I help?"),
    ("reply", "Thank you. I will make sure the message reaches him today."),
    ("reply", "Of course. Could you repeat the number, in groups of three?"),
    ("ack", "Mm-hm?"),
    ("backchannel", "Mm-hm."),
    ("reply", "The delivery is confirmed for Tuesday, at three o'clock, at the depot."),
    ("goodbye", "I'll pass it on. Goodbye!"),
]


def fill(db: Database, calls: int, seed: int = 1) -> None:
    """`calls` calls over the last six months, with everything a stored call has."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (Call, Fragment, BotTurn, Decision, TurnLatency,
                                                               Message, Delivery)}
    message_id = delivery_id = 0
    for call_id in range(1, calls + 1):
        started = now - timedelta(days=180) * (1 - call_id / calls) - timedelta(seconds=rng.uniform(0, 900))
        name = rng.choice(NAMES)
        number = f"+39{rng.randint(300_000_0000, 399_999_9999)}"
        duration = rng.uniform(12, 170)
        state = rng.choices(["ended", "failed", "recovered"], [96, 2, 2])[0]
        rows[Call].append({"id": call_id, "uid": f"{started:%Y%m%d-%H%M%S}-{call_id}", "source": "sip",
                           "caller_number": number, "caller_name": name, "profile": "default",
                           "language": "en",
                           "started_at": started, "ended_at": started + timedelta(seconds=duration),
                           "duration_s": duration, "state": state, "ended_reason": "caller hung up",
                           "error": "" if state != "failed" else "RuntimeError: engine failed",
                           "folder": f"calls/{started:%Y%m%d-%H%M%S}-{call_id}"})
        t = 3.0
        for _ in range(rng.randint(3, 9)):
            text = rng.choice(CALLER_LINES).format(name=name or "a friend", number=number)
            end = t + rng.uniform(1.0, 5.0)
            rows[Fragment].append({"call_id": call_id, "start_s": t, "end_s": end, "text": text})
            rows[Decision].append({"call_id": call_id, "at_s": end + 0.2,
                                   "verdict": rng.choice(["COMPLETE", "WAIT"]),
                                   "by": rng.choice(["judge", "question", "backstop"]),
                                   "p_complete": rng.random()})
            if rng.random() < 0.6:
                kind, said = rng.choice(BOT_LINES)
                cut = rng.random() < 0.15
                heard = " ".join(said.split()[: rng.randint(2, 6)]) if cut else said
                rows[BotTurn].append({"call_id": call_id, "kind": kind, "start_s": end + 0.5,
                                      "end_s": end + 3.0, "intended": said, "heard": heard, "cut_off": cut})
                stt = rng.uniform(60, 250)
                rows[TurnLatency].append({
                    "call_id": call_id, "caller_end_s": end, "stt_ms": stt, "judge_ms": rng.uniform(10, 40),
                    "llm_first_token_ms": rng.uniform(50, 200), "llm_first_clause_ms": rng.uniform(120, 400),
                    "tts_first_audio_ms": rng.uniform(30, 160),
                    "first_audio_s": end + rng.uniform(0.35, 1.2)})
            t = end + rng.uniform(2.0, 6.0)
        if rng.random() < 0.92:
            message_id += 1
            age = (now - started).days
            rows[Message].append({
                "id": message_id, "call_id": call_id, "created_at": started + timedelta(seconds=duration + 3),
                "caller_name": name, "callback_number": number, "urgency": rng.choices(
                    ["high", "normal", "low"], [10, 70, 20])[0],
                "text": f"{name or 'Someone'} called about the delivery; please call back after five.",
                "language": "en", "source": "llm", "transcript": "...",
                "done": age > 3 and rng.random() < 0.9, "done_at": None})
            for channel in range(rng.randint(1, 2)):
                delivery_id += 1
                state = rng.choices(["sent", "failed", "pending"], [95, 3, 2])[0]
                rows[Delivery].append({"id": delivery_id, "message_id": message_id, "channel": f"ch{channel}",
                                       "label": f"ntfy://***/{channel}", "state": state,
                                       "attempts": 48 if state == "failed" else 1, "due_at": started,
                                       "last_error": "HTTP 503" if state == "failed" else ""})
    with db.session() as session:
        for table, batch in rows.items():
            for i in range(0, len(batch), 5000):
                session.execute(insert(table), batch[i:i + 5000])
        profiles = [Profile(name=n, greeting="", manner="", language="", silence_timeout_s=None,
                            backchannels=True, end_on_sales=n == "sales", blocked=n == "blocked")
                    for n in ("default", "family", "work", "sales", "blocked")]
        session.add_all(profiles)
        for i in range(300):
            session.add(Contact(name=f"Contact {i:03d}", profile=rng.choice(profiles), notes="",
                                source="vcard", uid=f"uid-{i}",
                                numbers=[ContactNumber(number=f"+39347{i:07d}")]))


class ServerTime:
    """ASGI wrapper: seconds from a request's arrival to the last byte the app sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        await self.app(scope, receive, send)
        self.last = time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "dashboard.json")
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave the objects made at start-up to the garbage collector's full passes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="standin-dashboard-") as tmp:
        set_password(f"{tmp}/pw", PASSWORD)
        config = Config(storage=StorageConfig(calls_dir=f"{tmp}/calls", database=f"sqlite:///{tmp}/standin.db"),
                        web=WebConfig(password_file=f"{tmp}/pw", secret_file=f"{tmp}/secret",
                                      api_tokens=(TOKEN,)))
        db = open_database(config.storage.database)
        began = time.perf_counter()
        fill(db, args.calls)
        with db.session() as session:
            rows = {t.__tablename__: session.scalar(select(func.count()).select_from(t))
                    for t in (Call, Fragment, BotTurn, Decision, TurnLatency, Message, Delivery, Contact)}
        print(f"filled in {time.perf_counter() - began:.1f} s: "
              + ", ".join(f"{n} {name}" for name, n in rows.items()), flush=True)
        timer = ServerTime(create_app(WebContext(config=config, db=db)))
        if not args.no_freeze:
            # What a long-running server does once it has started: the ~130,000 objects of its imports
            # never die, and without this every full collection walks them (~60 ms here).
            gc.collect()
            gc.freeze()
        results = run(TestClient(timer), timer, args.calls, args.runs)
        db.close()
    report(results, args)


def run(client: TestClient, timer: ServerTime, calls: int, runs: int) -> dict[str, dict[str, float]]:
    response = client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 303, response.text
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    rng = random.Random(2)
    targets: list[tuple[str, Any, dict[str, str]]] = [
        ("page /messages", "/messages", {}),
        ("page /messages?view=all&offset=5000", "/messages?view=all&offset=5000", {}),
        ("page /calls", "/calls", {}),
        ("page /calls?offset=9950", f"/calls?offset={max(0, calls - 50)}", {}),
        ("page /calls/{id}", lambda: f"/calls/{rng.randint(1, calls)}", {}),
        ("page /contacts", "/contacts", {}),
        ("page /profiles", "/profiles", {}),
        ("page /status", "/status", {}),
        ("GET /api/calls", "/api/calls", bearer),
        ("GET /api/calls?offset=9950", f"/api/calls?offset={max(0, calls - 50)}", bearer),
        ("GET /api/calls/{id}", lambda: f"/api/calls/{rng.randint(1, calls)}", bearer),
        ("GET /api/messages", "/api/messages", bearer),
        ("GET /api/messages?offset=9000", "/api/messages?offset=9000", bearer),
        ("GET /api/contacts", "/api/contacts", bearer),
        ("GET /api/health", "/api/health", bearer),
        ("GET /metrics", "/metrics", bearer),
    ]
    results = {}
    for label, path, headers in targets:
        times = []
        for _ in range(runs + 3):
            response = client.get(path() if callable(path) else path, headers=headers)
            assert response.status_code == 200, (label, response.status_code, response.text[:200])
            times.append(timer.last * 1000)
        first, times = times[0], sorted(times[3:])  # the first few warm SQLite's cache, Jinja, /metrics
        results[label] = {"median_ms": round(statistics.median(times), 2),
                          "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 2),
                          "first_ms": round(first, 2)}
        got = results[label]
        print(f"{label:40} median {got['median_ms']:7.2f} ms   p95 {got['p95_ms']:7.2f} ms   "
              f"first {got['first_ms']:7.2f} ms", flush=True)
    return results


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    worst = max(r["p95_ms"] for r in results.values())
    verdict = "within" if worst <= TARGET_MS else "OVER"
    print(f"worst p95 {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    args.json.write_text(json.dumps({"calls": args.calls, "runs": args.runs, "target_ms": TARGET_MS,
                                     "gc_freeze": not args.no_freeze,
                                     "measured": datetime.now(UTC).isoformat(timespec="seconds"),
                                     "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
