"""What goes in and out of the conversation core.

Events come in, each stamped with `t`, seconds on the call's timeline (0 = the call was answered).
Commands go out. Caller audio is addressed by sample index on the call's 16 kHz timeline; bot audio by
sample index within one utterance. Jobs (engine calls) and utterances are named by integers the core
hands out; a result for a job the core no longer wants is ignored, so cancelling is always safe.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.core.record import Record


class Timer(enum.StrEnum):
    """The core's timers (StartTimer, TimerFired). The values are the names traces keep."""

    SILENCE = "silence"  # nothing has happened for the call's silence timeout
    MAX_DURATION = "max_duration"
    RELEASE = "release"  # a granted reply may start (the turn gap has passed)
    BACKSTOP = "backstop"  # a WAIT has lasted long enough: the bot takes the turn anyway
    READBACK = "readback"  # a dictated number may be read back
    ACK = "ack"  # the judge is slow: acknowledge the caller
    BACKCHANNEL = "backchannel"  # a long caller turn: "mm-hm"
    GO_AHEAD = "go_ahead"  # the caller announced what is coming, then stopped: invite it
    REPEAT = "repeat"  # ask the caller to say it again
    RING_TIMEOUT = "ring_timeout"  # the owner's phone has rung long enough
    RING_DECIDE = "ring_decide"  # the owner has not chosen in time
    HANG_UP = "hang_up"  # the reply model ended the call: hang up unless the caller spoke meanwhile


# --------------------------------------------------------------------------- events (runtime -> core)


@dataclass(frozen=True, slots=True)
class CallStarted:
    t: float


@dataclass(frozen=True, slots=True)
class VadWindow:
    """Speech probability of caller samples [start, end); `echo` when the bot's own voice coming back
    explains them, so they can tell nothing about the caller."""

    t: float
    start: int
    end: int
    p: float
    echo: bool = False


@dataclass(frozen=True, slots=True)
class TranscriptReady:
    t: float
    job: int
    text: str
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class VerdictReady:
    t: float
    job: int
    p_complete: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReplyText:
    """More text of a reply being generated (any size: a token, a word, a sentence)."""

    t: float
    job: int
    text: str


@dataclass(frozen=True, slots=True)
class ReplyDone:
    t: float
    job: int
    end_call: bool = False


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: int  # samples, relative to what the event that carries it says
    end: int


@dataclass(frozen=True, slots=True)
class SpeechReady:
    """A piece of synthesised audio for `job` (a Synthesize command), as it will be played."""

    t: float
    job: int
    samples: int
    words: tuple[Word, ...]  # relative to this piece's first sample


@dataclass(frozen=True, slots=True)
class SynthesisDone:
    t: float
    job: int


@dataclass(frozen=True, slots=True)
class JobFailed:
    t: float
    job: int
    error: str  # what failed, in full for the trace (it can quote the caller); logs name only its type


@dataclass(frozen=True, slots=True)
class PlayoutProgress:
    """Samples [first, last) of `utterance` went to the line in the frame that starts at `t`,
    beginning `offset` samples into that frame."""

    t: float
    utterance: int
    first: int
    last: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class PlayoutStopped:
    """The playout honoured a Stop: audio of `utterance` ends at sample `at`, fading out from the line
    time `fade_start` to `silent`."""

    t: float
    utterance: int
    at: int
    fade_start: float
    silent: float


@dataclass(frozen=True, slots=True)
class TimerFired:
    t: float
    name: Timer


@dataclass(frozen=True, slots=True)
class Dtmf:
    t: float
    digit: str


@dataclass(frozen=True, slots=True)
class CallerHungUp:
    t: float


# ring-through (server/core/ringthrough.py): standin's own call to the owner's phone, attempt by attempt


@dataclass(frozen=True, slots=True)
class OwnerRinging:
    """The owner's phone is ringing (a 180/183 to standin's call to it; a NOTIFY 180 for a transfer)."""

    t: float
    attempt: int


@dataclass(frozen=True, slots=True)
class OwnerAnswered:
    """The owner picked up (for a transfer: the caller was put through)."""

    t: float
    attempt: int


@dataclass(frozen=True, slots=True)
class OwnerDigit:
    """The owner pressed a key on the call to them."""

    t: float
    attempt: int
    digit: str


@dataclass(frozen=True, slots=True)
class OwnerSaid:
    """What the owner said on the call to them before it was bridged (their words, as STT heard them)."""

    t: float
    attempt: int
    text: str


@dataclass(frozen=True, slots=True)
class OwnerGone:
    """The call to the owner ended, or could not be made; `status` is its final SIP status (0: none)."""

    t: float
    attempt: int
    status: int
    reason: str = ""


Event = (
    CallStarted | VadWindow | TranscriptReady | VerdictReady | ReplyText | ReplyDone | SpeechReady
    | SynthesisDone | JobFailed | PlayoutProgress | PlayoutStopped | TimerFired | Dtmf | CallerHungUp
    | OwnerRinging | OwnerAnswered | OwnerDigit | OwnerSaid | OwnerGone
)

# --------------------------------------------------------------------------- commands (core -> runtime)


@dataclass(frozen=True, slots=True)
class StoryLine:
    role: str  # "caller" | "bot"
    text: str


@dataclass(frozen=True, slots=True)
class Transcribe:
    """Transcribe caller samples [start, end); `digits`: they are likely digits of a number."""

    job: int
    start: int
    end: int
    speculative: bool
    digits: bool = False


@dataclass(frozen=True, slots=True)
class Judge:
    job: int
    story: tuple[StoryLine, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """Generate the bot's next line for `story`; its text becomes `utterance`."""

    job: int
    utterance: int
    story: tuple[StoryLine, ...]


@dataclass(frozen=True, slots=True)
class Prefill:
    """The bot's line has joined `story` and nothing is asked of the reply engine: it may evaluate the
    story now, so that the reply to the caller's next words pays only for those words."""

    story: tuple[StoryLine, ...]


@dataclass(frozen=True, slots=True)
class Synthesize:
    """Speak `text` as the next piece of `utterance` (pieces play in the order they are asked for)."""

    job: int
    utterance: int
    text: str


@dataclass(frozen=True, slots=True)
class Cancel:
    job: int


@dataclass(frozen=True, slots=True)
class Play:
    """Let `utterance` reach the line: its audio plays as soon as it is there."""

    utterance: int


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop `utterance` at its sample `at`, fading out over `fade` samples; keep the rest in case it
    resumes. The core reckons `at` from the playout's last report, which may be a few frames old: if the
    line has already passed `at`, the playout stops at the first of the later word ends `ends` that is
    at most `within` samples ahead of it, or at once when none is."""

    utterance: int
    at: int
    fade: int
    ends: tuple[int, ...] = ()
    within: int = 0


@dataclass(frozen=True, slots=True)
class Resume:
    """Play `utterance` again from its sample `at`."""

    utterance: int
    at: int


@dataclass(frozen=True, slots=True)
class Drop:
    """Throw away whatever of `utterance` has not played; nothing more of it may reach the line."""

    utterance: int


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Send TimerFired(name) at call time `at`; a timer of the same name is replaced."""

    name: Timer
    at: float


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something the core decided, for the trace (never caller text)."""

    kind: str
    data: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class RingOwner:
    """Call the owner's phone for `attempt`; once they answer, say `announcement` to them and report
    their keys. With `transfer`, hand the caller over by a blind SIP transfer (REFER) instead."""

    attempt: int
    announcement: str
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class BridgeOwner:
    """Join the caller and the owner: from now on they hear each other, and standin only records."""

    attempt: int


@dataclass(frozen=True, slots=True)
class DropOwner:
    """Hang up the call to the owner (if it is still up)."""

    attempt: int
    reason: str


Command = (
    Transcribe | Judge | Reply | Prefill | Synthesize | Cancel | Play | Stop | Resume | Drop | StartTimer
    | Hangup | Note | RingOwner | BridgeOwner | DropOwner | Record
)
