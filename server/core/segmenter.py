"""Speech, not sound: VAD hysteresis, caller onsets and fragments (DESIGN.md §2 rules 1-2).

Rules, in the order they apply to each VAD window:
1. Voice starts when p >= `start_p` and ends at the first window below `end_p` (hysteresis).
2. A window counts as speech when p >= `start_p`; voice held only by hysteresis does not count.
3. An onset is a voiced run holding `onset_ms` of speech; shorter runs (coughs, clicks) are not onsets.
4. A fragment opens with the first voiced window (minus `preroll_ms`) and closes once a pause reaches
   `cut_ms`, ending `postroll_ms` after the voice stopped. Voice inside the pause resumes the fragment
   and bumps its revision, so work done on an older revision can be recognised as stale.
5. A closed fragment holding less than `min_speech_ms` of speech is dropped as noise; one that began
   while the bot was talking needs `min_speech_over_bot_ms` (an echo the gate missed is short, and a
   short answer comes after the bot has stopped).
6. A window masked by the bot's echo tells nothing: a voiced run neither grows nor ends in it, and a
   pause goes on; but `masked_hold_ms` of masked windows in a row end a voiced run, so lone windows
   of echo that slipped through cannot add up to an onset.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SegmenterOptions:
    start_p: float = 0.5
    end_p: float = 0.35
    onset_ms: int = 200
    cut_ms: int = 500
    preroll_ms: int = 200
    postroll_ms: int = 150
    min_speech_ms: int = 200  # 300 dropped 31 of 208 short answers ("Yes.", "No."), 200 drops 5
    min_speech_over_bot_ms: int = 300  # an echo residue of 200-300 ms kept the bot paused for STT
    masked_hold_ms: int = 128

    def __post_init__(self) -> None:
        if not 0.0 < self.end_p <= self.start_p < 1.0:
            raise ValueError("VAD thresholds need 0 < end_p <= start_p < 1")
        for name in ("onset_ms", "cut_ms", "min_speech_ms", "min_speech_over_bot_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(slots=True)
class Fragment:
    id: int
    start: int  # first sample, pre-roll included
    voice_start: int  # first voiced sample
    voice_end: int  # where the latest voiced run stopped (== voice end of the fragment once closed)
    end: int = 0  # set when closed
    speech: int = 0  # samples of speech windows
    revision: int = 0
    closed: bool = False
    over_bot: bool = False  # began while the bot was talking


@dataclass(frozen=True, slots=True)
class VoiceStarted:
    at: int
    fragment: Fragment
    resumed: bool  # the voice came back inside the fragment's pause


@dataclass(frozen=True, slots=True)
class Onset:
    at: int  # first sample of the voiced run that became an onset


@dataclass(frozen=True, slots=True)
class VoiceStopped:
    at: int
    fragment: Fragment


@dataclass(frozen=True, slots=True)
class FragmentClosed:
    fragment: Fragment


@dataclass(frozen=True, slots=True)
class FragmentDropped:
    fragment: Fragment


SegmentEvent = VoiceStarted | Onset | VoiceStopped | FragmentClosed | FragmentDropped


class Segmenter:
    def __init__(self, options: SegmenterOptions, rate: int = 16000) -> None:
        self.options = options
        self.rate = rate
        self.voiced = False
        self.fragment: Fragment | None = None  # the open fragment
        self._run_start = 0
        self._run_speech = 0  # speech samples in the current voiced run
        self._onset_sent = False
        self._next_id = 1
        self._now = 0
        self._masked = 0  # masked windows in a row

    def ms(self, samples: int) -> float:
        return samples * 1000 / self.rate

    def samples(self, ms: float) -> int:
        return round(ms * self.rate / 1000)

    @property
    def pause(self) -> int:
        """Samples since the open fragment's voice stopped (0 while voiced or with no fragment)."""
        return 0 if self.voiced or self.fragment is None else self._now - self.fragment.voice_end

    @property
    def run_speech(self) -> int:
        """Speech samples of the current voiced run (0 when not voiced)."""
        return self._run_speech if self.voiced else 0

    def push(self, start: int, end: int, p: float, masked: bool = False,
             bot: bool = False) -> list[SegmentEvent]:
        """One VAD window; `masked`: judged the bot's echo; `bot`: the bot's voice is on the line."""
        o = self.options
        self._now = end
        out: list[SegmentEvent] = []
        self._masked = self._masked + 1 if masked else 0
        if masked:
            if self.voiced and self._masked * (end - start) < self.samples(o.masked_hold_ms):
                return out
            p = 0.0
        is_speech = p >= o.start_p
        if not self.voiced and is_speech:
            self.voiced = True
            self._run_start, self._run_speech, self._onset_sent = start, 0, False
            frag = self.fragment
            if frag is None:
                frag = Fragment(self._next_id, max(0, start - self.samples(o.preroll_ms)), start, end,
                                over_bot=bot)
                self._next_id += 1
                self.fragment = frag
                out.append(VoiceStarted(start, frag, resumed=False))
            else:
                frag.revision += 1
                out.append(VoiceStarted(start, frag, resumed=True))
        elif self.voiced and p < o.end_p:
            self.voiced = False
            assert self.fragment is not None
            self.fragment.voice_end = start
            out.append(VoiceStopped(start, self.fragment))
        if self.voiced:
            assert self.fragment is not None
            self.fragment.voice_end = end
            if is_speech:
                self._run_speech += end - start
                self.fragment.speech += end - start
            if not self._onset_sent and self._run_speech >= self.samples(o.onset_ms):
                self._onset_sent = True
                out.append(Onset(self._run_start))
        elif self.fragment is not None and end - self.fragment.voice_end >= self.samples(o.cut_ms):
            out.append(self.close(end))
        return out

    def enough_speech(self, frag: Fragment) -> bool:
        """Whether `frag` holds enough speech to be the caller's words rather than noise (rule 5)."""
        o = self.options
        return frag.speech >= self.samples(o.min_speech_over_bot_ms if frag.over_bot else o.min_speech_ms)

    def close(self, now: int) -> FragmentClosed | FragmentDropped:
        """Close the open fragment at `now` (also used when the bot takes the floor mid-pause)."""
        frag = self.fragment
        assert frag is not None
        self.fragment = None
        if self.voiced:
            self.voiced = False
            frag.voice_end = now
        frag.end = min(now, frag.voice_end + self.samples(self.options.postroll_ms))
        frag.closed = True
        if not self.enough_speech(frag):
            return FragmentDropped(frag)
        return FragmentClosed(frag)
