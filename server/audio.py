"""Audio helpers for the runtime and the CLI: reading files, resampling, sample formats, call recordings.

Calls run at 16 kHz mono int16 in 20 ms frames. Only numpy is imported here; soundfile and soxr are
imported where they are used.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

CALL_RATE = 16000
FRAME = 320  # 20 ms at CALL_RATE

_CONVERT_HINT = "convert it to 16-bit WAV (e.g. `ffmpeg -i IN -ar 16000 -ac 1 OUT.wav`) and try again"


class AudioFileError(ValueError):
    """An audio file cannot be used; the message names the file, what is wrong and what to do."""


# --------------------------------------------------------------------------- samples


def to_float(x: np.ndarray) -> np.ndarray:
    """int16 samples -> float32 in [-1, 1)."""
    return np.asarray(x, dtype=np.int16).astype(np.float32) * np.float32(1.0 / 32768.0)


def to_int16(x: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> int16, rounded, clipping anything outside (NaN becomes 0)."""
    y = np.asarray(x, dtype=np.float32) * np.float32(32768.0)
    np.nan_to_num(y, copy=False, nan=0.0, posinf=32767.0, neginf=-32768.0)
    np.clip(y, -32768.0, 32767.0, out=y)
    np.rint(y, out=y)
    return y.astype(np.int16)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample int16 mono `x` from `src_rate` to `dst_rate` (soxr, high quality). Identity when equal."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    x = np.asarray(x)
    if x.dtype != np.int16:
        raise ValueError(f"resample takes int16 samples, got {x.dtype}")
    if src_rate == dst_rate:
        return x
    import soxr

    return np.asarray(soxr.resample(x, src_rate, dst_rate, quality="HQ"), dtype=np.int16)


# --------------------------------------------------------------------------- files


def read_audio(path: str | os.PathLike[str], rate: int = CALL_RATE) -> np.ndarray:
    """Read any file libsndfile understands (WAV, FLAC, OGG, MP3, ...; any rate, any channel count) as
    int16 mono at `rate`: channels are averaged, the rate is converted with soxr (high quality).

    Raises AudioFileError for a missing, empty, unreadable, truncated or sample-less file."""
    with AudioReader(path, rate) as reader:
        return np.concatenate(list(reader.blocks()))


class AudioReader:
    """What `read_audio` returns, block by block, without holding the whole file: `blocks()` yields the
    file's audio as int16 mono at `rate` (soundfile blocks of `block_s`, channels averaged, soxr's
    streaming resampler carrying its state across blocks). The file is checked and its first block read
    on opening; a file shorter than its header says raises AudioFileError once its end is reached."""

    def __init__(self, path: str | os.PathLike[str], rate: int = CALL_RATE, block_s: float = 10.0) -> None:
        import soundfile as sf

        p = self.path = Path(path)
        if not p.exists():
            raise AudioFileError(f"{p}: no such file; check the path")
        if not p.is_file():
            raise AudioFileError(f"{p}: not a regular file; give the path of an audio file")
        size = p.stat().st_size
        if size == 0:
            raise AudioFileError(f"{p}: the file is empty (0 bytes); record or export the audio again")
        _check_wav_complete(p, size)
        self.rate = rate
        try:
            self._file = sf.SoundFile(str(p))
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise self._unreadable(exc) from exc
        try:
            self.src_rate = self._file.samplerate
            self.expected = self._file.frames
            self._block = max(1, round(block_s * self.src_rate))
            self._resampler = None
            if self.src_rate != rate:
                import soxr

                self._resampler = soxr.ResampleStream(self.src_rate, rate, 1, dtype="float32", quality="HQ")
            self._read = 0
            self._done = False
            self._first: np.ndarray | None = self._next()
            if self._read == 0:
                raise AudioFileError(f"{p}: the file contains no audio samples; record or export it again")
        except BaseException:
            self._file.close()
            raise

    def blocks(self) -> Iterator[np.ndarray]:
        first, self._first = self._first, None
        if first is not None and len(first):
            yield first
        while not self._done:
            block = self._next()
            if len(block):
                yield block
        if self._read < 0.99 * self.expected:  # compressed formats may announce an estimate: a little slack
            raise AudioFileError(f"{self.path}: truncated: its header announces {self.expected} frames but "
                                 f"only {self._read} could be read; re-export or re-copy the file")

    def _next(self) -> np.ndarray:
        import soundfile as sf

        try:
            data = self._file.read(self._block, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise self._unreadable(exc) from exc
        self._read += len(data)
        self._done = len(data) < self._block
        mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=self._done)
        return to_int16(mono)

    def _unreadable(self, exc: BaseException) -> AudioFileError:
        return AudioFileError(f"{self.path}: cannot be read as audio ({exc}); the file is corrupt, truncated "
                              f"or in a format libsndfile does not know: {_CONVERT_HINT}")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _check_wav_complete(p: Path, size: int) -> None:
    """libsndfile quietly shortens a RIFF/WAVE file whose data chunk runs past the end of the file;
    treat that as the truncation it is."""
    try:
        with p.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return  # not a plain RIFF WAV: libsndfile judges it
            offset = 12
            while offset + 8 <= size:
                f.seek(offset)
                chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
                if chunk_id == b"data":
                    present = size - offset - 8
                    if chunk_size != 0xFFFFFFFF and chunk_size > present:
                        raise AudioFileError(
                            f"{p}: truncated WAV: the header announces {chunk_size} bytes of audio but only "
                            f"{present} are present; re-export or re-copy the file")
                    return
                offset += 8 + chunk_size + (chunk_size & 1)
    except OSError as exc:
        raise AudioFileError(f"{p}: cannot be read ({exc}); check its permissions") from exc


# --------------------------------------------------------------------------- call recordings


# RIFF size WAVE | "fmt " 16 PCM channels rate byte-rate block-align bits | data size
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_HEADER_SIZE = _HEADER.size  # 44
_RIFF_SIZE_AT = 4
_DATA_SIZE_AT = 40
_MAX_DATA = 0xFFFFFFFF - (_HEADER_SIZE - 8)


class StereoWavWriter:
    """Write a 16-bit stereo WAV as the call goes: left = caller, right = bot.

    Samples are buffered (about `buffer_s` seconds) and appended in blocks; after every block the RIFF and
    data sizes in the header are rewritten, so a file left behind by a killed process reads as valid audio
    holding everything up to the last flush. The header is written on open, so even an immediate crash
    leaves a valid (empty) WAV. Not thread-safe: one writer per call, used from one thread."""

    def __init__(self, path: str | os.PathLike[str], rate: int = CALL_RATE, buffer_s: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.path = Path(path)
        self.rate = int(rate)
        self.frames = 0  # frames accepted so far (written or buffered)
        self._written = 0  # frames in the file
        self._buffer = np.empty((max(1, round(buffer_s * self.rate)), 2), dtype="<i2")
        self._fill = 0
        self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        try:
            self._file.write(self._header(0))
            self._file.flush()
        except BaseException:
            with contextlib.suppress(OSError):
                self._file.close()
            raise

    def _header(self, data_bytes: int) -> bytes:
        return _HEADER.pack(b"RIFF", _HEADER_SIZE - 8 + data_bytes, b"WAVE", b"fmt ", 16, 1, 2, self.rate,
                            self.rate * 4, 4, 16, b"data", data_bytes)

    def write(self, left: np.ndarray, right: np.ndarray) -> None:
        """Append int16 `left` (caller) and `right` (bot) samples; both of the same length."""
        if self._file is None:
            raise ValueError(f"{self.path}: the recording is closed")
        left, right = np.asarray(left), np.asarray(right)
        if left.ndim != 1 or right.ndim != 1 or len(left) != len(right):
            raise ValueError(f"left and right must be 1-D and of equal length, got {left.shape} and "
                             f"{right.shape}")
        if left.dtype != np.int16 or right.dtype != np.int16:
            raise ValueError(f"samples must be int16, got {left.dtype} and {right.dtype}")
        n, done = len(left), 0
        while done < n:
            take = min(n - done, len(self._buffer) - self._fill)
            self._buffer[self._fill:self._fill + take, 0] = left[done:done + take]
            self._buffer[self._fill:self._fill + take, 1] = right[done:done + take]
            self._fill += take
            done += take
            if self._fill == len(self._buffer):
                self.flush()
        self.frames += n

    def flush(self) -> None:
        """Append the buffered samples to the file and bring the header's sizes up to date."""
        if self._file is None or self._fill == 0:
            return
        f = self._file
        total = (self._written + self._fill) * 4
        if total > _MAX_DATA:
            raise ValueError(f"{self.path}: a WAV file cannot hold more than 4 GiB of audio")
        f.seek(_HEADER_SIZE + self._written * 4)
        f.write(self._buffer[:self._fill].tobytes())
        # data first, sizes second: a crash in between leaves a header that undercounts, still valid
        f.flush()
        f.seek(_RIFF_SIZE_AT)
        f.write(struct.pack("<I", _HEADER_SIZE - 8 + total))
        f.seek(_DATA_SIZE_AT)
        f.write(struct.pack("<I", total))
        f.flush()
        self._written += self._fill
        self._fill = 0

    def close(self) -> None:
        """Flush and close; calling it again does nothing."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            self._file.close()
            self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> StereoWavWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
