"""Screening robocalls and silent calls: the core's side, sans I/O.

`Screen.observe` is given, once per VAD window, what the conversation already knows at that moment:
whether the caller's voice is on, whether the bot's voice is on the line, and whether the caller has
shown a sign of life (words heard, a key pressed, the owner asked for). It answers with a verdict once,
or never.

Rules (every number is a `ScreeningOptions` field):
1. Silent: no caller words (or keys) `silent_s` after the bot's greeting went quiet (call start when there is
   none), and no caller voice for `settle_s`: words may still be on their way from the recogniser, and a
   caller it could not make out is asked to repeat at the turn backstop before this can end the call
   (a call's options put `settle_s` past the backstop). Each thing the bot says starts `silent_s` again.
2. A live listener: once the bot has spoken for `listen_s` in a row while the caller kept quiet, after
   the caller's voice was first heard, the caller is taken for a person and rule 3 no longer applies.
   Nothing is screened once `window_s` of the call has gone by.
3. A recording: the caller's voice ran into the bot's speech (started while the bot spoke, after less
   than `pause_s` of quiet, or, for the greeting, was on when it started or started during it) in
   `collisions` bot utterances, the greeting included, with at least
   `min_voice_s` of voice in all, and never let the bot speak (rule 2); or a voice that began over the
   bot's words has gone on `run_s` without a pause of `pause_s`.
A person who talks over the greeting collides once; they stop for the bot's answer at the latest when
they have finished, and rule 2 clears them. A reply the bot began while the caller was speaking (their
voice had not yet lasted long enough to hold it back) is the bot talking over the caller, and a caller
who goes on after a pause of `pause_s` has given the bot the floor like a person, however slow the bot
was to take it: neither is a collision of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.core.phrases import phrases_for

SCREENED = "screened"  # how a screened call's end reason starts ("screened: silent")
UNHEARD_VOICE_S = 1.5  # voice in a call screened as silent that makes its goodbye say it was not made out


@dataclass(frozen=True, slots=True)
class ScreeningOptions:
    """[screening]: ending robocalls and silent calls politely, without a notification."""

    enabled: bool = True
    silent: bool = True  # screen calls where nobody speaks (rule 1)
    recordings: bool = True  # screen recordings played over the bot (rule 3)
    silent_s: float = 8.0
    settle_s: float = 1.5  # Config.conversation() raises it past the turn backstop (see rule 1)
    listen_s: float = 1.0
    pause_s: float = 1.0
    run_s: float = 20.0
    collisions: int = 3
    min_voice_s: float = 4.0
    window_s: float = 60.0
    language: str = "en"  # the goodbye's language (Config.conversation sets the call's)

    def __post_init__(self) -> None:
        positive = (self.silent_s, self.settle_s, self.listen_s, self.pause_s, self.run_s, self.window_s)
        if min(positive) <= 0 or self.min_voice_s < 0 or self.collisions < 1:
            raise ValueError("screening times must be positive and collisions at least 1")


def is_screened(ended_reason: str | None) -> bool:
    """Whether a call's end reason says it was screened."""
    return bool(ended_reason) and str(ended_reason).startswith(SCREENED)


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # silent | recording
    at_s: float
    why: str

    @property
    def reason(self) -> str:
        return f"{SCREENED}: {self.kind}"


class Screen:
    def __init__(self, options: ScreeningOptions | None = None) -> None:
        self.options = options or ScreeningOptions()
        self.verdict: Verdict | None = None
        self.person = False  # rule 2 cleared the caller
        self.closed = False  # past the window: nothing is screened any more
        self._t: float | None = None
        self._start = 0.0
        self._bot_was = False
        self._bot_quiet_at: float | None = None  # when the bot last went quiet
        self._bot_run = 0.0  # seconds of bot speech in a row with the caller quiet
        self._collided = False  # the caller's voice ran into the bot's current utterance
        self.collisions = 0
        self.voice_s = 0.0
        self._first_voice: float | None = None
        self._last_voice: float | None = None
        self._run_start: float | None = None  # the current voice run (pauses under pause_s inside)
        self._run_over_bot = False
        self._words = False

    def goodbye(self) -> str:
        """What the bot says to end a screened call: a silent call where a voice was heard (words never
        made out of it: a bad line) is not told that nobody is there."""
        kind = self.verdict.kind if self.verdict is not None else "silent"
        if kind == "silent" and self.voice_s >= UNHEARD_VOICE_S:
            kind = "unheard"
        return phrases_for(self.options.language)[f"screened_{kind}"]

    def ended(self, t: float, reason: str) -> str:
        """The reason a call ends for: the verdict's once there is one. A call the silence timeout or the
        duration limit ends before the caller said a word is a silent call too."""
        if (self.verdict is None and self.options.enabled and self.options.silent and not self._words
                and not self.closed and reason in ("silence", "max duration")):
            self.verdict = Verdict("silent", round(t, 3), f"no words before the call ended ({reason})")
        return self.verdict.reason if self.verdict is not None else reason

    @property
    def watching(self) -> bool:
        """Still deciding: `observe` does nothing once this is False (off, decided, or past the window)."""
        return self.options.enabled and self.verdict is None and not self.closed

    def observe(self, t: float, voiced: bool, bot: bool, words: bool) -> Verdict | None:
        """One VAD window at time `t`; returns the verdict the moment it is reached."""
        o = self.options
        if not self.watching:
            return None
        if self._t is None:
            self._t = self._start = t
        dt, self._t = max(0.0, t - self._t), t
        self._words = self._words or words
        if t - self._start >= o.window_s:
            self.closed = True
            return None
        self._track_bot(t, dt, voiced, bot)
        self._track_voice(t, dt, voiced, bot)
        self.verdict = self._silent(t) or self._recording(t)
        return self.verdict

    def _track_bot(self, t: float, dt: float, voiced: bool, bot: bool) -> None:
        if bot and not self._bot_was:
            # the bot starting over the caller's voice is its own collision, except at the greeting, which
            # starts when the call does: a recording is already running then
            self._collided = voiced and self._bot_quiet_at is not None
            self._bot_run = 0.0
        if not bot and self._bot_was:
            self._bot_quiet_at = t
        self._bot_was = bot
        if not bot:
            return
        if voiced:
            self._bot_run = 0.0
            if not self._collided:
                self._collided = True
                # after a pause of pause_s the bot had the floor; going on over its answer is no recording
                paused = self._last_voice is not None and t - self._last_voice >= self.options.pause_s
                if self._bot_quiet_at is None or not paused:
                    self.collisions += 1
                if self._run_start is not None:
                    self._run_over_bot = True
        else:
            self._bot_run += dt
            if self._first_voice is not None and self._bot_run >= self.options.listen_s:
                self.person = True

    def _track_voice(self, t: float, dt: float, voiced: bool, bot: bool) -> None:
        if not voiced:
            return
        self.voice_s += dt
        if self._first_voice is None:
            self._first_voice = t
        paused = self._last_voice is None or t - self._last_voice >= self.options.pause_s
        if self._run_start is None or paused:
            self._run_start, self._run_over_bot = t, bot
        self._run_over_bot = self._run_over_bot or bot
        self._last_voice = t

    def _silent(self, t: float) -> Verdict | None:
        o = self.options
        if not o.silent or self._words or self._bot_was:
            return None
        quiet_from = self._bot_quiet_at if self._bot_quiet_at is not None else self._start
        if t - quiet_from < o.silent_s:
            return None
        if self._last_voice is not None and t - self._last_voice < o.settle_s:
            return None
        return Verdict("silent", round(t, 3), f"no words {o.silent_s:g} s after the bot went quiet")

    def _recording(self, t: float) -> Verdict | None:
        o = self.options
        if not o.recordings or self.person or self._first_voice is None:
            return None
        if self.collisions >= o.collisions and self.voice_s >= o.min_voice_s:
            return Verdict("recording", round(t, 3),
                           f"talked over {self.collisions} bot utterances, never let the bot speak")
        if (self._run_over_bot and self._run_start is not None and self._last_voice == t
                and t - self._run_start >= o.run_s):
            why = f"{t - self._run_start:.1f} s of voice over the bot, no {o.pause_s:g} s pause"
            return Verdict("recording", round(t, 3), why)
        return None

    def report(self) -> dict[str, Any] | None:
        """summary.json's "screening": the verdict and what led to it (None when screening is off)."""
        if not self.options.enabled:
            return None
        out: dict[str, Any] = {"verdict": None, "person": self.person, "collisions": self.collisions,
                               "voice_s": round(self.voice_s, 3)}
        if self.verdict is not None:
            out.update(verdict=self.verdict.kind, at_s=self.verdict.at_s, why=self.verdict.why)
        return out
