"""Which engines, and which model files, serve this process's calls: a call's provenance.

`describe_engines` looks at the engines once, when they are built at startup: each role's engine kind,
its model files (named relative to the models directory, each with its sha256) and the options that
change what it hears or says. A file under the models directory takes its digest from the `.verified`
cache that `standin models` keeps (path, size and mtime -> digest), so a start costs a `stat` per file;
a file missing from the cache is read through once and added to it. A file outside the models directory
(the Silero VAD inside its package, a GGUF named by an absolute path) is read through once per process.
Nothing here runs on a call's path: a call only copies the finished `Provenance`.

The JSON form (`to_json`, one object per role) is what summary.json's "engines", the trace's first line
and the database's `calls.engines` hold; `Provenance.from_json` reads it back, keeping only what has the
right shape. An OpenAI-compatible server is named by its host and port and the model it serves, never by
its full URL (which may carry credentials) nor its API key.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from server.config import Config

__all__ = ["ROLES", "EngineInfo", "ModelFileInfo", "Provenance", "describe_engines", "provenance_json",
           "server_of"]

log = logging.getLogger(__name__)

ROLES = ("vad", "stt", "judge", "llm", "tts")
Option = str | int | float | bool | None

_LOUD_HASH_BYTES = 64 * 1024 * 1024  # reading a file this large through is worth a log line
_MAX_TEXT = 300  # longest string kept when reading provenance back
_MAX_ITEMS = 32  # most engines, files or options kept when reading provenance back
_WHISPER_SIZE = re.compile(r"(distil-)?(tiny|base|small|medium|large(-v\d)?(-turbo)?|turbo)(\.en)?",
                           re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ModelFileInfo:
    name: str  # relative to the models directory; the full path for a file outside it
    sha256: str | None  # None: not read (a described-only engine) or unreadable
    size: int | None = None


@dataclass(frozen=True, slots=True)
class EngineInfo:
    role: str  # vad | stt | judge | llm | tts
    kind: str  # silero, whisper, transcript, rules, llm, llama_cpp, openai, script, piper, espeak, ...
    model: str = ""  # what to call it: a model folder or file, a served model's name, a voice
    files: tuple[ModelFileInfo, ...] = ()
    options: Mapping[str, Option] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "kind": self.kind, "model": self.model,
                "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in self.files],
                "options": dict(self.options)}


@dataclass(frozen=True, slots=True)
class Provenance:
    engines: tuple[EngineInfo, ...] = ()

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.engines]

    @classmethod
    def from_json(cls, data: Any) -> Provenance | None:
        """Provenance as `to_json` wrote it, or None when `data` is not a list; entries without a role
        and a kind, and fields of the wrong type, are left out."""
        if not isinstance(data, list):
            return None
        engines = []
        for item in data[:_MAX_ITEMS]:
            if not isinstance(item, dict):
                continue
            role, kind = _text(item.get("role")), _text(item.get("kind"))
            if not role or not kind:
                continue
            files = tuple(ModelFileInfo(_text(f.get("name")), _digest(f.get("sha256")), _size(f.get("size")))
                          for f in (item.get("files") or [])[:_MAX_ITEMS]
                          if isinstance(f, dict) and _text(f.get("name")))
            raw = item.get("options")
            options = {_text(k): _option(v) for k, v in list(raw.items())[:_MAX_ITEMS]} \
                if isinstance(raw, dict) else {}
            engines.append(EngineInfo(role, kind, _text(item.get("model")), files, options))
        return cls(tuple(engines))


def provenance_json(engines: Any) -> list[dict[str, Any]]:
    """The JSON provenance of a `server.runtime.Engines`: what `build_engines` described, or, for engines
    put together by hand (tests, tools), what the objects tell without reading any file."""
    info = getattr(engines, "provenance", None)
    if info is None:
        info = describe_engines(engines, hash_files=False)
    return info.to_json()


# --------------------------------------------------------------------------- describing engines


def describe_engines(engines: Any, config: Config | None = None, *, transcript: Path | None = None,
                     hash_files: bool = True) -> Provenance:
    """Each role of `engines` (a `server.runtime.Engines`): its kind, model files with their digests
    (with `hash_files`), and key options. `config` adds what the objects do not keep (the models
    directory, the call language, the timed transcript's file)."""
    digests = _Digests(_models_dir(config), enabled=hash_files)
    try:
        return Provenance(tuple(_describe(role, getattr(engines, role), config, transcript, digests)
                                for role in ROLES))
    finally:
        digests.save()


def _describe(role: str, engine: Any, config: Config | None, transcript: Path | None,
              digests: _Digests) -> EngineInfo:
    info = _describe_one(role, engine, config, transcript, digests)
    parts = _inner_judges(engine) if role == "judge" else list(getattr(engine, "parts", ()))
    if not parts:
        return info
    # a judge made of judges (rules first, a model second): each part says what it is, then the whole
    described = [_describe(role, part, config, transcript, digests) for part in parts]
    if info.kind != type(engine).__name__:  # a kind of its own (an LLM judge that asks the rules first)
        described.append(info)
    return EngineInfo(role, "+".join(d.kind for d in described),
                      " + ".join(d.model for d in described if d.model),
                      tuple(f for d in described for f in d.files),
                      {k: v for d in described for k, v in d.options.items()})


def _describe_one(role: str, engine: Any, config: Config | None, transcript: Path | None,
                  digests: _Digests) -> EngineInfo:
    name = type(engine).__name__
    if name == "SileroVad":
        path = Path(engine.path)
        return EngineInfo(role, "silero", path.name, (digests.file(path),))
    if name == "WhisperStt":
        folder = Path(engine.model_dir)
        found = _WHISPER_SIZE.search(folder.name)
        threads = getattr(getattr(engine, "options", None), "cpu_threads", 0)
        options: dict[str, Option] = {"size": found.group(0) if found else None,
                                      "device": engine.device, "compute_type": engine.compute_type,
                                      "threads": threads or "default"}
        if config is not None:
            options["language"] = config.stt.language
        return EngineInfo(role, "whisper", digests.name(folder), digests.folder(folder), options)
    if name == "TranscriptStt":
        tsv = transcript or (Path(config.stt.transcript) if config is not None and config.stt.transcript
                             else None)
        return EngineInfo(role, "transcript", tsv.name if tsv else "",
                          (digests.file(tsv),) if tsv else ())
    if name == "RulesJudge":
        return EngineInfo(role, "rules")
    if name == "LlmJudge":
        return _llama(role, "llm", engine.model, digests)
    if name == "LlamaCppReplies":
        info = _llama(role, "llama_cpp", engine.model, digests)
        extra = {"max_tokens": engine.options.max_tokens, "temperature": engine.options.temperature}
        return EngineInfo(role, info.kind, info.model, info.files, {**info.options, **extra})
    if name == "OpenAiReplies":
        return EngineInfo(role, "openai", str(engine.options.model),
                          options={"server": server_of(engine.options.base_url),
                                   "max_tokens": engine.options.max_tokens,
                                   "temperature": engine.options.temperature})
    if name == "ScriptLlm":
        return EngineInfo(role, "script", options={"lines": len(engine.lines)})
    if name == "PiperTts":
        voices = [Path(p).expanduser() for p in engine.options.voices.values()]
        files = tuple(digests.file(f) for v in voices for f in (v, v.with_name(v.name + ".json")))
        return EngineInfo(role, "piper", " ".join(v.stem for v in voices), files,
                          {"length_scale": engine.options.length_scale})
    if name == "EspeakTts":
        return EngineInfo(role, "espeak", engine.voice or "", options={"rate": engine.rate})
    return EngineInfo(role, name)  # an engine this module does not know: its class at least


def _llama(role: str, kind: str, model: Any, digests: _Digests) -> EngineInfo:
    path = Path(model.path)
    o = model.options
    return EngineInfo(role, kind, digests.name(path), (digests.file(path),),
                      {"n_ctx": o.n_ctx, "threads": o.n_threads if o.n_threads else "default",
                       "gpu_layers": o.n_gpu_layers})


def _inner_judges(engine: Any) -> list[Any]:
    """The judges `engine` holds (attributes with a `judge` method of their own), in attribute order."""
    try:
        values = list(vars(engine).values())
    except TypeError:  # slots
        values = [getattr(engine, s, None) for s in getattr(type(engine), "__slots__", ())]
    return [v for v in values if v is not engine and callable(getattr(v, "judge", None))
            and not isinstance(v, type)]


def server_of(base_url: str) -> str:
    """host[:port] of a URL: no scheme, no credentials, no path."""
    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def _models_dir(config: Config | None) -> Path:
    if config is not None:
        from server.engines import models_dir

        return models_dir(config)
    from models.manager import default_models_dir

    return default_models_dir()


# --------------------------------------------------------------------------- digests


_SEEN: dict[tuple[str, int, int], str] = {}  # files outside the models dir read this process


class _Digests:
    """Model files' sha256, from the models directory's `.verified` cache where it can."""

    def __init__(self, models_dir: Path, *, enabled: bool = True) -> None:
        self.models_dir = models_dir
        self.enabled = enabled
        self._cache: Any = None  # the `.verified` cache, read on first need

    def name(self, path: Path) -> str:
        rel = self._relative(path)
        return rel if rel is not None else str(path)

    def folder(self, folder: Path) -> tuple[ModelFileInfo, ...]:
        """Every file of a model folder, model.bin first, leaving out hidden and partial files."""
        try:
            names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")
                           and not p.name.endswith(".part") and p.is_file())
        except OSError:
            return ()
        names.sort(key=lambda n: n != "model.bin")
        return tuple(self.file(folder / n) for n in names)

    def file(self, path: Path) -> ModelFileInfo:
        rel = self._relative(path)
        shown = rel if rel is not None else str(path)
        try:
            st = path.stat()
        except OSError:
            return ModelFileInfo(shown, None)
        if not self.enabled or not stat.S_ISREG(st.st_mode):
            return ModelFileInfo(shown, None, st.st_size)
        try:
            digest = self._cached(rel, path, st) if rel is not None else self._seen(path, st)
        except OSError as exc:
            log.warning("cannot read the model file %s for its digest (%s)", shown,
                        exc.strerror or type(exc).__name__)
            return ModelFileInfo(shown, None, st.st_size)
        return ModelFileInfo(shown, digest, st.st_size)

    def save(self) -> None:
        if self._cache is not None:
            self._cache.save()  # a read-only models dir keeps nothing: the next start reads again

    def _relative(self, path: Path) -> str | None:
        for inside, base in ((path.absolute(), self.models_dir.absolute()),
                             (_resolved(path), _resolved(self.models_dir))):
            if inside.is_relative_to(base) and inside != base:
                return inside.relative_to(base).as_posix()
        return None

    def _cached(self, rel: str, path: Path, st: os.stat_result) -> str:
        from models.manager import VerifiedCache  # the cache `standin models list` and `pull` keep

        if self._cache is None:
            self._cache = VerifiedCache(self.models_dir)
        digest: str | None = self._cache.get(rel, st, "sha256")
        if digest is None:
            digest = _read_through(path, rel, st)
            self._cache.put(rel, st, "sha256", digest)
        return digest

    def _seen(self, path: Path, st: os.stat_result) -> str:
        key = (str(path.absolute()), st.st_size, st.st_mtime_ns)
        digest = _SEEN.get(key)
        if digest is None:
            digest = _SEEN[key] = _read_through(path, str(path), st)
        return digest


def _read_through(path: Path, shown: str, st: os.stat_result) -> str:
    from models.manager import file_digest, human_size

    if st.st_size >= _LOUD_HASH_BYTES:
        log.info("computing the sha256 of %s (%s) once, for the calls' provenance", shown,
                 human_size(st.st_size))
    return file_digest(path)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


# --------------------------------------------------------------------------- reading back


def _text(value: Any) -> str:
    return value[:_MAX_TEXT] if isinstance(value, str) else ""


def _digest(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value) else None


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _option(value: Any) -> Option:
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:_MAX_TEXT]

