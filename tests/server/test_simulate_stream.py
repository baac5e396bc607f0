"""`standin simulate` reads the caller's recording as the call goes: its memory does not grow with the
file's length, and what it reads is exactly what reading the whole file gave (the same samples, so the
same call)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from server.audio import AudioFileError, AudioReader, read_audio, to_int16
from server.cli import main
from server.config import load
from server.engines import build_engines
from server.simulate import simulate

MIB = 1024 * 1024


def noise_file(path: Path, minutes: float, rate: int = 8000, channels: int = 1) -> Path:
    """Quiet noise (no speech for the VAD), written a minute at a time."""
    rng = np.random.default_rng(7)
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        left = round(minutes * 60 * rate)
        while left:
            n = min(left, 60 * rate)
            f.write((rng.standard_normal((n, channels)) * 30).astype(np.int16))
            left -= n
    return path


def simulate_peak(tmp_path: Path, recording: Path) -> tuple[int, dict[str, object]]:
    """`standin simulate` on `recording`: the peak of memory Python allocated meanwhile, and the summary."""
    transcript = tmp_path / "nothing.tsv"
    transcript.write_text("start_s\tend_s\tlabel\ttext\n")
    out = tmp_path / f"out-{recording.stem}"
    tracemalloc.start()
    try:
        code = main(["simulate", str(recording), "--transcript", str(transcript), "--out", str(out)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0
    return peak, json.loads((out / "summary.json").read_text())


def test_simulate_memory_does_not_grow_with_the_recordings_length(tmp_path: Path) -> None:
    short_peak, short = simulate_peak(tmp_path, noise_file(tmp_path / "two-minutes.wav", 2))
    long_peak, long = simulate_peak(tmp_path, noise_file(tmp_path / "twenty-minutes.wav", 20))
    assert short["ended"] == long["ended"] == "screened: silent"  # nobody spoke: the bot said goodbye
    # Decoding the whole 20 minutes would hold > 150 MB (float32 at 8 and 16 kHz, then int16).
    assert long_peak < short_peak + 8 * MIB, (short_peak / MIB, long_peak / MIB)


def test_reading_block_by_block_gives_what_reading_the_whole_file_gave(tmp_path: Path) -> None:
    path = noise_file(tmp_path / "stereo.wav", 0.5, rate=44100, channels=2)  # 30 s: three blocks and a bit
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    whole = to_int16(soxr.resample(data.mean(axis=1, dtype=np.float32), rate, 16000, quality="HQ"))
    with AudioReader(path, block_s=9.0) as reader:
        blocks = list(reader.blocks())
    assert len(blocks) == 4 and np.array_equal(np.concatenate(blocks), whole)
    assert np.array_equal(read_audio(path), whole)


def test_a_long_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    path = noise_file(tmp_path / "long.wav", 20, rate=8000)
    tracemalloc.start()
    try:
        with AudioReader(path) as reader:
            samples = sum(len(block) for block in reader.blocks())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samples == 20 * 60 * 16000
    assert peak < 4 * MIB  # the file as int16 at 16 kHz alone is 37 MiB


def test_a_call_on_blocks_is_the_call_on_the_whole_array(shared: Path, tmp_path: Path) -> None:
    config = load(None, {"stt": {"transcript": str(shared / "scenarios" / "three_things.tsv")},
                         "simulate": {"latency_ms": {"stt": 150, "judge": 20, "llm": 150, "tts": 80}}})
    caller = read_audio(shared / "scenarios" / "three_things.wav")
    whole = simulate(caller, build_engines(config), config, tmp_path / "whole").summary
    odd = [caller[i:i + 777] for i in range(0, len(caller), 777)]  # blocks that never match a frame
    streamed = simulate(iter(odd), build_engines(config), config, tmp_path / "blocks").summary
    for key in ("caller_fragments", "decisions", "story", "ended", "duration_s"):
        assert streamed[key] == whole[key], key
    assert [b["text_heard"] for b in streamed["bot_turns"]] == [b["text_heard"] for b in whole["bot_turns"]]
    assert soundfile.info(tmp_path / "blocks" / "call.wav").frames == soundfile.info(
        tmp_path / "whole" / "call.wav").frames


def test_a_file_shorter_than_its_header_says_is_found_out_at_its_end(tmp_path: Path) -> None:
    path = noise_file(tmp_path / "cut.flac", 0.5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    read: list[int] = []
    with pytest.raises(AudioFileError, match=r"truncated|cannot be read"), \
            AudioReader(path, block_s=2.0) as reader:
        read.extend(len(block) for block in reader.blocks())
    assert sum(read) > 0  # the call had its audio up to there
