"""The model manager against a real HTTP server on 127.0.0.1 serving small files (no real models, no
internet): pulling, resuming, checking, importing from a folder, and the `standin models` commands.

The server speaks HTTP/1.0 through `http.server` with Range requests done here, and can drop a
connection halfway through a body, answer an error once, or send other bytes than the manifest says.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import io
import os
import random
import re
import socket
import threading
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from models import manager
from models.manager import ModelsError

# --------------------------------------------------------------------------- the test server


@dataclass
class FileServer:
    """Files by URL path; what was asked for; what was sent."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    sent: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))  # body bytes written
    drop_after: dict[str, int] = field(default_factory=dict)  # path -> bytes of body sent before a drop, once
    fail_once: dict[str, int] = field(default_factory=dict)  # path -> HTTP status answered once
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None

    def url(self, name: str) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def asked(self, name: str) -> list[str | None]:
        with self.lock:
            return [rng for path, rng in self.requests if path == name]


def _handler(srv: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            with srv.lock:
                srv.requests.append((name, rng))
                status = srv.fail_once.pop(name, None)
                cut = None
            if status is not None:
                self.send_error(status)
                return
            data = srv.files.get(name)
            if data is None:
                self.send_error(404)
                return
            first, code = 0, 200
            if rng:
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
                assert m, rng
                first = int(m[1])
                if first >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                last = int(m[2]) if m[2] else len(data) - 1
                code = 206
            else:
                last = len(data) - 1
            body = data[first:last + 1]
            self.send_response(code)
            if code == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with srv.lock:
                cut = srv.drop_after.pop(name, None)
            if cut is not None and cut < len(body):
                self.wfile.write(body[:cut])
                with srv.lock:
                    srv.sent[name] += cut
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the rest never comes
                return
            self.wfile.write(body)
            with srv.lock:
                srv.sent[name] += len(body)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is part of these tests


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    srv.httpd = _QuietServer(("127.0.0.1", 0), _handler(srv))
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        thread.join()


# --------------------------------------------------------------------------- test manifests


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# (model, path in the models dir, URL name, content)
ALPHA_WEIGHTS = blob(1, 300_000)
ALPHA_CONFIG = blob(2, 2_000)
BETA_VOICE = blob(3, 120_000)
FILES = [
    ("alpha", "alpha/weights.bin", "a/weights.bin", ALPHA_WEIGHTS),
    ("alpha", "alpha/config.json", "a/config.json", ALPHA_CONFIG),
    ("beta", "voices/beta.onnx", "b/beta.onnx", BETA_VOICE),
]


def write_manifest(path: Path, srv: FileServer | None, files: list[tuple[str, str, str, bytes]] = FILES, *,
                   digests: dict[str, str] | None = None, unverified: frozenset[str] = frozenset(),
                   port: int = 9) -> Path:
    """A manifest with one set, `test`, of the given files; `digests` overrides a file's sha256 (by path),
    `unverified` leaves it without one. Without a server the URLs point at a closed port."""
    digests = digests or {}
    models: dict[str, list[str]] = {}
    for model, rel, name, data in files:
        url = srv.url(name) if srv is not None else f"http://127.0.0.1:{port}/{name}"
        digest = ("sha256 = \"\"\nunverified = true" if rel in unverified
                  else f"sha256 = \"{digests.get(rel, sha256(data))}\"")
        models.setdefault(model, []).append(
            f"[[models.{model}.files]]\npath = \"{rel}\"\nurl = \"{url}\"\nsize = {len(data)}\n{digest}\n")
        if srv is not None:
            srv.files[name] = data
    names = ", ".join(f'"{m}"' for m in models)
    text = f"[sets.test]\ndescription = \"test\"\nmodels = [{names}]\n\n"
    for model, tables in models.items():
        text += f"[models.{model}]\nrole = \"test\"\n\n" + "\n".join(tables) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def test_set(manifest_path: Path) -> manager.ModelSet:
    return manager.load_manifest(manifest_path).set("test")


test_set.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def states(models_dir: Path, mset: manager.ModelSet) -> dict[str, str]:
    return {s.file.path: s.state for s in manager.status(models_dir, mset)}


def pull(models_dir: Path, mset: manager.ModelSet, **kwargs: Any) -> list[manager.PullResult]:
    kwargs.setdefault("backoff_s", 0.0)
    return manager.pull(models_dir, mset, **kwargs)


# --------------------------------------------------------------------------- pull and status


def test_pull_downloads_and_verifies(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    assert set(states(models_dir, mset).values()) == {"missing"}

    results = pull(models_dir, mset)

    assert [r.outcome for r in results] == ["downloaded"] * 3
    for _, rel, _, data in FILES:
        assert (models_dir / rel).read_bytes() == data
        assert not (models_dir / (rel + ".part")).exists()
    assert set(states(models_dir, mset).values()) == {"present"}
    again = pull(models_dir, mset)
    assert [r.outcome for r in again] == ["present"] * 3
    assert len(server.requests) == 3  # nothing fetched twice


def test_second_status_uses_the_verified_cache(server: FileServer, tmp_path: Path, models_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    pull(models_dir, mset)
    assert (models_dir / manager.CACHE_NAME).is_file()
    hashed: list[str] = []
    real = manager.file_digest

    def counting(path: Any, algorithm: str = "sha256", on_bytes: Any = None) -> str:
        hashed.append(Path(path).name)
        return real(path, algorithm, on_bytes)

    monkeypatch.setattr(manager, "file_digest", counting)
    assert set(states(models_dir, mset).values()) == {"present"}
    assert hashed == []  # size and mtime unchanged: the digests came from .verified

    weights = models_dir / "alpha/weights.bin"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert set(states(models_dir, mset).values()) == {"present"}
    assert hashed == ["weights.bin"]  # only the touched file was read again


def test_dropped_connection_resumes_with_a_range_request(server: FileServer, tmp_path: Path,
                                                         models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    server.drop_after["a/weights.bin"] = 100_000

    results = pull(models_dir, mset)

    assert all(r.ok for r in results)
    assert (models_dir / "alpha/weights.bin").read_bytes() == ALPHA_WEIGHTS
    asked = server.asked("a/weights.bin")
    assert asked[0] is None and len(asked) == 2
    assert asked[1] is not None and asked[1].startswith("bytes=") and asked[1] != "bytes=0-"
    # about one file's worth went over the wire, not one and a half or two
    assert len(ALPHA_WEIGHTS) <= server.sent["a/weights.bin"] < 1.2 * len(ALPHA_WEIGHTS)


def test_a_part_left_by_an_earlier_pull_is_resumed(server: FileServer, tmp_path: Path,
                                                    models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    part = models_dir / "alpha/weights.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(ALPHA_WEIGHTS[:123_456])
    status = {s.file.path: s for s in manager.status(models_dir, mset)}["alpha/weights.bin"]
    assert status.state == "missing" and status.partial == 123_456 and "41%" in status.detail

    pull(models_dir, mset)

    assert (models_dir / "alpha/weights.bin").read_bytes() == ALPHA_WEIGHTS
    assert server.asked("a/weights.bin") == ["bytes=123456-"]
    assert server.sent["a/weights.bin"] == len(ALPHA_WEIGHTS) - 123_456
    assert not part.exists()


def test_a_stale_part_that_fails_the_digest_is_fetched_whole(server: FileServer, tmp_path: Path,
                                                             models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    part = models_dir / "alpha/weights.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(blob(99, 50_000))  # from some other file

    results = pull(models_dir, mset)

    assert all(r.ok for r in results)
    assert (models_dir / "alpha/weights.bin").read_bytes() == ALPHA_WEIGHTS
    assert server.asked("a/weights.bin") == ["bytes=50000-", None]


def test_transient_server_errors_are_retried(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    server.fail_once["b/beta.onnx"] = 503
    waits: list[float] = []

    results = manager.pull(models_dir, mset, backoff_s=2.0, sleep=waits.append)

    assert all(r.ok for r in results)
    assert server.asked("b/beta.onnx") == [None, None]
    assert waits == [2.0]


def test_a_missing_url_fails_that_file_only(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    del server.files["a/config.json"]

    results = {r.file.path: r for r in pull(models_dir, mset)}

    assert results["alpha/config.json"].outcome == "failed"
    assert "HTTP 404" in results["alpha/config.json"].detail
    assert results["alpha/weights.bin"].outcome == "downloaded"
    assert results["voices/beta.onnx"].outcome == "downloaded"
    assert len(server.asked("a/config.json")) == 1  # a 404 is not retried


def test_corrupt_files_are_reported_and_fetched_again(server: FileServer, tmp_path: Path,
                                                      models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    pull(models_dir, mset)
    weights, voice = models_dir / "alpha/weights.bin", models_dir / "voices/beta.onnx"
    damaged = bytearray(ALPHA_WEIGHTS)
    damaged[1000] ^= 0xFF  # same size, other bytes
    weights.write_bytes(bytes(damaged))
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # however coarse the clock
    voice.write_bytes(BETA_VOICE[:-10])  # short

    found = {s.file.path: s for s in manager.status(models_dir, mset)}
    assert found["alpha/weights.bin"].state == "corrupt" and "sha256" in found["alpha/weights.bin"].detail
    assert found["voices/beta.onnx"].state == "corrupt" and "bytes" in found["voices/beta.onnx"].detail
    assert found["alpha/config.json"].state == "present"

    results = {r.file.path: r.outcome for r in pull(models_dir, mset)}

    assert results == {"alpha/weights.bin": "downloaded", "alpha/config.json": "present",
                       "voices/beta.onnx": "downloaded"}
    assert weights.read_bytes() == ALPHA_WEIGHTS and voice.read_bytes() == BETA_VOICE
    assert set(states(models_dir, mset).values()) == {"present"}


def test_a_digest_mismatch_installs_nothing(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    other = blob(7, len(BETA_VOICE))
    mset = test_set(write_manifest(tmp_path / "m.toml", server, digests={"voices/beta.onnx": sha256(other)}))

    results = {r.file.path: r for r in pull(models_dir, mset)}

    assert results["voices/beta.onnx"].outcome == "failed"
    assert "sha256" in results["voices/beta.onnx"].detail
    assert not (models_dir / "voices/beta.onnx").exists()
    assert not (models_dir / "voices/beta.onnx.part").exists()
    assert results["alpha/weights.bin"].outcome == "downloaded"
    assert states(models_dir, mset)["voices/beta.onnx"] == "missing"


def test_a_digest_mismatch_keeps_the_old_file(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    # A corrupt file stays where it is until a checked replacement is ready, so a bad download loses
    # nothing the user had.
    other = blob(7, len(BETA_VOICE))
    mset = test_set(write_manifest(tmp_path / "m.toml", server, digests={"voices/beta.onnx": sha256(other)}))
    voice = models_dir / "voices/beta.onnx"
    voice.parent.mkdir(parents=True)
    voice.write_bytes(b"old")

    pull(models_dir, mset)

    assert voice.read_bytes() == b"old"


# --------------------------------------------------------------------------- import from a folder


def test_import_from_a_folder_works_offline(tmp_path: Path, models_dir: Path) -> None:
    manifest = write_manifest(tmp_path / "m.toml", None)  # URLs on a closed port: no network at all
    mset = test_set(manifest)
    usb = tmp_path / "usb"
    (usb / "alpha").mkdir(parents=True)
    (usb / "alpha/weights.bin").write_bytes(ALPHA_WEIGHTS)  # the set's own layout
    (usb / "stuff/deeper").mkdir(parents=True)
    (usb / "stuff/deeper/config.json").write_bytes(ALPHA_CONFIG)  # found by name and size
    (usb / "aaa").mkdir()
    (usb / "aaa/beta.onnx").write_bytes(blob(8, len(BETA_VOICE)))  # same name and size, other bytes
    (usb / "zzz").mkdir()
    (usb / "zzz/beta.onnx").write_bytes(BETA_VOICE)
    (usb / "config.json").write_bytes(b"{}")  # same name, other size: never copied

    results = {r.file.path: r for r in pull(models_dir, mset, from_dir=usb)}

    assert {p: r.outcome for p, r in results.items()} == dict.fromkeys(results, "imported")
    assert results["voices/beta.onnx"].detail == str(usb / "zzz/beta.onnx")
    assert results["alpha/config.json"].detail == str(usb / "stuff/deeper/config.json")
    for _, rel, _, data in FILES:
        assert (models_dir / rel).read_bytes() == data
    assert set(states(models_dir, mset).values()) == {"present"}


def test_import_reports_what_the_folder_lacks(tmp_path: Path, models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", None))
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "weights.bin").write_bytes(ALPHA_WEIGHTS)
    (usb / "beta.onnx").write_bytes(blob(8, len(BETA_VOICE)))

    results = {r.file.path: r for r in pull(models_dir, mset, from_dir=usb)}

    assert results["alpha/weights.bin"].outcome == "imported"
    assert results["alpha/config.json"].outcome == "not-found"
    assert results["voices/beta.onnx"].outcome == "not-found"
    assert "another sha256" in results["voices/beta.onnx"].detail
    assert not (models_dir / "voices/beta.onnx").exists()
    assert not (models_dir / "voices/beta.onnx.part").exists()
    with pytest.raises(ModelsError, match="not a folder"):
        pull(models_dir, mset, from_dir=tmp_path / "nowhere")


# --------------------------------------------------------------------------- unverified files, full disks


def test_unverified_files_need_permission(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server, unverified=frozenset({"voices/beta.onnx"})))

    with pytest.raises(manager.UnverifiedError, match=r"voices/beta\.onnx"):
        pull(models_dir, mset)
    assert server.requests == []

    results = {r.file.path: r.outcome for r in pull(models_dir, mset, allow_unverified=True)}

    assert results["voices/beta.onnx"] == "downloaded"
    assert (models_dir / "voices/beta.onnx").read_bytes() == BETA_VOICE
    assert states(models_dir, mset)["voices/beta.onnx"] == "unverified"  # never called verified
    again = {r.file.path: r.outcome for r in pull(models_dir, mset, allow_unverified=True)}
    assert again["voices/beta.onnx"] == "unverified"


def test_a_full_disk_is_refused_up_front(server: FileServer, tmp_path: Path, models_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    monkeypatch.setattr(manager, "_free_space", lambda folder: 50_000)

    with pytest.raises(manager.DiskFullError) as caught:
        pull(models_dir, mset)

    message = str(caught.value)
    assert str(models_dir) in message and "is needed" in message and "50.0 kB is free" in message
    assert caught.value.needed >= sum(len(d) for *_, d in FILES)
    assert server.requests == []
    assert not any(p.is_file() and not p.name.startswith(".") for p in models_dir.rglob("*"))


def test_a_disk_filling_up_keeps_what_was_fetched(server: FileServer, tmp_path: Path, models_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server, files=FILES[:1]))

    class FullAfter:
        def __init__(self, fh: Any, room: int) -> None:
            self.fh, self.room = fh, room

        def write(self, data: Any) -> int:
            if self.room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            n: int = self.fh.write(bytes(data[:self.room]))
            self.room -= n
            return n

        def __getattr__(self, name: str) -> Any:
            return getattr(self.fh, name)

    real_init = manager._PartWriter.__init__

    def cramped(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.fh = FullAfter(self.fh, 70_000)

    monkeypatch.setattr(manager._PartWriter, "__init__", cramped)
    with pytest.raises(manager.DiskFullError) as caught:
        pull(models_dir, mset)
    assert str(models_dir / "alpha") in str(caught.value)
    part = models_dir / "alpha/weights.bin.part"
    assert part.read_bytes() == ALPHA_WEIGHTS[:70_000]
    assert not (models_dir / "alpha/weights.bin").exists()

    monkeypatch.undo()  # room again
    pull(models_dir, mset)
    assert (models_dir / "alpha/weights.bin").read_bytes() == ALPHA_WEIGHTS
    assert server.asked("a/weights.bin") == [None, "bytes=70000-"]


# --------------------------------------------------------------------------- the command line


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="standin")
    sub = parser.add_subparsers(dest="command", required=True)
    manager.add_cli(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_cli_list_and_pull(server: FileServer, tmp_path: Path, models_dir: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    manifest = str(write_manifest(tmp_path / "m.toml", server))
    common = ("--set", "test", "--models-dir", str(models_dir), "--manifest", manifest)

    assert run_cli("models", "list", *common) == 1
    out = capsys.readouterr().out
    assert re.search(r"alpha/weights\.bin\s+300\.0 kB\s+missing", out)
    assert f"standin models pull --set test --models-dir {models_dir}" in out

    assert run_cli("models", "pull", *common) == 0
    out = capsys.readouterr().out
    assert "3 fetched" in out and "100%" in out  # plain progress lines: stdout is not a terminal

    assert run_cli("models", "list", *common) == 0
    out = capsys.readouterr().out
    assert re.search(r"voices/beta\.onnx\s+120\.0 kB\s+present", out)
    assert "all 3 files present" in out

    (models_dir / "alpha/config.json").write_bytes(b"x" * len(ALPHA_CONFIG))
    assert run_cli("models", "list", *common) == 1
    assert re.search(r"alpha/config\.json\s+2\.0 kB\s+corrupt", capsys.readouterr().out)


def test_cli_usage_errors_exit_2(server: FileServer, tmp_path: Path, models_dir: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    manifest = str(write_manifest(tmp_path / "m.toml", server))
    where = ("--models-dir", str(models_dir))
    assert run_cli("models", "list", "--set", "nope", *where, "--manifest", manifest) == 2
    assert "no model set 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[sets.test]\nmodels = [\"ghost\"]\n")
    assert run_cli("models", "list", "--set", "test", *where, "--manifest", str(bad)) == 2
    assert "no model 'ghost'" in capsys.readouterr().err
    unverified = str(write_manifest(tmp_path / "u.toml", server, unverified=frozenset({"alpha/config.json"})))
    assert run_cli("models", "pull", "--set", "test", "--models-dir", str(models_dir),
                   "--manifest", unverified) == 2
    assert "--allow-unverified" in capsys.readouterr().err


def test_cli_pull_from_a_folder(tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = str(write_manifest(tmp_path / "m.toml", None))
    usb = tmp_path / "usb"
    usb.mkdir()
    for _, rel, _, data in FILES:
        (usb / Path(rel).name).write_bytes(data)
    common = ("--set", "test", "--models-dir", str(models_dir), "--manifest", manifest)

    assert run_cli("models", "pull", *common, "--from", str(usb)) == 0
    assert run_cli("models", "list", *common) == 0
    (usb / "weights.bin").unlink()
    (models_dir / "alpha/weights.bin").unlink()
    assert run_cli("models", "pull", *common, "--from", str(usb)) == 1
    assert "no copy of weights.bin" in capsys.readouterr().err


# --------------------------------------------------------------------------- manifests


def test_the_shipped_manifest_is_complete() -> None:
    shipped = manager.load_manifest()
    assert {"gpu", "cpu"} <= set(shipped.sets)
    raw = tomllib.loads(manager.MANIFEST_PATH.read_text(encoding="utf-8"))
    for name, model in raw["models"].items():
        for f in model["files"]:
            assert f["url"].startswith("https://"), (name, f)
            assert f["path"] and not f["path"].startswith("/"), (name, f)
            assert isinstance(f["size"], int) and f["size"] > 0, (name, f)
            has_digest = bool(f.get("sha256") or f.get("md5"))
            assert has_digest or f.get("unverified") is True, (name, f)
            if f.get("sha256"):
                assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"]), (name, f)
            # pinned to the model's revision: the bytes behind the URL cannot change
            assert f"/resolve/{model['revision']}/" in f["url"], (name, f)
            assert re.fullmatch(r"[0-9a-f]{40}", model["revision"]), name

    for set_name in ("gpu", "cpu"):
        paths = {f.path for f in shipped.set(set_name).files}
        whisper = {p.rsplit("/", 1)[0] for p in paths if p.startswith("whisper/")}
        assert len(whisper) == 1, set_name
        folder = whisper.pop()
        for needed in ("model.bin", "config.json", "tokenizer.json"):
            assert f"{folder}/{needed}" in paths, (set_name, needed)
        assert {f"{folder}/vocabulary.json", f"{folder}/vocabulary.txt"} & paths, set_name
        assert any(p.endswith(".gguf") for p in paths), set_name
        voices = {p for p in paths if p.startswith("piper/") and p.endswith(".onnx")}
        assert {Path(v).name[:2] for v in voices} == {"en", "it"}, set_name
        assert all(v + ".json" in paths for v in voices), set_name
    gpu = {f.path for f in shipped.set("gpu").files}
    assert "whisper/large-v3-turbo/preprocessor_config.json" in gpu  # 128 mel bins
    vllm = {p for p in gpu if p.startswith("vllm/")}
    assert any(p.endswith("/config.json") for p in vllm) and any(p.endswith(".safetensors") for p in vllm)
    assert not any(p.startswith("vllm/") for p in (f.path for f in shipped.set("cpu").files))


def test_md5_can_stand_in_for_sha256(tmp_path: Path, models_dir: Path) -> None:
    data = blob(5, 1000)
    (tmp_path / "m.toml").write_text(
        "[sets.test]\nmodels = [\"v\"]\n[models.v]\n[[models.v.files]]\npath = \"v.onnx.json\"\n"
        f"url = \"https://example.invalid/v\"\nsize = 1000\nmd5 = \"{hashlib.md5(data).hexdigest()}\"\n")
    mset = test_set(tmp_path / "m.toml")
    assert mset.files[0].digest == ("md5", hashlib.md5(data).hexdigest())
    models_dir.mkdir()
    (models_dir / "v.onnx.json").write_bytes(data)
    assert states(models_dir, mset) == {"v.onnx.json": "present"}


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace("size = 300000\n", ""), "size: must be the file's size"),
    (lambda t: t.replace("size = 300000", "size = \"big\""), "size: must be the file's size"),
    (lambda t: re.sub(r'sha256 = "[0-9a-f]{64}"', 'sha256 = "abc"', t, count=1), "64 hexadecimal digits"),
    (lambda t: re.sub(r'sha256 = "[0-9a-f]{64}"', 'sha256 = ""', t, count=1), "has no digest"),
    (lambda t: t.replace('path = "alpha/weights.bin"', 'path = "../weights.bin"'), "no '..'"),
    (lambda t: t.replace('path = "alpha/weights.bin"', 'path = "/etc/weights.bin"'), "must be relative"),
    (lambda t: t.replace('path = "alpha/weights.bin"', 'path = "alpha/.verified"'), "hidden"),
    (lambda t: t.replace("url = \"http://", "url = \"ftp://", 1), "not an http(s) URL"),
    (lambda t: t.replace("role = \"test\"", "role = \"test\"\ncolour = \"red\"", 1), "unknown key 'colour'"),
    (lambda t: t.replace('models = ["alpha", "beta"]', 'models = ["alpha", "gamma"]'), "no model 'gamma'"),
    (lambda t: t.replace('path = "voices/beta.onnx"', 'path = "alpha/config.json"'), "other contents"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_bad_manifests_are_refused_clearly(tmp_path: Path, change: Any, message: str) -> None:
    path = write_manifest(tmp_path / "m.toml", None)
    path.write_text(change(path.read_text()))
    with pytest.raises(manager.ManifestError, match=re.escape(message)) as caught:
        manager.load_manifest(path)
    assert str(path) in str(caught.value)


def test_an_absent_manifest_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(manager.ManifestError, match=r"no model manifest at .*nope\.toml"):
        manager.load_manifest(tmp_path / "nope.toml")


# --------------------------------------------------------------------------- helpers for engines and the CLI


def test_default_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert manager.default_models_dir({"STANDIN_MODELS": str(tmp_path / "m")}) == tmp_path / "m"
    monkeypatch.setattr(manager, "SYSTEM_MODELS_DIR", tmp_path / "var/lib/standin/models")
    assert manager.default_models_dir({}) == tmp_path / "var/lib/standin/models"  # can be created
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(manager, "SYSTEM_MODELS_DIR", blocker / "standin/models")
    assert manager.default_models_dir({"XDG_DATA_HOME": str(tmp_path / "data")}) == \
        tmp_path / "data/standin/models"
    assert manager.default_models_dir({"HOME": str(tmp_path / "home")}) == \
        tmp_path / "home/.local/share/standin/models"


def test_missing_model_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager, "default_set_name", lambda: "gpu")
    assert manager.missing_model_message("/m/whisper/small/model.bin") == \
        "model /m/whisper/small/model.bin is missing; run `standin models pull --set cpu`"
    assert manager.missing_model_message("/m/whisper/large-v3-turbo/model.bin").endswith("--set gpu`")
    assert manager.missing_model_message("/m/piper/it_IT-paola-medium.onnx").endswith("--set gpu`")
    assert manager.missing_model_message("/elsewhere/my.gguf", "cpu").endswith("--set cpu`")
    from models.engines import ModelMissingError

    error = manager.missing_model_error("/m/whisper/small/model.bin")
    assert isinstance(error, ModelMissingError) and "--set cpu" in str(error)


def test_progress_lines_and_bar() -> None:
    now = [0.0]
    out = io.StringIO()
    lines = manager.LineProgress(out, clock=lambda: now[0])
    lines.begin("[1/1] big.bin", 1000)
    for _ in range(10):
        now[0] += 1.0
        lines.advance(100)
    lines.end("ok")
    text = out.getvalue().splitlines()
    assert text[0] == "[1/1] big.bin: 1.0 kB"
    assert text[1].startswith("[1/1] big.bin: 10%") and "100 B/s" in text[1] and "ETA 0:09" in text[1]
    assert text[-2].startswith("[1/1] big.bin: 100%") and text[-1] == "[1/1] big.bin: ok"
    assert isinstance(manager.make_progress(out), manager.LineProgress)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = manager.make_progress(tty)
    assert isinstance(bar, manager.BarProgress)
    bar.begin("f", 2000, 1000)
    bar.advance(1000)
    bar.end("ok")
    assert "\r" in tty.getvalue() and "[" + "#" * 24 + "]" in tty.getvalue()
