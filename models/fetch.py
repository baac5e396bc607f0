"""Fetching model files into the models directory, with nothing but the standard library.

- `download` writes to `FILE.part` and resumes it with an HTTP Range request, after a dropped
  connection (retried with backoff) or in a later run; the digest is computed while the bytes arrive
  and checked before the part is renamed into place, so a file under its final name is always a
  complete, checked one (a corrupt file stays until its replacement has passed);
- `import_file` copies from a local folder (a USB disk) instead of the network: each file is found by
  `SourceFinder` at its path in the set's layout or, failing that, by name and size anywhere below the
  folder, then copied and checked the same way;
- a full disk stops the pull with the folder and the space still needed (`check_space` before it
  starts, `DiskFullError` from a write); what was fetched is kept.

Which files to fetch, and the lock that keeps two pulls apart, are `models.manager.pull`'s business.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import shutil
import stat
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal, Protocol

from models.manifest import PART_SUFFIX, ModelFile, ModelsError
from models.progress import Progress, human_size

__all__ = [
    "CHUNK", "USER_AGENT",
    "ChecksumError",
    "DigestCache",
    "DiskFullError",
    "DownloadError",
    "PartWriter",
    "PullResult",
    "SourceFinder",
    "check_space",
    "download",
    "import_file",
    "install",
    "part_of",
]

CHUNK = 1 << 20
HEADROOM = 16 << 20  # bytes a pull leaves free on the disk beyond the files themselves
MAX_BACKOFF_S = 30.0
USER_AGENT = "standin-models/0.1 (python urllib)"

Outcome = Literal["present", "unverified", "downloaded", "imported", "failed", "not-found"]

_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- results and the part file


@dataclass(frozen=True, slots=True)
class PullResult:
    """What a pull did with one file."""

    file: ModelFile
    outcome: Outcome
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("present", "unverified", "downloaded", "imported")


class DigestCache(Protocol):
    """Where a checked file's digest is remembered (`models.manager`'s `.verified` cache)."""

    def put(self, rel: str, st: os.stat_result, algorithm: str, digest: str) -> None: ...

    def save(self) -> None: ...


def part_of(target: Path) -> Path:
    """Where the bytes of `target` gather until they are checked: `FILE.part` beside it."""
    return target.with_name(target.name + PART_SUFFIX)


class PartWriter:
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


def _free_space(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def check_space(models_dir: Path, needed: int) -> None:
    """Raise `DiskFullError`, before anything is written, when `needed` bytes (plus headroom) do not fit."""
    if needed <= 0:
        return
    free = _free_space(models_dir)
    if needed + HEADROOM > free:
        raise DiskFullError(models_dir, needed + HEADROOM, free,
                            note=f" (the files take {human_size(needed)} and {human_size(HEADROOM)} is "
                                 "kept spare); nothing was changed")


def install(part: Path, target: Path, digest: str, f: ModelFile, cache: DigestCache) -> None:
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


# --------------------------------------------------------------------------- downloading


class _Transient(Exception):
    """A failure worth another try (a dropped connection, a busy server)."""


class _RangeRefused(_Transient):
    """The server would not send the rest of the part: the next try starts from the first byte."""


def download(models_dir: Path, f: ModelFile, progress: Progress, label: str, cache: DigestCache, *,
             retries: int, backoff_s: float, timeout_s: float, sleep: Callable[[float], None]) -> None:
    """Fetch `f` from its URL into `models_dir`, resuming its part; raises `DownloadError` or
    `ChecksumError` for this file alone, `DiskFullError` for the whole pull."""
    target = f.target(models_dir)
    part = part_of(target)
    algorithm, expected = f.digest or ("sha256", "")
    fresh = False
    while True:
        writer = PartWriter(part, algorithm, f.size, fresh=fresh)
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
            install(part, target, actual, f, cache)
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


def _fetch_once(f: ModelFile, writer: PartWriter, progress: Progress, label: str, timeout_s: float) -> None:
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


def _check_response(f: ModelFile, response: http.client.HTTPResponse, writer: PartWriter,
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


# --------------------------------------------------------------------------- importing from a folder


class SourceFinder:
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


def import_file(models_dir: Path, f: ModelFile, finder: SourceFinder, progress: Progress, *, label: str,
                cache: DigestCache) -> PullResult:
    """Copy `f` from the first candidate `finder` has that passes the digest; `not-found` if none does."""
    target = f.target(models_dir)
    part = part_of(target)
    algorithm, expected = f.digest or ("sha256", "")
    rejected: list[str] = []
    for candidate in finder.candidates(f):
        writer = PartWriter(part, algorithm, f.size, fresh=True)
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
            install(part, target, actual, f, cache)
            progress.end("ok" if expected else "copied (unverified: no digest to check)")
            return PullResult(f, "imported", str(candidate))
        rejected.append(f"{candidate} has the right size but another {algorithm}")
        progress.end(f"{algorithm} differs: not this one")
    part.unlink(missing_ok=True)
    why = f" ({'; '.join(rejected)})" if rejected else ""
    return PullResult(f, "not-found", f"no copy of {f.name} ({f.size} bytes) in {finder.root}{why}")
