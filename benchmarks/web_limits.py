"""What a 200 MB request body costs `standin serve`'s web server: memory, and the event loop it shares
with the live calls.

    python benchmarks/web_limits.py [--mb 200] [--json benchmarks/web_limits.json] [--source DIR]

Starts the dashboard as `standin serve` does (`server.web.serving.dashboard`: uvicorn on loopback) in a
subprocess, with a temp SQLite database, and a 20 ms ticker on its loop standing in for a call's audio
clock. Then it posts a `--mb` body to /api/contacts, streamed from a generator, chunked and with a
Content-Length, without credentials and with a bearer token, and five 50 MB bodies at once without
credentials. For each: the answer, how much of the body the client got to send, the time to the
answer, the server's peak RSS growth (VmHWM, reset before each case) and its RSS after, and how late
the ticker ran (the most one tick was late, and the sum: what a clock that sleeps 20 ms a frame lost).
`--source` runs the server from another source tree (e.g. `git archive` of an older commit) to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ENV = "WEB_LIMITS_SOURCE"  # the server's source tree, set for the subprocess by --source
sys.path.insert(0, os.environ.get(SOURCE_ENV, str(ROOT)))

TOKEN = "benchmark-token-0123456789"
TICK_S = 0.02
MB = 1024 * 1024


# --------------------------------------------------------------------------- the server (subprocess)


async def _serve(folder: Path) -> None:
    from server.config import load
    from server.store.db import open_database
    from server.web.serving import dashboard

    config = load(None, {
        "storage": {"calls_dir": str(folder / "calls"), "database": f"sqlite:///{folder / 'standin.db'}"},
        "web": {"listen": "127.0.0.1:0", "api_tokens": [TOKEN], "password_file": str(folder / "pw"),
                "secret_file": str(folder / "secret")},
    })
    db = open_database(config.storage.database)
    late = {"max_s": 0.0, "sum_s": 0.0}

    def report() -> None:
        print(json.dumps(late), flush=True)
        late.update(max_s=0.0, sum_s=0.0)

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK_S)
            over = max(0.0, time.monotonic() - before - TICK_S)
            late["max_s"] = max(late["max_s"], over)
            late["sum_s"] += over

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, report)
    async with dashboard(config, db, status=lambda: {"ok": True}, start_browser_call=None) as address:
        tick = asyncio.create_task(ticker())
        print(address, flush=True)
        await asyncio.Event().wait()
        tick.cancel()


# --------------------------------------------------------------------------- the client


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Server:
    def __init__(self, source: Path, folder: Path) -> None:
        env = {**os.environ, SOURCE_ENV: str(source)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(folder)], cwd=source, env=env,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address.startswith("http://"):
            raise RuntimeError(f"the server did not start (it said {self.address!r})")
        host, port = self.address.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)

    def lateness(self) -> dict[str, float]:
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGUSR1)
        found: dict[str, float] = json.loads(self.proc.stdout.readline())
        return found

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _case(server: Server, name: str, posts: list[dict[str, Any]]) -> dict[str, Any]:
    from tests.web.streaming import Sent, post_streaming

    time.sleep(0.5)  # let the server settle (keep-alive timers, freed buffers)
    server.lateness()
    server.reset_peak()
    rss_before = _kib(server.proc.pid, "VmRSS")
    results: list[Sent] = [Sent()] * len(posts)

    def post(i: int) -> None:
        results[i] = post_streaming(server.host, server.port, "/api/contacts", **posts[i])

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(posts))]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    peak = _kib(server.proc.pid, "VmHWM")
    late = server.lateness()
    row = {
        "case": name,
        "status": sorted({r.status for r in results}, key=str),
        "body_mb": round(sum(p["total"] for p in posts) / MB, 1),
        "sent_mb": round(sum(r.pulled for r in results) / MB, 2),
        "answer_s": round(max(r.seconds for r in results), 3),
        "wall_s": round(wall, 3),
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_peak_growth_mb": round((peak - rss_before) / 1024, 1),
        "rss_after_mb": round(_kib(server.proc.pid, "VmRSS") / 1024, 1),
        "loop_late_max_ms": round(late["max_s"] * 1000, 1),
        "loop_late_sum_ms": round(late["sum_s"] * 1000, 1),
    }
    print(f"{name:44} {row['status']!s:10} sent {row['sent_mb']:8.2f} MB  answer {row['answer_s']:6.3f} s  "
          f"RSS +{row['rss_peak_growth_mb']:6.1f} MB  loop late max {row['loop_late_max_ms']:7.1f} ms, "
          f"sum {row['loop_late_sum_ms']:8.1f} ms")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "web_limits.json")
    parser.add_argument("--source", type=Path, default=ROOT, help="the source tree to run the server from")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    total = args.mb * MB
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with tempfile.TemporaryDirectory(prefix="standin-web-limits-") as tmp:
        server = Server(args.source.resolve(), Path(tmp))
        try:
            rows = [
                _case(server, "a contact, bearer token", [
                    {"total": 0, "chunked": False, "headers": bearer,
                     "payload": b'{"name": "Anna", "numbers": ["+390633334444"]}'}]),
                _case(server, f"{args.mb} MB chunked, no credentials", [{"total": total, "chunked": True}]),
                _case(server, f"{args.mb} MB Content-Length, no credentials", [
                    {"total": total, "chunked": False}]),
                _case(server, f"{args.mb} MB chunked, bearer token", [
                    {"total": total, "chunked": True, "headers": bearer}]),
                _case(server, f"{args.mb} MB Content-Length, bearer token", [
                    {"total": total, "chunked": False, "headers": bearer}]),
                _case(server, "5 x 50 MB chunked at once, no credentials", [
                    {"total": 50 * MB, "chunked": True} for _ in range(5)]),
            ]
        finally:
            server.stop()
    source = "this tree" if args.source.resolve() == ROOT else str(args.source)
    report = {"server_source": source, "python": sys.version.split()[0], "tick_ms": TICK_S * 1000,
              "cases": rows}
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
