"""Audio material for measuring Whisper on silence, noise and short answers (benchmarks/whisper_noise.py and
tests/models/test_whisper_real.py): RTP audio out of a pcap, a telephone channel, noise mixing, made-up
music on hold, espeak-ng answers, the runtime's VAD fragments, and a word error rate.

Everything is numpy (and soxr for rates); the caller's audio ends as int16 mono at 16 kHz, the rate of a
call inside standin.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.stt_whisper import normalize_phrase
from server.audio import CALL_RATE, resample, to_int16

PHONE_RATE = 8000

# --------------------------------------------------------------------------- G.711


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 15
    shift = np.maximum(exponent - 1, 0)
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << shift)
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 15
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


G711 = {"alaw": _alaw_table(), "ulaw": _ulaw_table()}
_PAYLOAD_LAW = {0: "ulaw", 8: "alaw"}  # RTP static payload types (RFC 3551)


def g711_decode(payload: bytes, law: str) -> np.ndarray:
    return G711[law][np.frombuffer(payload, dtype=np.uint8)]


def g711_encode(x: np.ndarray, law: str) -> np.ndarray:
    """G.711 codes (uint8) of int16 samples, by segment and mantissa as the recommendation's encoder."""
    v = x.astype(np.int32)
    if law == "ulaw":
        magnitude = np.minimum(np.abs(v >> 2), 8159) + 33  # 14 bits, biased
        exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 7)
        mantissa = np.where(magnitude > 0x1FFF, 15, (magnitude >> (exponent + 1)) & 15)
        code = np.where(v < 0, 0x80, 0) | (exponent << 4) | mantissa
        ulaw: np.ndarray = (~code & 0xFF).astype(np.uint8)
        return ulaw
    magnitude = np.where(v < 0, -v - 1, v) >> 3  # 13 bits
    segment = np.clip(np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4, 0, 7)
    mantissa = np.where(segment == 0, magnitude >> 1, magnitude >> np.maximum(segment, 1)) & 15
    code = np.where(v >= 0, 0x80, 0) | (segment << 4) | mantissa
    alaw: np.ndarray = (code ^ 0x55).astype(np.uint8)
    return alaw


def g711_round_trip(x: np.ndarray, law: str) -> np.ndarray:
    """int16 samples through a G.711 encoder and decoder."""
    decoded: np.ndarray = G711[law][g711_encode(x, law)]
    return decoded


# --------------------------------------------------------------------------- RTP in a pcap


def pcap_audio(path: Path) -> tuple[int, np.ndarray]:
    """(payload type, int16 audio at 8 kHz) of the RTP stream in a classic little/big-endian pcap of
    Ethernet/IPv4/UDP packets. G.711 payloads (PT 0, 8) are decoded; an RFC 2833 telephone-event stream
    (PT 101, as SIPp's dtmf_2833_*.pcap) carries no audio, so it becomes the silence the line holds while
    the events last."""
    data = path.read_bytes()
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}.get(data[:4])
    if endian is None:
        raise ValueError(f"{path}: not a classic pcap file")
    (link,) = struct.unpack(endian + "I", data[20:24])
    if link != 1:
        raise ValueError(f"{path}: link type {link}, only Ethernet (1) is read")
    offset, payloads, types, stamps = 24, [], set(), []
    while offset + 16 <= len(data):
        (length,) = struct.unpack(endian + "I", data[offset + 8:offset + 12])
        frame = data[offset + 16:offset + 16 + length]
        offset += 16 + length
        if struct.unpack(">H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        if ip[9] != 17:  # not UDP
            continue
        rtp = ip[(ip[0] & 15) * 4 + 8:]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            continue
        csrc, has_ext, padded = rtp[0] & 15, rtp[0] & 0x10, rtp[0] & 0x20
        start = 12 + 4 * csrc
        if has_ext:
            start += 4 + 4 * struct.unpack(">H", rtp[start + 2:start + 4])[0]
        end = len(rtp) - (rtp[-1] if padded else 0)
        types.add(rtp[1] & 0x7F)
        stamps.append(struct.unpack(">I", rtp[4:8])[0])
        payloads.append(rtp[start:end])
    if len(types) != 1:
        raise ValueError(f"{path}: expected one RTP payload type, found {sorted(types)}")
    pt = types.pop()
    if pt in _PAYLOAD_LAW:
        return pt, g711_decode(b"".join(payloads), _PAYLOAD_LAW[pt])
    if pt >= 96:  # telephone-event: the longest event duration (16 bits, in samples) and the span of stamps
        durations = [struct.unpack(">H", p[2:4])[0] for p in payloads if len(p) >= 4]
        samples = max([*durations, max(stamps) - min(stamps)])
        return pt, np.zeros(samples, dtype=np.int16)
    raise ValueError(f"{path}: payload type {pt} is neither G.711 nor a telephone event")


# --------------------------------------------------------------------------- levels and the line


def dbfs(x: np.ndarray) -> float:
    """RMS level of int16 samples, dB relative to full scale (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean((x.astype(np.float64) / 32768.0) ** 2))) if len(x) else 0.0
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def active_dbfs(x: np.ndarray, rate: int) -> float:
    """Level over the loud part only (20 ms blocks within 30 dB of the loudest), as a speech level."""
    block = rate // 50
    blocks = x[:len(x) // block * block].astype(np.float64).reshape(-1, block) / 32768.0
    power = np.mean(blocks ** 2, axis=1)
    loud = power[power >= power.max() * 1e-3]
    return float(10 * np.log10(np.mean(loud))) if len(loud) else float("-inf")


def at_level(x: np.ndarray, level_db: float, current_db: float | None = None) -> np.ndarray:
    """int16 `x` scaled so its level (RMS, or `current_db` when given) becomes `level_db`."""
    now = dbfs(x) if current_db is None else current_db
    if not np.isfinite(now):
        return x.copy()
    return to_int16(x.astype(np.float32) / 32768.0 * np.float32(10 ** ((level_db - now) / 20)))


def band_limit(x: np.ndarray, rate: int, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """A telephone band-pass (raised-cosine edges 100 Hz wide), done in the frequency domain."""
    spectrum = np.fft.rfft(x.astype(np.float64))
    f = np.fft.rfftfreq(len(x), 1 / rate)
    gain = np.clip((f - (low - 100)) / 100, 0, 1) * np.clip(((high + 100) - f) / 100, 0, 1)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.clip(np.rint(np.fft.irfft(spectrum * gain, n=len(x))), -32768, 32767).astype(np.int16)


def phone_line(x: np.ndarray, rate: int, law: str = "ulaw") -> np.ndarray:
    """int16 audio at `rate` as a call delivers it to standin: 8 kHz, the telephone band, G.711, then
    resampled to the call's 16 kHz."""
    narrow = band_limit(resample(x, rate, PHONE_RATE), PHONE_RATE)
    return resample(g711_round_trip(narrow, law), PHONE_RATE, CALL_RATE)


def noise_bed(noise: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """`samples` of `noise` from a random place in it (looped when it is shorter)."""
    bed = np.tile(noise, -(-samples // len(noise)) + 1)
    start = int(rng.integers(0, len(bed) - samples + 1))
    return bed[start:start + samples]


def hiss(seconds: float, level_db: float, rng: np.random.Generator, pink: bool = False) -> np.ndarray:
    """White (or pink, -3 dB/octave) Gaussian noise at `level_db` RMS, int16 at 16 kHz."""
    n = round(seconds * CALL_RATE)
    white = rng.standard_normal(n)
    if pink:
        spectrum = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1 / CALL_RATE)
        spectrum[1:] /= np.sqrt(f[1:])
        spectrum[0] = 0
        white = np.fft.irfft(spectrum, n=n)
    white *= 10 ** (level_db / 20) / np.sqrt(np.mean(white ** 2))
    return to_int16(white.astype(np.float32))


# --------------------------------------------------------------------------- music on hold and line tones

_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4))  # scale degrees of chord roots


def _tone(freq: float, seconds: float, timbre: str, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    if timbre == "sine":
        wave: np.ndarray | int = np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(4 * np.pi * freq * t)
    elif timbre == "square":  # odd harmonics below 6 kHz
        wave = sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, 30, 2) if k * freq < 6000)
    elif timbre == "piano":  # harmonics that die away faster the higher they are
        wave = sum(np.sin(2 * np.pi * k * freq * t) * np.exp(-t * (1.5 + k)) / k for k in range(1, 9))
    elif timbre == "pad":  # three detuned saws, slowly breathing in
        wave = sum(sum(np.sin(2 * np.pi * k * freq * d * t) / k for k in range(1, 12) if k * freq < 6000)
                   for d in (0.995, 1.0, 1.006)) * np.minimum(1.0, t / 0.4)
    elif timbre == "bell":  # inharmonic partials
        wave = sum(np.sin(2 * np.pi * freq * r * t) * np.exp(-t * (1 + 2 * r)) for r in (1, 2.76, 5.4, 8.93))
    elif timbre == "organ":
        tremolo = 1 + 0.1 * np.sin(2 * np.pi * 6 * t)
        wave = sum(np.sin(2 * np.pi * freq * k * t) for k in (0.5, 1, 2, 3, 4)) * tremolo
    else:
        raise ValueError(timbre)
    attack, release = min(0.02, seconds / 4), min(0.08, seconds / 3)
    envelope = np.minimum(1.0, np.minimum(t / attack, (seconds - t) / release))
    return np.asarray(wave * np.clip(envelope, 0, 1), dtype=np.float64)


def music(seed: int, seconds: float, timbre: str, rate: int = CALL_RATE) -> np.ndarray:
    """A made-up piece of music on hold: a chord each bar, a bass line and a melody wandering over the
    scale, at -20 dBFS. int16 at `rate`."""
    rng = np.random.default_rng(seed)
    root = 48 + int(rng.integers(0, 12))  # MIDI note of the key
    scale = _SCALES["major" if seed % 2 == 0 else "minor"]
    beat = 60 / float(rng.uniform(72, 132))
    progression = _PROGRESSIONS[seed % len(_PROGRESSIONS)]
    out = np.zeros(round(seconds * rate) + rate)

    def hz(note: int) -> float:
        return 440.0 * 2 ** ((note - 69) / 12)

    def place(wave: np.ndarray, at: float, gain: float) -> None:
        i = round(at * rate)
        n = min(len(wave), len(out) - i)
        if n > 0:
            out[i:i + n] += gain * wave[:n]

    def note_of(degree: int, octave: int) -> int:
        return root + 12 * (octave + degree // 7) + scale[degree % 7]

    bar, t = 0, 0.0
    degree = 7
    while t < seconds:
        chord = progression[bar % len(progression)]
        for step in (0, 2, 4):
            place(_tone(hz(note_of(chord + step, 0)), 4 * beat, timbre, rate), t, 0.12)
        for b in range(4):  # bass on every beat
            place(_tone(hz(note_of(chord, -1)), beat * 0.9, "sine", rate), t + b * beat, 0.25)
        m = 0.0
        while m < 4 * beat - 1e-6:
            length = beat * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
            length = min(length, 4 * beat - m)
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 4, 14))
            place(_tone(hz(note_of(degree, 1)), length * 0.95, timbre, rate), t + m, 0.3)
            m += length
        t += 4 * beat
        bar += 1
    out = out[:round(seconds * rate)]
    return at_level(to_int16((out / (np.abs(out).max() + 1e-9) * 0.9).astype(np.float32)), -20.0)


def line_tone(kind: str, seconds: float, rate: int = CALL_RATE) -> np.ndarray:
    """Call progress tones at -20 dBFS: 'ringback_eu' (425 Hz, 1 s on, 4 s off), 'ringback_us'
    (440 + 480 Hz, 2 s on, 4 s off), 'busy_eu' (425 Hz, 0.5 s on, 0.5 s off)."""
    t = np.arange(round(seconds * rate)) / rate
    if kind == "ringback_eu":
        wave, on, period = np.sin(2 * np.pi * 425 * t), 1.0, 5.0
    elif kind == "ringback_us":
        wave, on, period = np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t), 2.0, 6.0
    elif kind == "busy_eu":
        wave, on, period = np.sin(2 * np.pi * 425 * t), 0.5, 1.0
    else:
        raise ValueError(kind)
    on_part = (t % period) < on
    wave = wave * on_part * (10 ** (-20 / 20) / np.sqrt(np.mean(wave[on_part] ** 2)))
    return to_int16(wave.astype(np.float32))


# --------------------------------------------------------------------------- spoken answers


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str, speed: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
    """`text` spoken by the espeak-ng binary: (int16 mono, its sample rate)."""
    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True, timeout=30).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="int16")
    return np.asarray(audio, dtype=np.int16), int(rate)


def trim(x: np.ndarray, rate: int, below_db: float = 40.0) -> np.ndarray:
    """`x` without the leading and trailing 10 ms blocks more than `below_db` under its loudest block."""
    block = rate // 100
    n = len(x) // block
    power = np.mean((x[:n * block].astype(np.float64).reshape(n, block)) ** 2, axis=1)
    loud = np.flatnonzero(power >= power.max() * 10 ** (-below_db / 10))
    return x[loud[0] * block:(loud[-1] + 1) * block] if len(loud) else x


def answer_clip(speech: np.ndarray, rate: int, law: str, *, noise: np.ndarray | None = None,
                snr_db: float = 15.0, rng: np.random.Generator | None = None, lead_s: float = 0.6,
                tail_s: float = 0.9, level_db: float = -26.0) -> np.ndarray:
    """A short spoken answer as a caller's line carries it: trimmed, resampled to 16 kHz, at `level_db`
    active speech level (a nominal telephone level), with silence around it, with `noise` (16 kHz) under
    it at `snr_db` when given, through `phone_line`; int16 at 16 kHz."""
    core = trim(resample(speech, rate, CALL_RATE), CALL_RATE)
    core = at_level(core, level_db, current_db=active_dbfs(core, CALL_RATE))
    clip = np.concatenate([np.zeros(round(lead_s * CALL_RATE), dtype=np.int16), core,
                           np.zeros(round(tail_s * CALL_RATE), dtype=np.int16)])
    if noise is not None:
        bed = at_level(noise_bed(noise, len(clip), rng or np.random.default_rng(0)), level_db - snr_db)
        clip = to_int16((clip.astype(np.float32) + bed.astype(np.float32)) / 32768.0)
    return phone_line(clip, CALL_RATE, law)


# --------------------------------------------------------------------------- the runtime's fragments


def vad_fragments(x: np.ndarray, vad: object, cut_ms: int | None = None) -> list[tuple[int, int]]:
    """(start, end) samples of the fragments the call's segmenter (Silero VAD windows, the core's default
    hysteresis, pre-roll, post-roll and minimum speech) closes over int16 16 kHz `x`, as the runtime would
    hand them to STT. A fragment still open at the end is closed there."""
    from server.core.segmenter import FragmentClosed, Segmenter, SegmenterOptions

    options = SegmenterOptions() if cut_ms is None else SegmenterOptions(cut_ms=cut_ms)
    seg = Segmenter(options, CALL_RATE)
    stream = vad.stream(CALL_RATE)  # type: ignore[attr-defined]
    window = stream.window
    audio = x.astype(np.float32) / 32768.0
    out: list[tuple[int, int]] = []
    end = 0
    for start in range(0, len(audio) - window + 1, window):
        end = start + window
        for event in seg.push(start, end, stream.probability(audio[start:end])):
            if isinstance(event, FragmentClosed):
                out.append((event.fragment.start, event.fragment.end))
    if seg.fragment is not None:
        event = seg.close(end)
        if isinstance(event, FragmentClosed):
            out.append((event.fragment.start, event.fragment.end))
    return out


# --------------------------------------------------------------------------- word error rate


def words(text: str) -> list[str]:
    """Words for scoring: case, accents, apostrophes and punctuation gone (`normalize_phrase`)."""
    return normalize_phrase(text).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words, by edit distance."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return float(len(hyp) > 0)
    return edit_distance(ref, hyp) / len(ref)


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]
