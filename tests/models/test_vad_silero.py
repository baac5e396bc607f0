"""Silero VAD on real recordings from ../shared/audio (see its MANIFEST.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.engines import ModelMissingError
from models.vad_silero import SileroVad, default_model_path

sf = pytest.importorskip("soundfile")

AUDIO = Path("/work/shared/audio")
SPEECH = AUDIO / "speech"
NOISE = AUDIO / "noise"

pytestmark = pytest.mark.skipif(default_model_path() is None,
                                reason="silero-vad wheel not installed (pip install --no-deps silero-vad)")


def _load(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file():
        pytest.skip(f"test audio {path} is absent (shared audio folder not present on this machine)")
    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1, dtype=np.float32), rate


def _windows(x: np.ndarray, w: int) -> list[np.ndarray]:
    return [np.ascontiguousarray(x[i:i + w]) for i in range(0, len(x) - w + 1, w)]


def _run(vad: SileroVad, x: np.ndarray, rate: int) -> np.ndarray:
    s = vad.stream(rate)
    return np.array([s.probability(w) for w in _windows(x, s.window)])


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.mark.parametrize(("name", "rate"), [("jfk.wav", 16000), ("ldc93s1_8k.wav", 8000)])
def test_speech_is_mostly_speech(vad: SileroVad, name: str, rate: int) -> None:
    x, sr = _load(SPEECH / name)
    assert sr == rate  # the 8 kHz file exercises the model's native 8 kHz path
    s = vad.stream(sr)
    assert s.window == (512 if rate == 16000 else 256) and s.sample_rate == rate
    p = _run(vad, x, sr)
    # "during speech": windows within 20 dB of the loudest one
    rms = np.array([np.sqrt(np.mean(w * w)) for w in _windows(x, s.window)])
    voiced = rms > 0.1 * rms.max()
    assert voiced.sum() >= 20
    assert np.mean(p[voiced] >= 0.5) > 0.8, f"{name}: only {np.mean(p[voiced] >= 0.5):.0%} of speech windows"
    assert np.mean(p >= 0.5) > 0.5  # a majority of the whole file, pauses included
    assert ((p >= 0.0) & (p <= 1.0)).all()


@pytest.mark.parametrize("name", ["cafe.wav", "office.wav", "exercise_bike.wav", "freesound_573577.wav"])
def test_noise_is_not_speech(vad: SileroVad, name: str) -> None:
    x, sr = _load(NOISE / name)
    p = _run(vad, x, sr)
    assert len(p) > 50
    assert p.max() < 0.5, f"{name}: window {int(p.argmax())} scored {p.max():.2f}"


def test_streams_keep_their_own_state(vad: SileroVad) -> None:
    a, ra = _load(SPEECH / "jfk.wav")
    b, rb = _load(NOISE / "cafe.wav")
    alone_a, alone_b = _run(vad, a, ra), _run(vad, b, rb)
    sa, sb = vad.stream(ra), vad.stream(rb)
    wa, wb = _windows(a, sa.window), _windows(b, sb.window)
    mixed_a, mixed_b = [], []
    for i in range(max(len(wa), len(wb))):
        if i < len(wb):
            mixed_b.append(sb.probability(wb[i]))
        if i < len(wa):
            mixed_a.append(sa.probability(wa[i]))
    np.testing.assert_array_equal(np.array(mixed_a), alone_a)
    np.testing.assert_array_equal(np.array(mixed_b), alone_b)


def test_interleaved_rates(vad: SileroVad) -> None:
    a, ra = _load(SPEECH / "jfk.wav")
    b, rb = _load(SPEECH / "ldc93s1_8k.wav")
    alone_a, alone_b = _run(vad, a, ra), _run(vad, b, rb)
    sa, sb = vad.stream(ra), vad.stream(rb)
    n = min(len(alone_a), len(alone_b))
    got = [(sa.probability(wa), sb.probability(wb))
           for wa, wb in zip(_windows(a, sa.window)[:n], _windows(b, sb.window)[:n], strict=True)]
    np.testing.assert_array_equal(np.array(got), np.stack([alone_a[:n], alone_b[:n]], axis=1))


def test_matches_plain_session_run(vad: SileroVad) -> None:
    """The preallocated-buffer path gives what a straightforward run() loop over the model gives."""
    import onnxruntime as ort

    x, sr = _load(SPEECH / "ldc93s1_8k.wav")
    session = ort.InferenceSession(str(vad.path), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(32, np.float32)
    want = []
    for w in _windows(x, 256):
        chunk = np.concatenate([context, w])[None, :]
        out, state = session.run(None, {"input": chunk, "state": state, "sr": np.array(sr, np.int64)})
        context = chunk[0, -32:]
        want.append(float(out[0, 0]))
    np.testing.assert_allclose(_run(vad, x, sr), want, rtol=0, atol=1e-5)


def test_reset_starts_over(vad: SileroVad) -> None:
    x, sr = _load(SPEECH / "jfk.wav")
    s = vad.stream(sr)
    ws = _windows(x, s.window)[:40]
    first = [s.probability(w) for w in ws]
    s.reset()
    assert [s.probability(w) for w in ws] == first


def test_wrong_window_length_raises(vad: SileroVad) -> None:
    s = vad.stream(16000)
    for bad in (np.zeros(256, np.float32), np.zeros(513, np.float32), np.zeros((1, 512), np.float32)):
        with pytest.raises(ValueError, match="512"):
            s.probability(bad)
    with pytest.raises(ValueError, match="256"):
        vad.stream(8000).probability(np.zeros(512, np.float32))
    with pytest.raises(ValueError, match="float"):
        s.probability(np.zeros(512, np.int16))


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 32000, 0, -16000])
def test_unsupported_rate_raises(vad: SileroVad, rate: int) -> None:
    with pytest.raises(ValueError, match="16000"):
        vad.stream(rate)


def test_missing_model_path(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="silero-vad"):
        SileroVad(tmp_path / "nope.onnx")


def test_corrupt_model_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model at all")
    with pytest.raises(ModelMissingError, match=r"bad\.onnx"):
        SileroVad(bad)


def test_explicit_model_path(vad: SileroVad) -> None:
    other = SileroVad(vad.path)
    assert other.stream(8000).window == 256


def test_does_not_import_the_silero_package(vad: SileroVad) -> None:
    import sys

    assert "silero_vad" not in sys.modules  # it imports torch
    assert "torch" not in sys.modules


def test_streams_in_parallel_threads(vad: SileroVad) -> None:
    from concurrent.futures import ThreadPoolExecutor

    x, sr = _load(SPEECH / "jfk.wav")
    want = _run(vad, x, sr)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _run(vad, x, sr), range(4)))
    for got in results:
        np.testing.assert_array_equal(got, want)
