"""In-band DTMF (server/dtmf.py) on generated key tones, alone and mixed with real speech and noise from
../shared/audio, through a G.711 line (8 kHz, mu-law); and the keypad that merges in-band keys with
RFC 2833 ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.audio import CALL_RATE, read_audio, resample
from server.dtmf import COLUMNS, KEYS, ROWS, Keypad, ToneDetector

SHARED = Path(__file__).resolve().parents[3] / "shared"
SPEECH = SHARED / "audio" / "speech"
NOISE = SHARED / "audio" / "noise"


def key_tone(key: str, ms: float, level_dbfs: float = -10.0, twist_db: float = 0.0) -> np.ndarray:
    """The tone pair of `key`, `ms` long, each tone at `level_dbfs` (the row tone `twist_db` louder)."""
    [(r, c)] = [(i, row.index(key)) for i, row in enumerate(KEYS) if key in row]
    t = np.arange(round(ms * CALL_RATE / 1000)) / CALL_RATE
    amp = 32768 * 10 ** (level_dbfs / 20)
    return (amp * 10 ** (twist_db / 20) * np.sin(2 * np.pi * ROWS[r] * t)
            + amp * np.sin(2 * np.pi * COLUMNS[c] * t))


def dialled(keys: str, tone_ms: float = 70, gap_ms: float = 60, lead_ms: float = 300,
            level_dbfs: float = -10.0) -> tuple[np.ndarray, list[int]]:
    """`keys` dialled as tones after `lead_ms` of silence; the float signal and where each tone begins."""
    parts, starts, at = [np.zeros(round(lead_ms * 16))], [], round(lead_ms * 16)
    for key in keys:
        tone = key_tone(key, tone_ms, level_dbfs)
        starts.append(at)
        parts += [tone, np.zeros(round(gap_ms * 16))]
        at += len(tone) + round(gap_ms * 16)
    return np.concatenate(parts), starts


def g711(x: np.ndarray) -> np.ndarray:
    """`x` (float, int16 scale) as a phone line carries it: 8 kHz, mu-law, back at the call's rate."""
    pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    narrow = resample(pcm, CALL_RATE, 8000).astype(np.float64) / 32768
    mu = np.sign(narrow) * np.log1p(255 * np.abs(narrow)) / np.log1p(255)
    mu = np.round(mu * 127) / 127  # 8 bits
    back = np.sign(mu) * np.expm1(np.abs(mu) * np.log1p(255)) / 255
    return resample((back * 32767).astype(np.int16), 8000, CALL_RATE)


def detect(pcm: np.ndarray, chunk: int = 320) -> list[tuple[str, int]]:
    """Every key the detector finds in `pcm`, fed 20 ms at a time as the call's frames come."""
    det, found = ToneDetector(), []
    for i in range(0, len(pcm), chunk):
        found += det.push(pcm[i:i + chunk])
    return found


def shared_audio(folder: Path) -> list[tuple[str, np.ndarray]]:
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (the shared real recordings)")
    return [(p.name, read_audio(p)) for p in sorted(folder.glob("*.wav"))]


def test_every_key_alone_is_heard_once_where_it_begins() -> None:
    for key in "".join(KEYS):
        signal, [start] = dialled(key)
        found = detect(g711(signal))
        assert [k for k, _ in found] == [key], (key, found)
        assert abs(found[0][1] - start) <= 0.0125 * CALL_RATE, (key, found, start)


def test_a_number_keyed_fast_comes_out_in_order() -> None:
    keys = "0123456789*#"
    signal, starts = dialled(keys, tone_ms=45, gap_ms=45)
    found = detect(g711(signal))
    assert "".join(k for k, _ in found) == keys
    assert all(abs(at - start) <= 0.0125 * CALL_RATE for (_, at), start in zip(found, starts, strict=True))


def test_too_short_too_quiet_or_too_twisted_is_no_key() -> None:
    assert detect(g711(dialled("5", tone_ms=20)[0])) == []
    assert detect(g711(dialled("5", level_dbfs=-50)[0])) == []
    twisted = np.concatenate([np.zeros(4800), key_tone("5", 100, -14, twist_db=12), np.zeros(4800)])
    assert detect(g711(twisted)) == []
    assert [k for k, _ in detect(g711(np.concatenate([np.zeros(4800), key_tone("5", 100, -14, twist_db=6),
                                                       np.zeros(4800)])))] == ["5"]


def test_speech_and_noise_alone_press_no_key() -> None:
    """Talk-off: the shared recordings (3.5 minutes of speech, 1.5 of noise, the scenarios' callers) give
    no key."""
    material = shared_audio(SPEECH) + shared_audio(NOISE) + shared_audio(SHARED / "scenarios")
    heard = {name: detect(g711(pcm.astype(np.float64))) for name, pcm in material}
    seconds = sum(len(pcm) for _, pcm in material) / CALL_RATE
    print(f"\n{seconds:.0f} s of speech and noise: {sum(len(v) for v in heard.values())} keys")
    assert not any(heard.values()), heard


def active_rms(x: np.ndarray) -> float:
    """The level of the louder half of `x`'s 20 ms frames: speech's level while it is spoken."""
    frames = x[: len(x) // 320 * 320].astype(np.float64).reshape(-1, 320)
    levels = np.sort(np.mean(frames ** 2, axis=1))[len(frames) // 2:]
    return float(np.sqrt(np.mean(levels)))


@pytest.mark.parametrize(("speech_db", "min_heard"), [(-10.0, 1.0), (-6.0, 0.9)])
def test_keys_over_speech_are_heard(speech_db: float, min_heard: float) -> None:
    """A caller keying a number while talking on: the tones at -12 dBFS each, each shared recording
    `speech_db` below the pair's level while it speaks, through the line. Speech this loud over the
    tones costs some keys (3 of 66 at -6 dB), and never adds one."""
    keys = "3471234567#"
    signal, starts = dialled(keys, tone_ms=80, gap_ms=80, level_dbfs=-12)
    pair_rms = 32768 * 10 ** (-12 / 20)  # two sines of that amplitude
    heard = total = 0
    for name, pcm in shared_audio(SPEECH):
        speech = np.resize(pcm.astype(np.float64), len(signal))
        speech *= pair_rms * 10 ** (speech_db / 20) / active_rms(speech)
        found = detect(g711(signal + speech))
        right = [any(k == key and abs(at - start) <= 0.05 * CALL_RATE for k, at in found)
                 for key, start in zip(keys, starts, strict=True)]
        assert len(found) == sum(right), (name, found)  # nothing but the keys pressed
        heard, total = heard + sum(right), total + len(keys)
    print(f"\nspeech {speech_db} dB under the tones: {heard}/{total} keys heard")
    assert heard >= min_heard * total


def test_the_tone_is_flagged_while_it_lasts() -> None:
    det = ToneDetector()
    signal, _ = dialled("7", tone_ms=200, lead_ms=100)
    flags = []
    for i in range(0, len(signal), 320):
        det.push(signal[i:i + 320])
        flags.append(det.in_tone)
    assert flags[:4] == [False] * 4 and any(flags[6:15]) and not flags[-1]


def test_the_keypad_takes_each_press_once_from_either_path() -> None:
    pad = Keypad()
    assert pad.tone("5", 1.0)
    assert not pad.out_of_band("5", 1.1)  # the same press, sent both ways
    assert not pad.in_band  # the line carries keys out of band: tones are no longer listened for
    assert not pad.tone("6", 2.0)
    assert pad.out_of_band("6", 2.1)
    assert pad.out_of_band("6", 2.3)  # the same key again out of band is a second press
    other = Keypad()
    assert other.out_of_band("1", 1.0) and other.out_of_band("1", 1.2) and not other.tone("1", 1.3)
