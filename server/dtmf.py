"""Keys pressed on the caller's phone heard in the audio itself (in-band DTMF), and one stream of keys from
both ways a phone sends them. Sans I/O: audio in, keys out; no clock, no threads.

`ToneDetector` looks at 25 ms windows every 12.5 ms. In each it takes the power at the eight DTMF
frequencies (the Goertzel powers, as one matrix product over the window) and names a key when:
- the window is not near silence, and the strongest row and column tones are each loud enough;
- those two carry most of the window's energy (`min_share`: speech and noise spread theirs);
- neither outweighs the other by more than `max_twist_db`;
- each beats the other tones of its group by `min_margin_db`.
A key is pressed once it is named in `hold` windows in a row and released after `hold` windows without
it; a press is reported once, at the first of its windows. A 40 ms tone (the shortest a phone sends) is
enough.

`Keypad` merges in-band keys with those that come out of band (RFC 2833 events, SIP INFO): a phone that
sends both would otherwise press every key twice. The same key from the other path within `window_s` is
the same press; once a key has come out of band, the line carries its keys that way and in-band
detection stops (a tone in the audio after that is a duplicate, or something playing on the line).
"""

from __future__ import annotations

import math

import numpy as np

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")


class ToneDetector:
    """In-band DTMF in one call's caller audio (int16 samples at `rate`); see the module docstring."""

    def __init__(self, rate: int = 16000, *, window_s: float = 0.025, min_rms: float = 100.0,
                 min_tone: float = 250.0, min_share: float = 0.7, max_twist_db: float = 8.0,
                 min_margin_db: float = 8.0, hold: int = 2) -> None:
        self.rate = rate
        self.size = round(window_s * rate)
        self.hop = self.size // 2
        n = np.arange(self.size)
        freqs = np.array(ROWS + COLUMNS)
        self._basis = np.exp(-2j * np.pi * np.outer(freqs, n) / rate)
        self.min_ms = min_rms ** 2
        self.min_tone = min_tone
        self.min_share = min_share
        self.max_twist = 10 ** (max_twist_db / 20)
        self.min_margin = 10 ** (min_margin_db / 20)
        self.hold = hold
        self._buffer = np.zeros(0, np.float64)
        self._buffer_start = 0  # the sample index of _buffer[0] on the call's timeline
        self._candidate = ""  # the key the last windows named, and since which window
        self._run = 0
        self._run_start = 0
        self._pressed = ""  # the key being held down ("" when none)
        self._misses = 0

    def push(self, pcm: np.ndarray) -> list[tuple[str, int]]:
        """The next caller samples; the keys whose press was recognised in them, each with the sample
        index (on the call's timeline, counted from the first sample pushed) where its tone began."""
        self._buffer = np.concatenate([self._buffer, pcm.astype(np.float64)])
        found: list[tuple[str, int]] = []
        while len(self._buffer) >= self.size:
            key = self.key_in(self._buffer[:self.size])
            pressed = self._step(key, self._buffer_start)
            if pressed:
                found.append((pressed, self._run_start))
            self._buffer = self._buffer[self.hop:]
            self._buffer_start += self.hop
        return found

    @property
    def in_tone(self) -> bool:
        """A key's tone is on the line now (its audio is no speech)."""
        return bool(self._pressed)

    def key_in(self, window: np.ndarray) -> str:
        """The key whose tone pair fills `window` (`size` samples), or ""."""
        x = window.astype(np.float64)
        ms = float(np.mean(x * x))
        if ms < self.min_ms:
            return ""
        amp = 2.0 * np.abs(self._basis @ x) / self.size  # each frequency's amplitude
        rows, cols = amp[:4], amp[4:]
        r, c = int(np.argmax(rows)), int(np.argmax(cols))
        a_r, a_c = float(rows[r]), float(cols[c])
        if a_r < self.min_tone or a_c < self.min_tone:
            return ""
        if (a_r * a_r + a_c * a_c) / 2.0 < self.min_share * ms:
            return ""
        if max(a_r, a_c) > self.max_twist * min(a_r, a_c):
            return ""
        if (np.delete(rows, r) * self.min_margin > a_r).any() or (np.delete(cols, c) * self.min_margin
                                                                     > a_c).any():
            return ""
        return KEYS[r][c]

    def _step(self, key: str, at: int) -> str:
        """One window's key into the press state; the key pressed by it, if any."""
        if key and key == self._candidate:
            self._run += 1
        else:
            self._candidate, self._run, self._run_start = key, 1, at
        if self._pressed:
            if key == self._pressed:
                self._misses = 0
                return ""
            self._misses += 1
            if self._misses < self.hold:
                return ""
            self._pressed, self._misses = "", 0
        if key and self._run >= self.hold:
            self._pressed, self._misses = key, 0
            return key
        return ""


class Keypad:
    """The call's keys from both paths, each press once (see the module docstring). Times in seconds."""

    def __init__(self, window_s: float = 0.5) -> None:
        self.window_s = window_s
        self.in_band = True  # still listening for tones
        self._last: tuple[str, float, str] | None = None  # (key, time, path)

    def out_of_band(self, key: str, t: float) -> bool:
        """An RFC 2833 or SIP INFO key at `t`: whether it is a new press."""
        self.in_band = False
        return self._new(key, t, "out")

    def tone(self, key: str, t: float) -> bool:
        """A key heard in the audio at `t`: whether it is a new press."""
        return self.in_band and self._new(key, t, "tone")

    def _new(self, key: str, t: float, path: str) -> bool:
        last = self._last
        self._last = (key, t, path)
        return not (last is not None and last[0] == key and last[2] != path
                    and math.fabs(t - last[1]) <= self.window_s)
