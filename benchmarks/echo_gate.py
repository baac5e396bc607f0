"""The echo gate on real speech: its cost per VAD window and what it decides, for a steady echo path, one
that slips by whole codec frames, and a caller talking over the echo.

    python benchmarks/echo_gate.py [--json benchmarks/echo_gate.json]   (needs ../shared)

The bot's voice is `audio/speech/jfk.wav`; its echo comes back 12 dB down. The gate is fed the way the
runtime feeds it: 20 ms of bot audio played, then every 32 ms caller window that is complete.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from server.audio import read_audio, to_float  # noqa: E402
from server.echo import EchoGate, EchoOptions  # noqa: E402
from tests.server.test_echo import echo_of, longest_run, slipping_echo, voiced  # noqa: E402

WINDOW = 512
ROUNDS = 5


def judge(bot: np.ndarray, mic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each caller window's verdict and the seconds the gate took for it."""
    gate = EchoGate(EchoOptions())
    verdicts, seconds = [], []
    pending = 0
    for i in range(0, len(bot) - 320, 320):
        gate.played(bot[i:i + 320])
        while pending + WINDOW <= i + 320:
            window = to_float(mic[pending:pending + WINDOW])
            start = time.perf_counter()
            verdicts.append(gate.is_echo(window, pending + WINDOW))
            seconds.append(time.perf_counter() - start)
            pending += WINDOW
    return np.array(verdicts), np.array(seconds)


def case(bot: np.ndarray, mic: np.ndarray, judged: np.ndarray, what: str, echo: bool) -> dict[str, Any]:
    """`judged`: the windows to count; `echo`: whether they are echo (else the caller speaking)."""
    runs = [judge(bot, mic) for _ in range(ROUNDS)]
    verdicts = runs[0][0]
    seconds = np.concatenate([s for _, s in runs])
    mask = judged[: len(verdicts)]
    wrong = mask & (verdicts != echo)
    return {
        "what": what,
        "windows": int(mask.sum()),
        "taken_for_echo": round(float(verdicts[mask].mean()), 3),
        "longest_run_misjudged": longest_run(wrong),
        "us_per_window_median": round(float(np.median(seconds)) * 1e6, 1),
        "us_per_window_p99": round(float(np.percentile(seconds, 99)) * 1e6, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "echo_gate.json")
    args = ap.parse_args()
    speech = SHARED / "audio" / "speech"
    if not speech.is_dir():
        print(f"needs {speech} (the shared recordings)", file=sys.stderr)
        return 2
    bot = read_audio(speech / "jfk.wav")
    caller = read_audio(speech / "quilter.wav").astype(np.float32)

    steady = echo_of(bot, 150, -12).astype(np.int16)
    slipping = slipping_echo(bot, [148, 168, 148, 158], 0.7, -12).astype(np.int16)
    at = 3 * 16000  # the caller starts once the echo path is learnt
    over = echo_of(bot, 150, -12)
    over[at:at + len(caller)] += caller * 2
    over_pcm = over.clip(-32768, 32767).astype(np.int16)
    talking = np.zeros(len(over_pcm), np.int16)
    talking[at:at + len(caller)] = caller.clip(-32768, 32767).astype(np.int16)

    results = [
        case(bot, steady, voiced(steady), "echo 150 ms late, steady: voiced windows", echo=True),
        case(bot, slipping, voiced(slipping), "echo slipping 148/168/148/158 ms every 0.7 s: voiced windows",
             echo=True),
        case(bot, over_pcm, voiced(talking), "a caller talking over the steady echo: their voiced windows",
             echo=False),
    ]
    for r in results:
        print(f"{r['what']}\n    {r['windows']} windows, {r['taken_for_echo']:.3f} taken for echo, longest "
              f"run misjudged {r['longest_run_misjudged']}, {r['us_per_window_median']} µs per window "
              f"(p99 {r['us_per_window_p99']} µs)")
    args.json.write_text(json.dumps({"rounds": ROUNDS, "cases": results}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
