"""llama-cpp-python models: each GGUF file is loaded once per process and shared.

On a CPU box the turn judge and the replies may use the same model file, so `load_llama` hands out one
`LlamaModel` per path: the weights are in memory once, and its `lock` serialises use of the llama.cpp
context, which is not thread-safe.

Both engines keep a fixed prompt prefix (instructions, examples) in front of the part that changes.
`LlamaModel.eval_prompt` evaluates only the tokens the context lacks, and keeps a copy of each
prefix's KV cache aside, so that when another user of the model has overwritten the context the
prefix comes back as a copy instead of a re-evaluation.
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.engines import EngineError, ModelMissingError

__all__ = ["LlamaModel", "LlamaOptions", "common_prefix", "load_llama"]

_INSTALL_HINT = "pip install llama-cpp-python"
_SNAPSHOTS = 4  # prefixes kept aside per model: the judge's per language, the replies' per call


@dataclass(frozen=True, slots=True)
class LlamaOptions:
    """How a GGUF file is loaded. Engines sharing a file must ask for the same options."""

    n_ctx: int = 4096
    n_threads: int | None = None  # None: llama.cpp's default
    n_gpu_layers: int = -1  # -1: every layer, when the build has a GPU backend (ignored otherwise)
    seed: int = 0


class LlamaModel:
    """One loaded GGUF file. Hold `lock` around every use of `llm` and of the methods below.

    `lock` is a plain `Lock`, not an `RLock`: a reply generator holds it across its yields, and the
    runtime may resume (or close) that generator from another worker thread than the one it began on.
    """

    def __init__(self, llm: Any, path: Path, options: LlamaOptions) -> None:
        self.llm = llm
        self.path = path
        self.options = options
        self.lock = threading.Lock()
        self._snapshots: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        # Recurrent and hybrid models cannot drop the tail of their state, only restore a snapshot.
        import llama_cpp

        self._stateful = bool(llama_cpp.llama_model_is_recurrent(llm.model)
                              or llama_cpp.llama_model_is_hybrid(llm.model))
        template = llm.metadata.get("tokenizer.chat_template")
        self._chat = self._chat_open = None
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            eos, bos = self._token_text(llm.token_eos()), self._token_text(llm.token_bos())
            self._chat = Jinja2ChatFormatter(template, eos, bos)
            self._chat_open = Jinja2ChatFormatter(template, eos, bos, add_generation_prompt=False)
        self.eos_text = self._token_text(llm.token_eos())

    # ----------------------------------------------------------------------- prompts

    @property
    def has_chat_template(self) -> bool:
        return self._chat is not None

    def chat_prompt(self, messages: Sequence[Mapping[str, str]], *, generation_prompt: bool = True) -> str:
        """`messages` rendered with the model's own chat template (see `has_chat_template`)."""
        formatter = self._chat if generation_prompt else self._chat_open
        if formatter is None:
            raise EngineError(f"{self.path.name} has no chat template; use a plain prompt")
        # enable_thinking: templates of reasoning models (Qwen3) skip the thinking block with it
        chat: list[Any] = [dict(m) for m in messages]
        return formatter(messages=chat, enable_thinking=False).prompt

    def tokenize(self, text: str) -> list[int]:
        """Tokens of a prompt. A chat template writes its own BOS; a plain prompt gets the model's."""
        return list(self.llm.tokenize(text.encode(), add_bos=not self.has_chat_template, special=True))

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(self.llm.detokenize([token], special=True)).decode(errors="replace")

    # ----------------------------------------------------------------------- evaluation

    def eval_prompt(self, tokens: Sequence[int], *, keep: int = 0) -> int:
        """Bring the context to exactly `tokens`, with the last token's logits ready for `logits()`,
        evaluating only what the context lacks. The first `keep` tokens are a fixed prefix whose KV
        cache is kept aside and restored when someone else has used the context since. Returns the
        number of tokens evaluated. Call with `lock` held."""
        llm = self.llm
        tokens = list(tokens)
        if not tokens or len(tokens) >= llm.n_ctx():
            raise EngineError(f"a prompt of {len(tokens)} tokens does not fit the context of "
                              f"{llm.n_ctx()}; raise n_ctx or shorten the prompt")
        keep = min(keep, len(tokens))
        prefix = tuple(tokens[:keep])
        done = 0 if self._stateful else common_prefix(llm.input_ids[:llm.n_tokens], tokens)
        if done < keep and prefix in self._snapshots:
            done = keep if self._restore(prefix) else 0
        if done == 0:
            llm.reset()
        done = min(done, len(tokens) - 1)  # the last token is always decoded, for its logits
        evaluated = 0
        if done < keep and prefix not in self._snapshots:
            llm.n_tokens = done
            llm.eval(tokens[done:keep])
            evaluated, done = keep - done, keep
            self._snapshot(prefix)
        if done < len(tokens):
            llm.n_tokens = done
            llm.eval(tokens[done:])
            evaluated += len(tokens) - done
        return evaluated

    def logits(self) -> np.ndarray:
        """The next-token logits after the last token evaluated (float32, one per vocabulary entry)."""
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).copy()

    def _snapshot(self, prefix: tuple[int, ...]) -> None:
        import llama_cpp

        ctx = self.llm.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0) == 0:
            return  # not supported by this model: the prefix is evaluated again when needed
        self._snapshots[prefix] = buffer
        while len(self._snapshots) > _SNAPSHOTS:
            self._snapshots.popitem(last=False)

    def _restore(self, prefix: tuple[int, ...]) -> bool:
        import llama_cpp

        buffer = self._snapshots[prefix]
        self._snapshots.move_to_end(prefix)
        if llama_cpp.llama_state_seq_set_data(self.llm.ctx, buffer, len(buffer), 0) == 0:
            del self._snapshots[prefix]  # the caller evaluates the prefix again, and keeps it anew
            return False
        self.llm.input_ids[:len(prefix)] = prefix
        self.llm.n_tokens = len(prefix)
        return True


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens `a` and `b` share at their start."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# --------------------------------------------------------------------------- loading

_models: dict[Path, LlamaModel] = {}
_models_lock = threading.Lock()


def load_llama(path: str | Path, options: LlamaOptions = LlamaOptions()) -> LlamaModel:
    """The process's `LlamaModel` for the GGUF file at `path`, loading it on first use."""
    resolved = Path(path).expanduser().resolve()
    with _models_lock:
        model = _models.get(resolved)
        if model is not None:
            if model.options != options:
                raise EngineError(f"{resolved.name} is already loaded with other llama options; engines "
                                  "sharing a model file must be configured with the same options")
            return model
        if not resolved.is_file():
            raise ModelMissingError(f"model file {resolved} is missing; fetch it with `standin models pull`")
        try:
            import llama_cpp
        except ImportError as e:
            raise EngineError(f"llama-cpp-python is not installed; run `{_INSTALL_HINT}`") from e
        gpu_layers = options.n_gpu_layers if llama_cpp.llama_supports_gpu_offload() else 0
        try:
            llm = llama_cpp.Llama(str(resolved), n_ctx=options.n_ctx, n_threads=options.n_threads,
                                  n_gpu_layers=gpu_layers, seed=options.seed, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise EngineError(f"llama.cpp cannot load {resolved} ({e}); check that it is a GGUF model "
                              "this llama-cpp-python version supports, or pull it again") from e
        model = _models[resolved] = LlamaModel(llm, resolved, options)
        return model
