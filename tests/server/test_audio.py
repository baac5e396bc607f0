"""Audio helpers: reading files of any shape, sample conversions, crash-safe call recordings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from server.audio import (
    CALL_RATE,
    FRAME,
    AudioFileError,
    StereoWavWriter,
    read_audio,
    resample,
    to_float,
    to_int16,
)

ROOT = Path(__file__).resolve().parents[2]


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def test_constants() -> None:
    assert CALL_RATE == 16000
    assert FRAME == 320


def test_read_stereo_float_44k(tmp_path: Path) -> None:
    rate, seconds = 44100, 2
    t = np.arange(rate * seconds) / rate
    sine = np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([0.6 * sine, 0.2 * sine], axis=1).astype(np.float32)  # average: 0.4 * sine
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, rate, subtype="FLOAT")
    x = read_audio(path)
    assert x.dtype == np.int16 and x.ndim == 1
    assert abs(len(x) - CALL_RATE * seconds) <= 1
    assert abs(_peak_hz(x, CALL_RATE) - 440) < 2
    middle = x[2000:-2000].astype(np.float64)
    assert np.max(np.abs(middle)) == pytest.approx(0.4 * 32768, rel=0.01)
    want = to_int16(0.4 * np.sin(2 * np.pi * 440 * np.arange(len(x)) / CALL_RATE))
    assert np.max(np.abs(middle - want[2000:-2000])) < 0.005 * 32768  # same phase, same shape
    assert np.array_equal(read_audio(str(path), rate=8000).shape, (8000 * seconds,))


def test_read_8k_file(tmp_path: Path) -> None:
    path = tmp_path / "narrow.wav"
    t = np.arange(8000) / 8000
    sf.write(path, (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16), 8000, subtype="PCM_16")
    x = read_audio(path)
    assert len(x) == 16000
    assert abs(_peak_hz(x, CALL_RATE) - 1000) < 2
    native = read_audio(path, rate=8000)
    assert len(native) == 8000
    np.testing.assert_array_equal(native, sf.read(path, dtype="int16")[0])


def test_read_shared_8k_speech() -> None:
    path = Path("/work/shared/audio/speech/ldc93s1_8k.wav")
    if not path.is_file():
        pytest.skip(f"{path} is absent (shared audio folder not present on this machine)")
    frames = sf.info(str(path)).frames
    x = read_audio(path)
    assert abs(len(x) - 2 * frames) <= 1
    assert np.abs(x).max() > 1000


def test_read_flac(tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    data = (np.random.default_rng(1).standard_normal(4800) * 3000).astype(np.int16)
    sf.write(path, data, 16000)
    np.testing.assert_array_equal(read_audio(path), data)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.wav"
    with pytest.raises(AudioFileError, match="no such file") as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="not a regular file"):
        read_audio(tmp_path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioFileError, match="cannot be read") as info:
        read_audio(path)
    assert str(path) in str(info.value)
    assert "ffmpeg" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty") as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_file_without_samples(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, np.int16), 16000, subtype="PCM_16")
    assert path.stat().st_size > 0
    with pytest.raises(AudioFileError, match="no audio samples") as info:
        read_audio(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("fmt", "keep"), [("wav", 0.5), ("wav", 30 / 32044), ("flac", 0.5), ("ogg", 0.5)])
def test_truncated_file(tmp_path: Path, fmt: str, keep: float) -> None:
    whole = tmp_path / f"whole.{fmt}"
    data = (np.random.default_rng(2).standard_normal(16000) * 3000).astype(np.int16)
    sf.write(whole, data, 16000)
    blob = whole.read_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(blob[:max(1, int(len(blob) * keep))])
    with pytest.raises(AudioFileError) as info:
        read_audio(path)
    assert str(path) in str(info.value)


def test_odd_sized_chunk_before_data_is_fine(tmp_path: Path) -> None:
    """A WAV with an extra (odd-sized, padded) chunk before `data` is not mistaken for a truncated one."""
    plain = tmp_path / "plain.wav"
    data = np.arange(-500, 500, dtype=np.int16)
    sf.write(plain, data, 16000, subtype="PCM_16")
    blob = plain.read_bytes()
    at = blob.index(b"data")
    extra = b"junk" + (3).to_bytes(4, "little") + b"abc\x00"
    body = blob[12:at] + extra + blob[at:]
    path = tmp_path / "extra.wav"
    path.write_bytes(b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WAVE" + body)
    np.testing.assert_array_equal(read_audio(path), data)


def test_resample() -> None:
    x = to_int16(0.5 * np.sin(2 * np.pi * 300 * np.arange(8000) / 8000))
    assert resample(x, 8000, 8000) is x
    y = resample(x, 8000, 16000)
    assert y.dtype == np.int16 and len(y) == 16000
    assert abs(_peak_hz(y, 16000) - 300) < 2
    z = resample(y, 16000, 8000)
    assert len(z) == 8000
    assert np.max(np.abs(z[200:-200].astype(int) - x[200:-200])) < 200
    with pytest.raises(ValueError, match="int16"):
        resample(x.astype(np.float32), 8000, 16000)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_to_float_and_back() -> None:
    x = np.array([-32768, -1, 0, 1, 16384, 32767], dtype=np.int16)
    f = to_float(x)
    assert f.dtype == np.float32
    assert f[0] == -1.0 and f[2] == 0.0 and f[4] == 0.5
    assert (f < 1.0).all()
    np.testing.assert_array_equal(to_int16(f), x)


def test_to_int16_clips() -> None:
    y = to_int16(np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 0.99999, 1.0, 7.5, np.nan, np.inf, -np.inf]))
    assert y.dtype == np.int16
    want = [-32768, -32768, -16384, 0, 16384, 32767, 32767, 32767, 0, 32767, -32768]
    np.testing.assert_array_equal(y, want)


def _frames(n: int, seed: int) -> np.ndarray:
    """(2, n) int16 noise: left and right."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((2, n)) * 5000).clip(-32768, 32767).astype(np.int16)


def test_writer_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    left, right = _frames(FRAME * 173 + 7, 3)  # several buffers' worth, and a ragged tail
    with StereoWavWriter(path) as w:
        for i in range(0, len(left), FRAME):
            w.write(left[i:i + FRAME], right[i:i + FRAME])
        assert w.frames == len(left)
    assert w.closed
    w.close()  # again: nothing happens
    data, rate = sf.read(path, dtype="int16")
    assert rate == CALL_RATE and data.shape == (len(left), 2)
    np.testing.assert_array_equal(data[:, 0], left)
    np.testing.assert_array_equal(data[:, 1], right)
    info = sf.info(str(path))
    assert info.subtype == "PCM_16" and info.channels == 2
    assert path.stat().st_size == 44 + 4 * len(left)


def test_writer_buffers_about_a_second(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    w = StereoWavWriter(path, rate=8000)
    left, right = _frames(4000, 4)
    w.write(left, right)
    assert path.stat().st_size == 44  # half a second: still in memory
    w.write(left, right)
    assert path.stat().st_size == 44 + 4 * 8000  # a second: on disk
    w.close()
    assert sf.read(path, dtype="int16")[1] == 8000


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with StereoWavWriter(tmp_path / "call.wav") as w:
        with pytest.raises(ValueError, match="equal length"):
            w.write(np.zeros(320, np.int16), np.zeros(319, np.int16))
        with pytest.raises(ValueError, match="int16"):
            w.write(np.zeros(320, np.float32), np.zeros(320, np.float32))
    with pytest.raises(ValueError, match="closed"):
        w.write(np.zeros(320, np.int16), np.zeros(320, np.int16))


def test_empty_recording_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    StereoWavWriter(path).close()
    data, rate = sf.read(path, dtype="int16")
    assert rate == CALL_RATE and data.shape == (0, 2)


def test_crash_keeps_what_was_flushed(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    w = StereoWavWriter(path)
    left, right = _frames(FRAME * 60, 5)  # 1.2 s
    for i in range(0, len(left), FRAME):
        w.write(left[i:i + FRAME], right[i:i + FRAME])
    # one second went out on its own; flush() pushes the rest
    snapshot = tmp_path / "after_auto_flush.wav"
    shutil.copyfile(path, snapshot)
    data = sf.read(snapshot, dtype="int16")[0]
    np.testing.assert_array_equal(data, np.stack([left, right], axis=1)[:CALL_RATE])
    w.flush()
    w.write(*_frames(FRAME, 6))  # buffered only: lost in the crash
    snapshot = tmp_path / "after_flush.wav"
    shutil.copyfile(path, snapshot)  # the file as a killed process would leave it
    data = sf.read(snapshot, dtype="int16")[0]
    np.testing.assert_array_equal(data, np.stack([left, right], axis=1))
    assert read_audio(snapshot).shape == (len(left),)
    w.close()


def test_killed_process_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    script = (
        "import os, sys, numpy as np\n"
        "from server.audio import StereoWavWriter\n"
        "w = StereoWavWriter(sys.argv[1])\n"
        "for i in range(75):\n"  # 1.5 s: one buffer flushed on its own, half a second pending
        "    w.write(np.full(320, i, np.int16), np.full(320, -i, np.int16))\n"
        "os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 9
    data = sf.read(path, dtype="int16")[0]
    assert data.shape == (CALL_RATE, 2)
    np.testing.assert_array_equal(data[:, 0], np.repeat(np.arange(50, dtype=np.int16), 320))
    np.testing.assert_array_equal(data[:, 1], -data[:, 0])
