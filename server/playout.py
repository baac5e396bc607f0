"""The playout queue: bot audio waiting for the line, pulled one frame at a time.

Utterances hold their audio as it is synthesised. Only utterances the core has let through (`play`) reach
the line, one after the other in that order; a paused one holds the line until it resumes or is dropped.
Whatever is dropped is gone before the next pull, so cancelled audio never plays, not even one frame.

The transport's clock thread calls `pull`; the event loop feeds and steers. One lock keeps them apart and
is held only for a few array copies.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from server.core.events import PlayoutProgress, PlayoutStopped


@dataclass(slots=True)
class _Utterance:
    id: int
    chunks: list[np.ndarray] = field(default_factory=list)
    length: int = 0  # samples received
    pos: int = 0  # next sample to play
    stop_at: int | None = None
    fade: int = 0
    paused: bool = False
    _flat: np.ndarray | None = None

    def audio(self) -> np.ndarray:
        if self._flat is None or len(self._flat) != self.length:
            self._flat = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            self.chunks = [self._flat]
        return self._flat


class Playout:
    def __init__(self, rate: int = 16000, frame: int = 320) -> None:
        self.rate = rate
        self.frame = frame
        self._lock = threading.Lock()
        self._utterances: dict[int, _Utterance] = {}
        self._queue: deque[_Utterance] = deque()
        self._dropped: set[int] = set()

    def _get(self, utterance: int) -> _Utterance:
        u = self._utterances.get(utterance)
        if u is None:
            u = self._utterances[utterance] = _Utterance(utterance)
        return u

    def add(self, utterance: int, pcm: np.ndarray) -> None:
        with self._lock:
            if utterance in self._dropped:
                return
            u = self._get(utterance)
            if len(pcm):
                u.chunks.append(pcm.astype(np.int16, copy=False))
                u.length += len(pcm)

    def play(self, utterance: int) -> None:
        with self._lock:
            if utterance in self._dropped:
                return
            u = self._get(utterance)
            if u not in self._queue:
                self._queue.append(u)

    def stop(self, utterance: int, at: int, fade: int, *, ends: Sequence[int] = (), within: int = 0) -> None:
        """Stop at sample `at`; when the line is already past it, at the first word end of `ends` no more
        than `within` samples ahead (so the word on the line is finished), else at once."""
        with self._lock:
            u = self._get(utterance)
            if at < u.pos:
                at = next((e for e in ends if u.pos <= e <= u.pos + within), u.pos)  # ends ascend
            u.stop_at, u.fade = at, fade

    def resume(self, utterance: int, at: int) -> None:
        with self._lock:
            u = self._get(utterance)
            if u.paused:
                u.pos = at
            u.paused, u.stop_at = False, None

    def drop(self, utterance: int) -> None:
        with self._lock:
            self._dropped.add(utterance)
            u = self._utterances.pop(utterance, None)
            if u is not None and u in self._queue:
                self._queue.remove(u)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._queue)

    def pull(self, t: float) -> tuple[np.ndarray, list[PlayoutProgress | PlayoutStopped]]:
        """The frame of bot audio that starts at line time `t`, and what it tells the core."""
        out = np.zeros(self.frame, np.int16)
        notes: list[PlayoutProgress | PlayoutStopped] = []
        with self._lock:
            filled = 0
            while filled < self.frame and self._queue:
                u = self._queue[0]
                if u.paused:
                    break
                n = self._take(u, out, filled, t, notes)
                if n == 0:
                    break  # waiting for more audio: the line stays silent meanwhile
                filled += n
        return out, notes

    def _take(self, u: _Utterance, out: np.ndarray, filled: int, t: float,
              notes: list[PlayoutProgress | PlayoutStopped]) -> int:
        audio = u.audio()
        end = u.length
        if u.stop_at is not None:
            end = min(end, u.stop_at + u.fade)
        n = min(self.frame - filled, end - u.pos)
        if n <= 0:
            if u.stop_at is not None and u.pos >= u.stop_at:
                u.paused = True
            return 0
        first = u.pos
        piece = audio[first:first + n].astype(np.float32)
        stop = u.stop_at
        if stop is not None and first + n > stop:  # this piece reaches into the fade
            k = np.arange(first, first + n) - stop
            gain = np.clip(1.0 - (k + 1) / max(u.fade, 1), 0.0, 1.0)
            piece = np.where(k >= 0, piece * gain, piece)
            if first <= stop:
                fade_start = t + (filled + stop - first) / self.rate
                notes.append(PlayoutStopped(t, u.id, stop, fade_start, fade_start + u.fade / self.rate))
        out[filled:filled + n] = piece.astype(np.int16)
        u.pos += n
        notes.append(PlayoutProgress(t, u.id, first, u.pos, filled))
        if u.stop_at is not None and u.pos >= u.stop_at + u.fade:
            u.paused = True
        return n
