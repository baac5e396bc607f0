"""Silero VAD (v5/v6 ONNX) on onnxruntime, without torch.

The model ships inside the `silero-vad` wheel (`silero_vad/data/silero_vad.onnx`). Its Python package
imports torch, so it is located with `importlib.util.find_spec` and never imported.

One `InferenceSession` is shared by every stream (onnxruntime sessions are thread-safe for `run`); each
stream owns its recurrent state, the audio context the model expects in front of each window, and an
`IOBinding` over preallocated buffers, so `probability()` allocates nothing beyond onnxruntime's own work.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.engines import EngineError, ModelMissingError

if TYPE_CHECKING:
    import onnxruntime

INSTALL_HINT = "run `pip install --no-deps silero-vad` (the ONNX model ships inside that wheel)"

# sample rate -> (window, context) in samples: 32 ms windows, 4 ms of context from the previous window
_GEOMETRY: dict[int, tuple[int, int]] = {16000: (512, 64), 8000: (256, 32)}
SUPPORTED_RATES: tuple[int, ...] = tuple(sorted(_GEOMETRY))

_STATE_SHAPE = (2, 1, 128)


def default_model_path() -> Path | None:
    """`silero_vad/data/silero_vad.onnx` of the installed wheel, found without importing the package."""
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [os.path.dirname(spec.origin)]
    for folder in folders:
        candidate = Path(folder) / "data" / "silero_vad.onnx"
        if candidate.is_file():
            return candidate
    return None


class SileroVad:
    """`VadModel` backed by Silero VAD's ONNX export: streams at 16 kHz (512-sample windows) or 8 kHz (256)
    share one onnxruntime session."""

    def __init__(self, model_path: str | os.PathLike[str] | None = None) -> None:
        import onnxruntime as ort

        if model_path is None:
            found = default_model_path()
            if found is None:
                raise ModelMissingError(f"Silero VAD model not found (silero_vad/data/silero_vad.onnx); "
                                        f"{INSTALL_HINT}")
            path = found
        else:
            path = Path(model_path)
            if not path.is_file():
                raise ModelMissingError(f"Silero VAD model {str(path)!r} does not exist; point model_path at "
                                        f"silero_vad.onnx or leave it unset and {INSTALL_HINT}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(str(path), sess_options=options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several unrelated types for unreadable models
            raise ModelMissingError(f"Silero VAD model {str(path)!r} could not be loaded ({exc}); "
                                    f"reinstall it: {INSTALL_HINT}") from exc
        self.path = path
        self._session = session
        self._names = _io_names(session, path)

    def stream(self, sample_rate: int) -> SileroStream:
        """A fresh stream with zeroed state: one per call (and per sample rate)."""
        return SileroStream(self._session, self._names, sample_rate)


class SileroStream:
    """`VadStream` for one call: feed consecutive windows of `window` float32 samples, in order."""

    def __init__(self, session: onnxruntime.InferenceSession, names: _IoNames, sample_rate: int) -> None:
        import onnxruntime as ort

        if isinstance(sample_rate, bool) or sample_rate not in _GEOMETRY:
            raise ValueError(f"Silero VAD supports sample rates {', '.join(map(str, SUPPORTED_RATES))} Hz, "
                             f"not {sample_rate!r}; resample the audio to 16000 Hz first")
        self.sample_rate: int = int(sample_rate)
        self.window, self._context = _GEOMETRY[self.sample_rate]
        self._session = session
        # Buffers the binding reads and writes in place; they must live as long as the binding.
        self._input = np.zeros((1, self._context + self.window), dtype=np.float32)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._state_out = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._rate = np.array(self.sample_rate, dtype=np.int64)
        self._prob = np.zeros((1, 1), dtype=np.float32)
        self._samples = self._input[0, self._context:]  # where the new window goes
        self._head = self._input[0, :self._context]  # context from the previous window
        self._tail = self._input[0, -self._context:]  # becomes the next context
        self._values = [ort.OrtValue.ortvalue_from_numpy(a)
                        for a in (self._input, self._state, self._rate, self._prob, self._state_out)]
        binding = session.io_binding()
        binding.bind_ortvalue_input(names.audio, self._values[0])
        binding.bind_ortvalue_input(names.state, self._values[1])
        binding.bind_ortvalue_input(names.rate, self._values[2])
        binding.bind_ortvalue_output(names.prob, self._values[3])
        binding.bind_ortvalue_output(names.state_out, self._values[4])
        self._binding = binding

    def probability(self, window: np.ndarray) -> float:
        """Speech probability (0..1) of `window`: float32 mono, exactly `self.window` samples."""
        if window.shape != self._samples.shape:
            raise ValueError(f"Silero VAD at {self.sample_rate} Hz takes windows of exactly {self.window} "
                             f"samples (32 ms), got an array of shape {window.shape}")
        if window.dtype.kind != "f":
            raise ValueError(f"Silero VAD takes float audio in [-1, 1], got dtype {window.dtype}; "
                             f"convert int16 with x / 32768")
        self._samples[:] = window
        self._session.run_with_iobinding(self._binding)
        self._state[...] = self._state_out
        self._head[:] = self._tail
        return float(self._prob[0, 0])

    def reset(self) -> None:
        """Forget everything heard so far (as if the stream were new)."""
        self._input.fill(0.0)
        self._state.fill(0.0)


class _IoNames:
    __slots__ = ("audio", "prob", "rate", "state", "state_out")

    def __init__(self, audio: str, state: str, rate: str, prob: str, state_out: str) -> None:
        self.audio, self.state, self.rate, self.prob, self.state_out = audio, state, rate, prob, state_out


def _io_names(session: onnxruntime.InferenceSession, path: Path) -> _IoNames:
    """Tell the model's inputs and outputs apart by rank: audio (1, n), state (2, 1, 128), sr scalar;
    probability (1, 1), new state (2, 1, 128)."""
    inputs = {len(i.shape): i.name for i in session.get_inputs()}
    outputs = {len(o.shape): o.name for o in session.get_outputs()}
    if len(session.get_inputs()) != 3 or sorted(inputs) != [0, 2, 3] \
            or len(session.get_outputs()) != 2 or sorted(outputs) != [2, 3]:
        raise EngineError(f"{str(path)!r} does not look like Silero VAD v5/v6 (inputs audio, state, sr; "
                          f"outputs probability, state); use silero_vad.onnx from the silero-vad wheel")
    return _IoNames(audio=inputs[2], state=inputs[3], rate=inputs[0], prob=outputs[2], state_out=outputs[3])
