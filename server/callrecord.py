"""A call's record made into summary.json and its database rows, with nothing worked out from the trace.

The core's report says what happened and names, for each reply, the engine jobs behind it (the STT job
that heard the caller's last line, the judge that read that story, the reply and its first synthesis:
server/core/record.py); the runtime measures each job's time to its first result and keeps it by job
id. `summarize` puts the two together: each reply's bot turn carries its `jobs` and their `latency`.
`rows` turns summary.json's content into the call's rows. Both are pure.

summary.json format 2 adds `format`, and `jobs` and `latency` on reply turns, to format 1 (no `format`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.store.schema import BotTurn, Decision, Fragment, TurnLatency

FORMAT = 2
Timings = Mapping[int, Mapping[str, float]]  # job -> stage -> ms
_STAGES = (("stt", "stt_ms"), ("judge", "judge_ms"), ("llm", "llm_first_token_ms"),
           ("llm", "llm_first_clause_ms"), ("tts", "tts_first_audio_ms"))


def summarize(report: Mapping[str, Any], timings: Timings, meta: Mapping[str, Any] | None = None,
              engines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """summary.json's content: the core's `report`, each reply's latencies from `timings`, the call's
    `meta` and the `engines` that served it."""
    bot_turns = [{**b, "latency": latency(b["jobs"], timings)} if b.get("jobs") is not None else b
                 for b in report.get("bot_turns") or []]
    summary = {"format": FORMAT, **report, "bot_turns": bot_turns, **(meta or {})}
    if engines is not None:
        summary["engines"] = engines
    return summary


def latency(jobs: Mapping[str, int | None], timings: Timings) -> dict[str, float | None]:
    """Each stage's time for the reply whose jobs are `jobs`."""
    out: dict[str, float | None] = {}
    for role, stage in _STAGES:
        job = jobs.get(role)
        out[stage] = timings.get(job, {}).get(stage) if job is not None else None
    return out


def unheard(ended: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """summary.json's content for a call ended before anyone listened (a blocked caller)."""
    report = {"caller_fragments": [], "decisions": [], "bot_turns": [], "barge_ins": [], "story": "",
              "story_lines": [], "ended": ended}
    return summarize(report, {}, meta)


def rows(call_id: int, summary: Mapping[str, Any]) -> list[Fragment | BotTurn | Decision | TurnLatency]:
    """The call's fragments, decisions, bot turns and reply latencies, as `summary` tells them."""
    out: list[Fragment | BotTurn | Decision | TurnLatency] = []
    fragments = summary.get("caller_fragments") or []
    for f in fragments:
        out.append(Fragment(call_id=call_id, start_s=float(f["start_s"]), end_s=float(f["end_s"]),
                            text=str(f.get("text") or "")))
    for d in summary.get("decisions") or []:
        p = d.get("p_complete")
        out.append(Decision(call_id=call_id, at_s=float(d["at_s"]), verdict=str(d["verdict"])[:16],
                            by=str(d["by"])[:32], p_complete=None if p is None else float(p)))
    for b in summary.get("bot_turns") or []:
        start, end = b.get("start_s"), b.get("end_s")
        if start is None:
            continue  # never reached the line
        out.append(BotTurn(call_id=call_id, kind=str(b["kind"])[:16], start_s=float(start),
                           end_s=float(end if end is not None else start),
                           intended=str(b.get("text_intended") or ""), heard=str(b.get("text_heard") or ""),
                           cut_off=bool(b.get("interrupted"))))
        if b["kind"] != "reply":
            continue
        caller_end = max((float(f["end_s"]) for f in fragments if float(f["end_s"]) <= float(start)),
                         default=None)
        if caller_end is None:
            continue  # nothing the caller said came before it
        stages = b.get("latency") or {}
        out.append(TurnLatency(call_id=call_id, caller_end_s=caller_end, first_audio_s=float(start),
                               **{stage: stages.get(stage) for _, stage in _STAGES}))
    return out
