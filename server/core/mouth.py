"""The bot's mouth.

`Mouth` owns the bot's utterances from text to line: it feeds reply text through the clause splitter to
TTS, lets utterances onto the line in order, and drops them with everything they still had in flight.
When an utterance starts, ends or is cut is the conversation's business, not the mouth's.
"""

from __future__ import annotations

import dataclasses

from server.core import events as ev
from server.core.desk import Desk, Job
from server.core.record import ReplyJobs
from server.core.speech import ClauseSplitter, Kind, SpeechOptions, State, Step, Utterance


class Mouth:
    def __init__(self, desk: Desk, options: SpeechOptions) -> None:
        self.desk = desk
        self.options = options
        self.utterances: dict[int, Utterance] = {}
        self.line: list[Utterance] = []  # let onto the line, in playout order
        self._splitters: dict[int, ClauseSplitter] = {}

    @property
    def front(self) -> Utterance | None:
        return self.line[0] if self.line else None

    def audible(self) -> bool:
        return any(u.on_line for u in self.line)

    def thinking(self) -> bool:
        """A reply is being written."""
        return any(u.reply_job is not None for u in self.utterances.values())

    def new(self, kind: Kind, interruptible: bool = True) -> Utterance:
        u = Utterance(self.desk.new_id(), kind, interruptible)
        self.utterances[u.id] = u
        self._splitters[u.id] = ClauseSplitter(self.options)
        return u

    def say(self, kind: Kind, text: str, interruptible: bool = True) -> Utterance | None:
        """Speak fixed `text` as soon as it is synthesised."""
        if not text.strip():
            return None
        u = self.new(kind, interruptible)
        u.text = text
        splitter = self._splitters[u.id]
        for clause in [*splitter.feed(text), splitter.flush()]:
            if clause:
                self._synthesize(u, clause)
        u.generating = False
        self.release(u)
        return u

    def reply(self, story: tuple[ev.StoryLine, ...], version: int, release: bool, *,
              stt_job: int | None = None, judge_job: int | None = None) -> Utterance:
        """Ask the LLM for the next line; it stays held until released. `stt_job` heard the caller's last
        line and `judge_job` read this story version, if one did."""
        u = self.new(Kind.REPLY)
        u.reply_job = self.desk.new_job(Job("llm", version=version, utterance=u.id))
        u.jobs = ReplyJobs(version, stt_job, judge_job, u.reply_job)
        self.desk.emit(ev.Reply(u.reply_job, u.id, story))
        if release:
            self.release(u)
        return u

    def _synthesize(self, u: Utterance, text: str) -> None:
        job = self.desk.new_job(Job("tts", utterance=u.id))
        u.tts_jobs.append(job)
        if u.jobs is not None and u.jobs.tts is None:
            u.jobs = dataclasses.replace(u.jobs, tts=job)
        self.desk.emit(ev.Synthesize(job, u.id, text))

    def release(self, u: Utterance) -> None:
        u.released = True
        self.line.append(u)
        self.desk.emit(ev.Play(u.id))

    def stop_generating(self, u: Utterance) -> None:
        """No more text or audio for `u`; what it has keeps playing."""
        self.desk.cancel(u.reply_job)
        u.reply_job = None
        for job in u.tts_jobs:
            self.desk.cancel(job)
        u.tts_jobs.clear()
        u.generating = False

    def drop(self, u: Utterance) -> None:
        """Stop everything about `u`; what it has not played never will."""
        self.stop_generating(u)
        if u.released:
            self.desk.emit(ev.Drop(u.id))
        if u in self.line:
            self.line.remove(u)
        if u.state is State.HELD:
            u.step(Step.CANCEL)

    def done(self, u: Utterance) -> None:
        """`u` has said all it had to say: the line moves on to the next utterance."""
        u.step(Step.FINISH)
        self.desk.emit(ev.Drop(u.id))
        if u in self.line:
            self.line.remove(u)

    def reply_text(self, job: Job, text: str) -> None:
        u = self.utterances[job.utterance]
        u.text += text
        for clause in self._splitters[u.id].feed(text):
            self._synthesize(u, clause)

    def reply_done(self, job: Job, end_call: bool) -> Utterance:
        u = self.utterances[job.utterance]
        u.reply_job = None
        if clause := self._splitters[u.id].flush():
            self._synthesize(u, clause)
        u.generating = False
        u.text = u.text.strip()
        u.end_call = end_call
        return u

    def speech(self, job: Job, samples: int, words: tuple[ev.Word, ...]) -> None:
        self.utterances[job.utterance].add_audio(samples, words)

    def synthesis_done(self, job_id: int, job: Job) -> Utterance:
        u = self.utterances[job.utterance]
        if job_id in u.tts_jobs:
            u.tts_jobs.remove(job_id)
        return u
