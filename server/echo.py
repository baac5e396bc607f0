"""Echo gating: the bot must never barge in on itself.

A caller's phone (a speakerphone, a PSTN hybrid) leaks the bot's own voice back into the call, late and
quieter. standin knows exactly what it played and when, so for each VAD window it looks for the bot's
audio in the caller's, as a normalised correlation against the bot's audio at every delay up to
`max_delay_ms`. A window that is mostly the bot coming back does not count as the caller speaking; the
caller talking over the bot breaks the match and gets through. The test does not depend on how loud the
echo is.

Speech matches other speech at some delay now and then, so a match anywhere must be near perfect
(`sure_match`). Such matches reveal the echo path's delay, which moves little during a call: a few
milliseconds, or a whole codec frame when a jitter buffer or a clock catches up. At those delays a looser
match (`min_match`: the echo explains that share of the window's energy) is enough, so
a caller as loud as the echo still gets through. Only shapes are compared, never levels, so a gain
changing on the way (the caller's phone, level normalisation) does not matter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class EchoOptions:
    enabled: bool = True
    max_delay_ms: int = 400  # the longest echo path expected (network + phone)
    sure_match: float = 0.85  # correlation² that makes a window echo at any delay
    min_match: float = 0.75  # ... at the echo path's delay, once learnt
    delay_tolerance_ms: float = 4.0  # jitter buffers move the delay a little
    slip_ms: float = 10.0  # ... and clocks catching up move it by whole codec frames,
    max_slips: int = 2  # this many either way from a delay learnt
    silence_level: float = 1e-7  # mean square (full scale 1) below which there is nothing to match
    hangover: int = 4  # quiet windows after echo that still count as echo (the VAD's memory of it)
    tail_db: float = 30.0  # ... quiet meaning silent, or this far below the last echo window


class EchoGate:
    def __init__(self, options: EchoOptions, rate: int = 16000) -> None:
        self.options = options
        self.max_delay = options.max_delay_ms * rate // 1000
        self._bot = np.zeros(0, np.float32)  # the most recent bot audio
        self._bot_end = 0  # call sample index one past the newest bot sample
        self._keep = self.max_delay + 4096
        self._hangover = 0
        self._tail_energy = 0.0  # below this, a window right after echo is the echo's tail
        self._delays: deque[int] = deque(maxlen=5)  # the delays of the latest sure matches, in samples
        self._tolerance = round(options.delay_tolerance_ms * rate / 1000)
        self.echo_windows = 0
        slip = round(options.slip_ms * rate / 1000)
        # How far from a learnt delay the echo may have moved: a little (tried first), or whole slips, each
        # give or take the tolerance.
        self._near = np.arange(-self._tolerance, self._tolerance + 1)
        slips = range(-options.max_slips, options.max_slips + 1)
        self._shifts = np.unique([j * slip + self._near for j in slips])
        self._slipped = np.setdiff1d(self._shifts, self._near)

    def played(self, frame: np.ndarray) -> None:
        """Bot audio (int16) that went to the line, in order, from the start of the call."""
        self._bot = np.concatenate([self._bot, frame.astype(np.float32) / 32768.0])[-self._keep:]
        self._bot_end += len(frame)

    def is_echo(self, window: np.ndarray, end: int) -> bool:
        """Whether the caller audio `window` (float32, ending at call sample `end`) is the bot's voice."""
        o = self.options
        n = len(window)
        mic_energy = float(window @ window)
        if not o.enabled:
            return False
        if mic_energy < o.silence_level * n or (mic_energy < self._tail_energy and self._hangover):
            # Silence, or the echo's own faint tail, right after echo: the VAD may still be hearing the echo
            # it just had.
            self._hangover = max(0, self._hangover - 1)
            return self._hangover > 0
        # The bot samples that can be echoing in this window: [end - n - max_delay, end).
        stop = len(self._bot) - max(0, self._bot_end - end)
        bot = self._bot[max(0, stop - n - self.max_delay):max(0, stop)]
        if len(bot) < n:
            self._hangover = 0
            return False
        echo = self._at_known_delays(bot, window) or self._search(bot, window, mic_energy)
        self._hangover = o.hangover if echo else 0
        self._tail_energy = mic_energy * 10 ** (-o.tail_db / 10) if echo else 0.0
        self.echo_windows += echo
        return echo

    def _at_known_delays(self, bot: np.ndarray, window: np.ndarray) -> bool:
        """Match the window at the delays learnt lately, and a slip or two either side of them: a few dot
        products, no FFT. A jitter buffer or a clock catching up moves the echo path by whole codec frames,
        back and forth; a window across such a move is echo when its halves are, each at its own delay."""
        if len(self._delays) < 3:
            return False
        n, min_match = len(window), self.options.min_match
        if (self._known_match(bot, window, 0, n, self._near) >= min_match
                or self._known_match(bot, window, 0, n, self._slipped) >= min_match):
            return True
        h = n // 2
        e0, e1 = float(window[:h] @ window[:h]), float(window[h:] @ window[h:])
        m0 = self._known_match(bot, window, 0, h, self._shifts)
        m1 = self._known_match(bot, window, h, n, self._shifts)
        return m0 * e0 + m1 * e1 >= min_match * (e0 + e1)

    def _known_match(self, bot: np.ndarray, window: np.ndarray, a: int, b: int, shifts: np.ndarray) -> float:
        """The best match of window[a:b] with the bot's audio at the delays learnt lately, each moved by
        `shifts` (samples)."""
        part, m = window[a:b], b - a
        floor = self.options.silence_level * m
        delays = np.unique(np.fromiter(self._delays, np.int64))
        # Where the bot's audio for window[a:b] starts at each candidate delay (delay 0: it ends with it).
        starts = (len(bot) - len(window) + a - delays)[:, None] + shifts[None, :]
        starts = np.unique(starts[(starts >= 0) & (starts <= len(bot) - m)])
        if not len(starts):
            return 0.0
        views = np.lib.stride_tricks.sliding_window_view(bot, m)[starts]
        energy = np.maximum(np.einsum("ij,ij->i", views, views), floor)
        corr = views @ part
        return float((corr * corr / (energy * max(float(part @ part), floor))).max())

    def _search(self, bot: np.ndarray, window: np.ndarray, mic_energy: float) -> bool:
        """Match the window against the bot's audio at every delay; a sure match teaches the delay."""
        o, n = self.options, len(window)
        squares = np.concatenate([[0.0], np.cumsum(bot.astype(np.float64) ** 2)])
        bot_energy = squares[n:] - squares[:-n]  # of each n-sample slice
        if bot_energy.max() < o.silence_level * n:
            return False
        size = 1 << (len(bot) + n - 1).bit_length()
        corr = np.fft.irfft(np.fft.rfft(bot, size) * np.conj(np.fft.rfft(window, size)), size)
        corr = corr[:len(bot) - n + 1]
        match = corr**2 / (np.maximum(bot_energy, o.silence_level * n) * mic_energy)
        best = int(np.argmax(match))
        if match[best] < o.sure_match:
            return False
        self._delays.append(len(match) - 1 - best)  # how far back in the bot's audio it lies
        return True
