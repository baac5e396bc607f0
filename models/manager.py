"""The model manager: which weight files a box needs, whether they are on disk and intact, and fetching them.

`manifest.toml` beside this module names the model sets (`gpu`, `cpu`). A set lists models, a model
lists files, and each file has a URL, a path relative to the models directory, a size in bytes and a
digest (`sha256`, or `md5` where nothing better is published). A file without a digest must be marked
`unverified = true`: it can be fetched only when the user says so, and is never called verified.

`status` says of each file of a set whether it is present (right size and digest), missing, corrupt
(wrong size or digest) or unverified (right size, nothing to check it against). Digests are computed
by streaming the file and remembered in `.verified` in the models directory (path, size and mtime ->
digest), so a second look at an unchanged file costs a `stat`.

`pull` fetches what is missing or corrupt, with nothing but the standard library:

- a download goes to `FILE.part` and resumes it with an HTTP Range request, after a dropped connection
  (retried with backoff) or in a later run; the digest is computed while the bytes arrive and checked
  before the part is renamed into place, so a file under its final name is always a complete, checked
  one (a corrupt file stays until its replacement has passed);
- `from_dir` imports from a local folder (a USB disk) instead of the network: each file is found at its
  path in the set's layout or, failing that, by name and size anywhere below the folder, then copied and
  checked the same way;
- a full disk stops the pull with the folder and the space still needed; what was fetched is kept.

At run time nothing is downloaded: engines that find a file missing say so with `missing_model_message`,
which names the command that fetches it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import stat
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol, TextIO

if TYPE_CHECKING:
    from models.engines import ModelMissingError

__all__ = [
    "BarProgress", "ChecksumError", "DiskFullError", "DownloadError", "FileStatus", "LineProgress",
    "Manifest", "ManifestError", "Model", "ModelFile", "ModelSet", "ModelsError", "NullProgress",
    "Progress", "PullResult", "UnverifiedError", "add_cli", "default_models_dir", "default_set_name",
    "file_digest", "human_size", "load_manifest", "make_progress", "missing_model_error",
    "missing_model_message", "parse_manifest", "pull", "status",
]

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
SYSTEM_MODELS_DIR = Path("/var/lib/standin/models")
CACHE_NAME = ".verified"
LOCK_NAME = ".pull.lock"
PART_SUFFIX = ".part"
CHUNK = 1 << 20
HEADROOM = 16 << 20  # bytes a pull leaves free on the disk beyond the files themselves
MAX_BACKOFF_S = 30.0
USER_AGENT = "standin-models/0.1 (python urllib)"

State = Literal["present", "missing", "corrupt", "unverified"]
Outcome = Literal["present", "unverified", "downloaded", "imported", "failed", "not-found"]

_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_HEX = frozenset("0123456789abcdef")


# --------------------------------------------------------------------------- errors


class ModelsError(RuntimeError):
    """The model manager cannot go on; the message says what the user can do about it."""


class ManifestError(ModelsError):
    """The manifest is missing, not TOML, or says something that makes no sense."""


class UnverifiedError(ModelsError):
    """The set has files without a digest and the pull was not allowed to fetch them."""


class DownloadError(ModelsError):
    """One file could not be fetched (the server refused it, or kept failing)."""


class ChecksumError(ModelsError):
    """The bytes fetched for a file are not the bytes the manifest describes."""


class DiskFullError(ModelsError):
    """Not enough room in the models directory; whatever was fetched before is kept."""

    def __init__(self, folder: Path, needed: int, free: int, note: str = "") -> None:
        self.folder, self.needed, self.free = folder, needed, free
        super().__init__(f"not enough disk space in {folder}: {human_size(needed)} is needed and "
                         f"{human_size(free)} is free. Free some space there (or pull into a bigger disk "
                         f"with --models-dir) and run the pull again{note}")


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a model: where it comes from, where it goes, and how to know it is the right one."""

    path: str  # relative to the models directory, with "/" separators
    url: str
    size: int
    sha256: str = ""
    md5: str = ""
    model: str = ""  # the model it belongs to

    @property
    def digest(self) -> tuple[str, str] | None:
        """(algorithm, lowercase hex) to check the file with, or None for an unverified file."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    def target(self, models_dir: str | os.PathLike[str]) -> Path:
        return Path(models_dir).joinpath(*PurePosixPath(self.path).parts)


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    files: tuple[ModelFile, ...]
    role: str = ""
    repo: str = ""  # where it comes from, for services that fetch by id (vLLM)
    revision: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ModelSet:
    """The models one kind of box needs (`gpu`, `cpu`)."""

    name: str
    models: tuple[Model, ...]
    description: str = ""

    @property
    def files(self) -> tuple[ModelFile, ...]:
        """Every file once, in manifest order (models may share files)."""
        seen: dict[str, ModelFile] = {}
        for model in self.models:
            for f in model.files:
                seen.setdefault(f.path, f)
        return tuple(seen.values())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class Manifest:
    source: str
    models: Mapping[str, Model]
    sets: Mapping[str, ModelSet]

    def set(self, name: str) -> ModelSet:
        try:
            return self.sets[name]
        except KeyError:
            raise ManifestError(f"there is no model set {name!r} in {self.source}; the sets are: "
                                f"{', '.join(sorted(self.sets))}") from None


_TOP_KEYS = frozenset({"sets", "models"})
_SET_KEYS = frozenset({"description", "models"})
_MODEL_KEYS = frozenset({"role", "repo", "revision", "description", "files"})
_FILE_KEYS = frozenset({"url", "path", "size", "sha256", "md5", "unverified"})
_RESERVED = frozenset({CACHE_NAME, LOCK_NAME})


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """The manifest at `path` (default: the one shipped beside this module), checked."""
    source = Path(path) if path is not None else MANIFEST_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "reinstall standin" if path is None else "check the path"
        raise ManifestError(f"there is no model manifest at {source}; {hint}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read the model manifest {source}: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"the model manifest {source} is not valid TOML: {e}") from None
    return parse_manifest(data, source=str(source))


def parse_manifest(data: Mapping[str, Any], source: str = "<manifest>") -> Manifest:
    """Check a manifest's parsed TOML and build it; every problem raises `ManifestError` naming its place."""
    return _ManifestParser(source).parse(data)


class _ManifestParser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.by_path: dict[str, ModelFile] = {}

    def parse(self, data: Mapping[str, Any]) -> Manifest:
        top = self.table(data, "top level", _TOP_KEYS)
        raw_models = top.get("models", {})
        if not isinstance(raw_models, Mapping):
            raise self.fail("models", "must be a table of models")
        models = {name: self.model(name, raw) for name, raw in raw_models.items()}
        raw_sets = top.get("sets", {})
        if not isinstance(raw_sets, Mapping) or not raw_sets:
            raise self.fail("sets", "needs at least one model set ([sets.NAME] with `models = [...]`)")
        sets = {name: self.model_set(name, raw, models) for name, raw in raw_sets.items()}
        return Manifest(source=self.source, models=models, sets=sets)

    def model(self, name: str, raw: Any) -> Model:
        where = f"models.{name}"
        spec = self.table(raw, where, _MODEL_KEYS)
        raw_files = spec.get("files")
        if not isinstance(raw_files, list) or not raw_files:
            raise self.fail(where, "needs `files`, a non-empty array of tables ([[models.NAME.files]])")
        files = tuple(self.file(name, f"{where}.files[{i}]", raw) for i, raw in enumerate(raw_files))
        return Model(name=name, files=files,
                     role=self.text(spec.get("role"), f"{where}.role"),
                     repo=self.text(spec.get("repo"), f"{where}.repo"),
                     revision=self.text(spec.get("revision"), f"{where}.revision"),
                     description=self.text(spec.get("description"), f"{where}.description"))

    def file(self, model: str, where: str, raw: Any) -> ModelFile:
        spec = self.table(raw, where, _FILE_KEYS)
        url = self.text(spec.get("url"), f"{where}.url", required=True).strip()
        if not url.startswith(("https://", "http://")):
            raise self.fail(f"{where}.url", f"{url!r} is not an http(s) URL")
        path = _check_relative(self.text(spec.get("path"), f"{where}.path", required=True),
                               lambda what: self.fail(f"{where}.path", what))
        size = spec.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise self.fail(f"{where}.size", "must be the file's size in bytes, a positive integer")
        sha256 = self.digest(spec.get("sha256"), f"{where}.sha256", 64)
        md5 = self.digest(spec.get("md5"), f"{where}.md5", 32)
        unverified = spec.get("unverified", False)
        if not isinstance(unverified, bool):
            raise self.fail(f"{where}.unverified", "must be true or false")
        if unverified and (sha256 or md5):
            raise self.fail(where, "says `unverified = true` but has a digest; drop one of them")
        if not unverified and not (sha256 or md5):
            raise self.fail(where, "has no digest: give `sha256` (or `md5`), or mark it `unverified = true`")
        f = ModelFile(path=path, url=url, size=size, sha256=sha256, md5=md5, model=model)
        other = self.by_path.get(path)
        if other is not None and other.model == model:
            raise self.fail(where, f"path {path!r} is listed twice")
        if other is not None and (other.url, other.size, other.digest) != (f.url, f.size, f.digest):
            raise self.fail(where, f"path {path!r} is also in models.{other.model} with other contents")
        self.by_path[path] = f
        return f

    def model_set(self, name: str, raw: Any, models: Mapping[str, Model]) -> ModelSet:
        where = f"sets.{name}"
        spec = self.table(raw, where, _SET_KEYS)
        names = spec.get("models")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise self.fail(f"{where}.models", "must be a non-empty list of model names")
        for n in names:
            if n not in models:
                known = ", ".join(sorted(models))
                raise self.fail(f"{where}.models", f"no model {n!r} (the models are: {known})")
        if len(set(names)) != len(names):
            raise self.fail(f"{where}.models", "names a model twice")
        return ModelSet(name=name, models=tuple(models[n] for n in names),
                        description=self.text(spec.get("description"), f"{where}.description"))

    def fail(self, where: str, what: str) -> ManifestError:
        return ManifestError(f"model manifest {self.source}: {where}: {what}")

    def table(self, value: Any, where: str, known: frozenset[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be a table")
        unknown = sorted(set(value) - known)
        if unknown:
            raise self.fail(where, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return value

    def text(self, value: Any, where: str, *, required: bool = False) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(where, "must be a non-empty string" if required else "must be a string")
        return value

    def digest(self, value: Any, where: str, length: int) -> str:
        hex_digits = self.text(value, where).strip().lower()
        if hex_digits and (len(hex_digits) != length or not set(hex_digits) <= _HEX):
            raise self.fail(where, f"must be {length} hexadecimal digits, or empty when unknown")
        return hex_digits


def _check_relative(path: str, fail: Callable[[str], ManifestError]) -> str:
    if "\\" in path:
        raise fail(f"{path!r}: use '/' between folders")
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts:
        raise fail(f"{path!r} must be relative to the models directory")
    for part in p.parts:
        if part in ("..", ".") or part.startswith("."):
            raise fail(f"{path!r}: no '..', '.' or hidden names")
    if p.name in _RESERVED or p.name.endswith(PART_SUFFIX):
        raise fail(f"{path!r}: that name is the model manager's own")
    return str(p)


def _resolve_set(model_set: ModelSet | str, manifest: Manifest | None = None) -> ModelSet:
    if isinstance(model_set, ModelSet):
        return model_set
    return (manifest or load_manifest()).set(model_set)


# --------------------------------------------------------------------------- where models live


def default_models_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$STANDIN_MODELS`; else /var/lib/standin/models when this user may write there; else the user's
    data folder (`$XDG_DATA_HOME/standin/models`, by default ~/.local/share/standin/models)."""
    env = os.environ if env is None else env
    explicit = env.get("STANDIN_MODELS", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    if _writable(SYSTEM_MODELS_DIR):
        return SYSTEM_MODELS_DIR
    data_home = env.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home) if data_home else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return base.expanduser() / "standin" / "models"


def _writable(path: Path) -> bool:
    """Whether `path` is, or could be created as, a folder this user may write into."""
    p = path
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def default_set_name() -> str:
    """`gpu` on a box with a CUDA GPU, `cpu` otherwise."""
    try:
        import ctranslate2  # type: ignore[import-untyped]

        return "gpu" if int(ctranslate2.get_cuda_device_count()) > 0 else "cpu"
    except Exception:  # no CTranslate2, or a broken CUDA: fall back to the driver's mark
        return "gpu" if Path("/proc/driver/nvidia/version").exists() else "cpu"


def missing_model_message(path: str | os.PathLike[str], set_name: str | None = None) -> str:
    """What an engine says when a model file is absent: which file, and the command that fetches it."""
    if set_name is None:
        set_name = _set_holding(Path(path)) or default_set_name()
    return f"model {os.fspath(path)} is missing; run `standin models pull --set {set_name}`"


def missing_model_error(path: str | os.PathLike[str], set_name: str | None = None) -> ModelMissingError:
    """`missing_model_message` as the engines' `ModelMissingError`, ready to raise."""
    from models.engines import ModelMissingError

    return ModelMissingError(missing_model_message(path, set_name))


def _set_holding(path: Path) -> str | None:
    """The shipped set whose files include `path` (matched on their last path components); the default
    set when both have it, None when neither does."""
    try:
        manifest = load_manifest()
    except ModelsError:
        return None
    holders = [s.name for s in manifest.sets.values() if any(_ends_with(path, f.path) for f in s.files)]
    if len(holders) > 1:
        preferred = default_set_name()
        return preferred if preferred in holders else holders[0]
    return holders[0] if holders else None


def _ends_with(path: Path, rel: str) -> bool:
    tail = PurePosixPath(rel).parts
    return len(path.parts) >= len(tail) and path.parts[-len(tail):] == tail


# --------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class FileStatus:
    file: ModelFile
    state: State
    detail: str = ""  # why it is corrupt, how much of it a part holds
    partial: int = 0  # bytes already in FILE.part


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256",
                on_bytes: Callable[[int], None] | None = None) -> str:
    """The hex digest of a file, read in chunks (never whole into memory)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return h.hexdigest()


class _VerifiedCache:
    """`.verified`: digests already computed, keyed by path and trusted while size and mtime hold."""

    def __init__(self, models_dir: Path) -> None:
        self.path = models_dir / CACHE_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            files = data.get("files") if isinstance(data, dict) else None
            if isinstance(files, dict):
                self.entries = {k: v for k, v in files.items() if isinstance(v, dict)}
        except (OSError, ValueError):
            pass  # absent or damaged: every digest is computed again

    def get(self, rel: str, st: os.stat_result, algorithm: str) -> str | None:
        entry = self.entries.get(rel)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            value = entry.get(algorithm)
            return value if isinstance(value, str) else None
        return None

    def put(self, rel: str, st: os.stat_result, algorithm: str, digest: str) -> None:
        entry = self.entries.get(rel)
        if not entry or entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
            entry = self.entries[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        entry[algorithm] = digest
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"version": 1, "files": self.entries}, indent=1, sort_keys=True),
                           encoding="utf-8")
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a read-only models dir: the digests are computed again next time


def status(models_dir: str | os.PathLike[str], model_set: ModelSet | str, *,
           on_hash: Callable[[ModelFile], None] | None = None) -> list[FileStatus]:
    """The state of every file of the set in `models_dir`. `on_hash(file)` is called before a file has to
    be read through (its digest is not in `.verified` yet)."""
    models_dir = Path(models_dir)
    cache = _VerifiedCache(models_dir)
    result = [_file_status(models_dir, f, cache, on_hash) for f in _resolve_set(model_set).files]
    cache.save()
    return result


def _file_status(models_dir: Path, f: ModelFile, cache: _VerifiedCache,
                 on_hash: Callable[[ModelFile], None] | None) -> FileStatus:
    target = f.target(models_dir)
    try:
        st = target.stat()
    except (FileNotFoundError, NotADirectoryError):
        partial = _part_size(target)
        if not 0 < partial <= f.size:
            return FileStatus(f, "missing")
        return FileStatus(f, "missing", f"{partial * 100 // f.size}% fetched, resumes", partial)
    except OSError as e:
        return FileStatus(f, "corrupt", f"cannot be read: {e.strerror or e}")
    if not stat.S_ISREG(st.st_mode):
        return FileStatus(f, "corrupt", "not a regular file")
    if st.st_size != f.size:
        return FileStatus(f, "corrupt", f"{st.st_size} bytes, expected {f.size}")
    if f.digest is None:
        return FileStatus(f, "unverified", "no digest in the manifest")
    algorithm, expected = f.digest
    actual = cache.get(f.path, st, algorithm)
    if actual is None:
        if on_hash is not None:
            on_hash(f)
        try:
            actual = file_digest(target, algorithm)
        except OSError as e:
            return FileStatus(f, "corrupt", f"cannot be read: {e.strerror or e}")
        cache.put(f.path, st, algorithm, actual)
    if actual != expected:
        return FileStatus(f, "corrupt", f"{algorithm} differs from the manifest's")
    return FileStatus(f, "present")


def _part_of(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def _part_size(target: Path) -> int:
    try:
        return _part_of(target).stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- progress


class Progress(Protocol):
    """How a pull reports: one `begin` ... `end` per file, `advance` as bytes arrive."""

    def begin(self, label: str, total: int, done: int = 0) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self, note: str) -> None: ...

    def message(self, text: str) -> None: ...


class NullProgress:
    def begin(self, label: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self, note: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class _Meter:
    """Bytes, rate and ETA of the file being fetched."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.label, self.total, self.done, self.start_done, self.t0 = "", 0, 0, 0, 0.0

    def begin(self, label: str, total: int, done: int) -> None:
        self.label, self.total, self.done, self.start_done, self.t0 = label, total, done, done, self.clock()

    def rate(self) -> float:
        elapsed = self.clock() - self.t0
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def figures(self) -> str:
        rate = self.rate()
        eta = _clock_time((self.total - self.done) / rate) if rate > 0 else "--:--"
        return f"{human_size(self.done)} / {human_size(self.total)}  {human_size(rate)}/s  ETA {eta}"


class BarProgress(_Meter):
    """A bar redrawn in place, for a terminal."""

    def __init__(self, stream: TextIO, width: int = 24, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.stream, self.width, self.drawn_at = stream, width, 0.0

    def begin(self, label: str, total: int, done: int = 0) -> None:
        super().begin(label, total, done)
        self._draw(force=True)

    def advance(self, n: int) -> None:
        self.done += n
        self._draw()

    def end(self, note: str) -> None:
        self.stream.write(f"\r\033[K{self.label}  {note}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(f"\r\033[K{text}\n")
        self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self.drawn_at < 0.1 and self.done < self.total:
            return
        self.drawn_at = now
        filled = self.width * self.done // self.total if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r\033[K{self.label}  [{bar}] {self.figures()}")
        self.stream.flush()


class LineProgress(_Meter):
    """Plain lines (a log, a pipe): one every tenth of a file, or every `every_s` seconds."""

    def __init__(self, stream: TextIO, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.stream, self.every_s, self.step, self.said_at = stream, every_s, 0, 0.0

    def begin(self, label: str, total: int, done: int = 0) -> None:
        super().begin(label, total, done)
        self.step, self.said_at = self._tenth(), self.clock()
        start = f" (resuming at {human_size(done)})" if done else ""
        self._say(f"{label}: {human_size(total)}{start}")

    def advance(self, n: int) -> None:
        self.done += n
        tenth, now = self._tenth(), self.clock()
        if tenth > self.step or now - self.said_at >= self.every_s:
            self.step, self.said_at = tenth, now
            percent = self.done * 100 // self.total if self.total else 100
            self._say(f"{self.label}: {percent}%  {self.figures()}")

    def end(self, note: str) -> None:
        self._say(f"{self.label}: {note}")

    def message(self, text: str) -> None:
        self._say(text)

    def _tenth(self) -> int:
        return self.done * 10 // self.total if self.total else 10

    def _say(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


def make_progress(stream: TextIO | None = None) -> Progress:
    """A bar on a terminal, plain lines otherwise."""
    stream = stream if stream is not None else sys.stdout
    isatty = getattr(stream, "isatty", None)
    return BarProgress(stream) if isatty is not None and isatty() else LineProgress(stream)


def human_size(n: float) -> str:
    """Bytes in decimal units, as Hugging Face shows them: 340 B, 7.1 kB, 1.6 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _clock_time(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# --------------------------------------------------------------------------- pull


@dataclass(frozen=True, slots=True)
class PullResult:
    file: ModelFile
    outcome: Outcome
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("present", "unverified", "downloaded", "imported")


class _Transient(Exception):
    """A failure worth another try (a dropped connection, a busy server)."""


class _RangeRefused(_Transient):
    """The server would not send the rest of the part: the next try starts from the first byte."""


class _PartWriter:
    """FILE.part, its digest kept in step with the bytes actually on disk."""

    def __init__(self, part: Path, algorithm: str, size: int, *, fresh: bool = False) -> None:
        self.part, self.algorithm, self.size = part, algorithm, size
        part.parent.mkdir(parents=True, exist_ok=True)
        self.fh: BinaryIO = open(part, "r+b" if part.exists() and not fresh else "w+b", buffering=0)  # noqa: SIM115
        self.hasher = hashlib.new(algorithm)
        self.offset = 0
        try:
            if os.fstat(self.fh.fileno()).st_size > size:
                self.fh.truncate(0)  # longer than the file can be: not a prefix of it
            while chunk := self.fh.read(CHUNK):
                self.hasher.update(chunk)
                self.offset += len(chunk)
        except BaseException:
            self.fh.close()
            raise

    def reset(self) -> None:
        self.fh.seek(0)
        self.fh.truncate(0)
        self.hasher = hashlib.new(self.algorithm)
        self.offset = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = self.fh.write(view) or 0
            except OSError as e:
                if e.errno in _DISK_FULL:
                    raise self._disk_full() from e
                raise
            self.hasher.update(view[:n])
            self.offset += n
            view = view[n:]

    def finish(self) -> str:
        try:
            os.fsync(self.fh.fileno())
        except OSError as e:
            if e.errno in _DISK_FULL:
                raise self._disk_full() from e
            raise
        return self.hasher.hexdigest()

    def close(self) -> None:
        self.fh.close()

    def _disk_full(self) -> DiskFullError:
        folder = self.part.parent
        return DiskFullError(folder, self.size - self.offset + HEADROOM, _free_space(folder),
                             note=f"; the {human_size(self.offset)} of {self.part.name} already "
                                  "written are kept and the pull resumes from there")


def pull(models_dir: str | os.PathLike[str], model_set: ModelSet | str,
         from_dir: str | os.PathLike[str] | None = None, progress: Progress | None = None, *,
         allow_unverified: bool = False, retries: int = 5, backoff_s: float = 1.0,
         timeout_s: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> list[PullResult]:
    """Fetch every missing or corrupt file of the set into `models_dir`, from the network or, with
    `from_dir`, from a local folder. One result per file; a file that could not be fetched is a failed
    result, the others are still fetched. Raises `ModelsError` for what stops the whole pull: unverified
    files not allowed, a full disk, a models dir that cannot be written, another pull at work."""
    mset = _resolve_set(model_set)
    models_dir = Path(models_dir)
    progress = progress if progress is not None else NullProgress()
    files = mset.files
    unverified = [f.path for f in files if f.digest is None]
    if unverified and not allow_unverified:
        raise UnverifiedError(f"{len(unverified)} file(s) of set {mset.name} have no digest in the manifest, "
                              f"so a bad copy could not be told from a good one: {', '.join(unverified)}. "
                              "Run again with --allow-unverified to fetch them anyway")
    source = Path(from_dir) if from_dir is not None else None
    if source is not None and not source.is_dir():
        raise ModelsError(f"{source} is not a folder (--from must name the folder holding the model files)")
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelsError(f"cannot create the models directory {models_dir}: {e.strerror or e}; "
                          "choose another with --models-dir or $STANDIN_MODELS") from None
    with _pull_lock(models_dir):
        cache = _VerifiedCache(models_dir)
        try:
            states = [_file_status(models_dir, f, cache, lambda g: progress.message(f"checking {g.path}"))
                      for f in files]
            todo = [s for s in states if s.state in ("missing", "corrupt")]
            _check_space(models_dir, sum(s.file.size - (0 if source else s.partial) for s in todo))
            finder = _SourceFinder(source) if source is not None else None
            results: dict[str, PullResult] = {}
            for i, st in enumerate(todo, 1):
                f = st.file
                label = f"[{i}/{len(todo)}] {f.path}"
                try:
                    if finder is not None:
                        results[f.path] = _import(models_dir, f, finder, progress, label=label, cache=cache)
                    else:
                        _download(models_dir, f, progress, label, cache, retries=retries,
                                  backoff_s=backoff_s, timeout_s=timeout_s, sleep=sleep)
                        results[f.path] = PullResult(f, "downloaded")
                except (DownloadError, ChecksumError) as e:
                    progress.end("failed")
                    results[f.path] = PullResult(f, "failed", str(e))
                except OSError as e:  # not a full disk (that is a DiskFullError): nothing else will do
                    raise ModelsError(f"cannot write {f.target(models_dir)}: {e.strerror or e}") from None
        finally:
            cache.save()
    return [results.get(s.file.path)
            or PullResult(s.file, "unverified" if s.state == "unverified" else "present")
            for s in states]


@contextlib.contextmanager
def _pull_lock(models_dir: Path) -> Iterator[None]:
    try:
        fh = open(models_dir / LOCK_NAME, "a")  # noqa: SIM115
    except OSError as e:
        raise ModelsError(f"cannot write into the models directory {models_dir}: {e.strerror or e}; "
                          "choose another with --models-dir or $STANDIN_MODELS") from None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ModelsError(f"another `standin models pull` is working in {models_dir}; "
                              "let it finish first") from None
        yield


def _free_space(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _check_space(models_dir: Path, needed: int) -> None:
    if needed <= 0:
        return
    free = _free_space(models_dir)
    if needed + HEADROOM > free:
        raise DiskFullError(models_dir, needed + HEADROOM, free,
                            note=f" (the files take {human_size(needed)} and {human_size(HEADROOM)} is "
                                 "kept spare); nothing was changed")


def _install(part: Path, target: Path, digest: str, f: ModelFile, cache: _VerifiedCache) -> None:
    """Put a checked part under its final name (atomically) and remember its digest."""
    os.replace(part, target)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if f.digest is not None:
        cache.put(f.path, target.stat(), f.digest[0], digest)
        cache.save()


def _download(models_dir: Path, f: ModelFile, progress: Progress, label: str, cache: _VerifiedCache, *,
              retries: int, backoff_s: float, timeout_s: float, sleep: Callable[[float], None]) -> None:
    target = f.target(models_dir)
    part = _part_of(target)
    algorithm, expected = f.digest or ("sha256", "")
    fresh = False
    while True:
        writer = _PartWriter(part, algorithm, f.size, fresh=fresh)
        resumed = writer.offset > 0
        try:
            progress.begin(label, f.size, writer.offset)
            failures = 0
            while writer.offset < f.size:
                before = writer.offset
                try:
                    _fetch_once(f, writer, progress, label, timeout_s)
                except _Transient as e:
                    failures = 0 if writer.offset > before else failures + 1
                    if failures > retries:
                        raise DownloadError(f"{f.url}: {e}; gave up after {retries} retries. Run the pull "
                                            f"again: it resumes from the {human_size(writer.offset)} "
                                            "already fetched") from None
                    delay = min(backoff_s * 2 ** max(failures - 1, 0), MAX_BACKOFF_S)
                    progress.message(f"{f.path}: {e}; trying again"
                                     + (f" in {delay:.0f} s" if delay >= 1 else ""))
                    if delay > 0:
                        sleep(delay)
            actual = writer.finish()
        finally:
            writer.close()
        if not expected or actual == expected:
            _install(part, target, actual, f, cache)
            progress.end("ok" if expected else "fetched (unverified: no digest to check)")
            return
        part.unlink(missing_ok=True)
        if resumed and not fresh:
            # The part may have come from an older copy of the file: once more from the first byte.
            progress.message(f"{f.path}: the resumed file does not match its digest; fetching it whole")
            fresh = True
            continue
        raise ChecksumError(f"{f.path}: the bytes from {f.url} have {algorithm} {actual}, the manifest "
                            f"says {expected}; nothing was installed. The server sends another file than "
                            "the manifest describes: check the manifest (or the network's proxy)")


def _fetch_once(f: ModelFile, writer: _PartWriter, progress: Progress, label: str, timeout_s: float) -> None:
    """One HTTP request for the rest of the file, appended to the part. Transient trouble raises
    `_Transient`; what another try cannot fix raises `DownloadError`."""
    try:
        response = _request(f, writer.offset, timeout_s)
    except _RangeRefused:
        writer.reset()
        progress.begin(label, f.size, 0)
        raise
    with response:
        _check_response(f, response, writer, progress, label)
        while writer.offset < f.size:
            try:
                chunk = response.read(min(CHUNK, f.size - writer.offset))
            except (OSError, http.client.HTTPException) as e:
                raise _Transient(f"connection lost after {human_size(writer.offset)} "
                                 f"({e or type(e).__name__})") from None
            if not chunk:
                raise _Transient(f"connection closed after {human_size(writer.offset)} of "
                                 f"{human_size(f.size)}")
            writer.write(chunk)
            progress.advance(len(chunk))
        with contextlib.suppress(OSError, http.client.HTTPException):
            if response.read(1):
                raise DownloadError(f"{f.url} is longer than the {f.size} bytes the manifest says: the "
                                    "manifest is out of date or the URL is wrong")


def _request(f: ModelFile, start: int, timeout_s: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(f.url, headers=headers)
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout_s)
        return response  # http(s) only: the manifest's URLs are checked
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and start:
            raise _RangeRefused("the server would not resume the part (HTTP 416)") from None
        if e.code in _TRANSIENT_HTTP:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        hint = " (the file may be gated or moved)" if e.code in (401, 403, 404, 410) else ""
        raise DownloadError(f"{f.url}: HTTP {e.code} {e.reason}{hint}") from None
    except urllib.error.URLError as e:
        raise _Transient(f"cannot reach the server ({e.reason})") from None
    except (OSError, http.client.HTTPException) as e:
        raise _Transient(f"connection failed ({e or type(e).__name__})") from None


def _check_response(f: ModelFile, response: http.client.HTTPResponse, writer: _PartWriter,
                    progress: Progress, label: str) -> None:
    """Check what the server answered the request starting at `writer.offset`; start the part over when
    the server sends the whole file."""
    start = writer.offset
    if response.status == 206 and start:
        begin, total = _content_range(response.headers.get("Content-Range", ""))
        if total is not None and total != f.size:
            raise DownloadError(f"{f.url} is {total} bytes, the manifest says {f.size}: the manifest is "
                                "out of date or the URL is wrong")
        if begin != start:
            writer.reset()
            progress.begin(label, f.size, 0)
            raise _Transient("the server resumed at another offset; starting over")
    elif response.status == 200:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != f.size:
            raise DownloadError(f"{f.url} is {length} bytes, the manifest says {f.size}: the manifest "
                                "is out of date or the URL is wrong")
        if start:
            writer.reset()  # the server ignored the Range header: the whole file comes again
            progress.begin(label, f.size, 0)
    else:
        raise DownloadError(f"{f.url}: unexpected HTTP {response.status}")


def _content_range(value: str) -> tuple[int, int | None]:
    """(first byte, total or None) of a `Content-Range: bytes FIRST-LAST/TOTAL` header; (-1, None) if
    it cannot be read."""
    try:
        unit, _, spec = value.strip().partition(" ")
        span, _, total = spec.partition("/")
        if unit.lower() != "bytes":
            return -1, None
        return int(span.partition("-")[0]), (int(total) if total.strip().isdigit() else None)
    except ValueError:
        return -1, None


class _SourceFinder:
    """Candidates for a file in a local folder: at its path in the set's layout (or a tail of it), then
    any file of the same name and size below the folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def candidates(self, f: ModelFile) -> list[Path]:
        parts = PurePosixPath(f.path).parts
        found: list[Path] = []
        for i in range(len(parts)):
            p = self.root.joinpath(*parts[i:])
            if p not in found and _size_is(p, f.size):
                found.append(p)
        named = [p for p in self._index().get(f.name, []) if p not in found and _size_is(p, f.size)]
        # the more of the file's path a candidate's path ends with, the likelier it is the one
        named.sort(key=lambda p: -_common_tail(p.relative_to(self.root).parts, parts))
        return found + named

    def _index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            self._by_name = {}
            for folder, dirs, names in os.walk(self.root):
                dirs.sort()
                for name in sorted(names):
                    self._by_name.setdefault(name, []).append(Path(folder) / name)
        return self._by_name


def _size_is(p: Path, size: int) -> bool:
    try:
        st = p.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _common_tail(a: Sequence[str], b: Sequence[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _import(models_dir: Path, f: ModelFile, finder: _SourceFinder, progress: Progress, *, label: str,
            cache: _VerifiedCache) -> PullResult:
    target = f.target(models_dir)
    part = _part_of(target)
    algorithm, expected = f.digest or ("sha256", "")
    rejected: list[str] = []
    for candidate in finder.candidates(f):
        writer = _PartWriter(part, algorithm, f.size, fresh=True)
        try:
            progress.begin(f"{label} <- {candidate}", f.size, 0)
            try:
                with open(candidate, "rb") as src:
                    while chunk := src.read(CHUNK):
                        writer.write(chunk)
                        progress.advance(len(chunk))
            except OSError as e:
                rejected.append(f"{candidate} cannot be copied ({e.strerror or e})")
                progress.end("cannot be copied")
                continue
            actual = writer.finish()
        finally:
            writer.close()
        if writer.offset == f.size and (not expected or actual == expected):
            _install(part, target, actual, f, cache)
            progress.end("ok" if expected else "copied (unverified: no digest to check)")
            return PullResult(f, "imported", str(candidate))
        rejected.append(f"{candidate} has the right size but another {algorithm}")
        progress.end(f"{algorithm} differs: not this one")
    part.unlink(missing_ok=True)
    why = f" ({'; '.join(rejected)})" if rejected else ""
    return PullResult(f, "not-found", f"no copy of {f.name} ({f.size} bytes) in {finder.root}{why}")


# --------------------------------------------------------------------------- command line


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `models pull` and `models list` to an argparse subparsers object. Each command's handler is
    its `func` default: it takes the parsed arguments and returns the exit code (0 all present, 1
    something missing or corrupt, 2 a usage or environment error)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--set", dest="model_set", metavar="NAME",
                        help="the model set: gpu or cpu (default: gpu when a CUDA GPU is present)")
    common.add_argument("--models-dir", type=Path, metavar="DIR",
                        help="where models live (default: $STANDIN_MODELS, else /var/lib/standin/models "
                             "when writable, else ~/.local/share/standin/models)")
    common.add_argument("--manifest", type=Path, metavar="FILE",
                        help="a model manifest other than the one shipped with standin (a mirror)")
    models = subparsers.add_parser("models", help="list and fetch the speech and language models",
                                   description="The weights standin runs on: see what is on disk, and "
                                               "fetch what is missing (once; nothing is downloaded "
                                               "while calls run).")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="{pull,list}")
    pull_parser = sub.add_parser("pull", parents=[common], help="fetch the missing or corrupt model files",
                                 description="Download the set's missing or corrupt files (resuming "
                                             "partial downloads) and check each against its digest, or "
                                             "copy them from a local folder with --from.")
    pull_parser.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                             help="copy from this folder (a USB disk) instead of downloading")
    pull_parser.add_argument("--allow-unverified", action="store_true",
                             help="also fetch files the manifest has no digest for")
    pull_parser.set_defaults(func=_cli_pull)
    list_parser = sub.add_parser("list", parents=[common], help="show each model file and its state",
                                 description="Show the set's files: present, missing, corrupt (wrong "
                                             "size or digest) or unverified (no digest to check).")
    list_parser.set_defaults(func=_cli_list)
    return models


def _cli_setup(args: argparse.Namespace) -> tuple[ModelSet, Path]:
    manifest = load_manifest(args.manifest)
    mset = manifest.set(args.model_set or default_set_name())
    models_dir = args.models_dir if args.models_dir is not None else default_models_dir()
    return mset, models_dir


def _pull_command(args: argparse.Namespace, mset: ModelSet) -> str:
    words = ["standin", "models", "pull", "--set", mset.name]
    if args.models_dir is not None:
        words += ["--models-dir", str(args.models_dir)]
    if args.manifest is not None:
        words += ["--manifest", str(args.manifest)]
    return " ".join(words)


def _cli_list(args: argparse.Namespace) -> int:
    try:
        mset, models_dir = _cli_setup(args)
    except ModelsError as e:
        print(f"standin: {e}", file=sys.stderr)
        return 2
    tty = sys.stderr.isatty()

    def checking(f: ModelFile) -> None:
        if tty:
            print(f"checking {f.path} ({human_size(f.size)})...", file=sys.stderr)

    rows = status(models_dir, mset, on_hash=checking)
    print(f"model set {mset.name} in {models_dir}")
    width = max(len("FILE"), *(len(r.file.path) for r in rows))
    print(f"{'FILE':<{width}}  {'SIZE':>9}  STATE")
    for r in rows:
        detail = f"  ({r.detail})" if r.detail and r.state != "present" else ""
        print(f"{r.file.path:<{width}}  {human_size(r.file.size):>9}  {r.state}{detail}")
    bad = [r for r in rows if r.state in ("missing", "corrupt")]
    unverified = sum(r.state == "unverified" for r in rows)
    if unverified:
        print(f"{unverified} file(s) have no digest in the manifest and cannot be checked")
    if bad:
        need = sum(r.file.size - r.partial for r in bad)
        print(f"{len(bad)} of {len(rows)} files missing or corrupt ({human_size(need)} to fetch): "
              f"run `{_pull_command(args, mset)}`")
        return 1
    print(f"all {len(rows)} files present ({human_size(mset.size)})")
    return 0


def _cli_pull(args: argparse.Namespace) -> int:
    try:
        mset, models_dir = _cli_setup(args)
        where = f"from {args.from_dir}" if args.from_dir is not None else "from the network"
        print(f"model set {mset.name}: {len(mset.files)} files, {human_size(mset.size)}, into {models_dir} "
              f"({where})")
        results = pull(models_dir, mset, from_dir=args.from_dir, progress=make_progress(sys.stdout),
                       allow_unverified=args.allow_unverified)
    except ModelsError as e:
        print(f"standin: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"standin: {r.file.path}: {r.detail}", file=sys.stderr)
    fetched = sum(r.outcome in ("downloaded", "imported") for r in results)
    print(f"{fetched} fetched, {sum(r.ok for r in results) - fetched} already present, {len(failed)} failed")
    return 1 if failed else 0
