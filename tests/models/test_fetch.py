"""Fetching model files from a real HTTP server on 127.0.0.1 (tests/models/model_server.py) and from a
local folder: downloading and checking, resuming after a dropped connection or an earlier run, retries,
digest mismatches, imports, and a disk that is or becomes full.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from models import fetch, manager
from models.manager import ModelsError
from tests.models.model_server import (
    ALPHA_CONFIG,
    ALPHA_WEIGHTS,
    BETA_VOICE,
    FILES,
    FileServer,
    blob,
    pull,
    sha256,
    states,
    test_set,
    write_manifest,
)

# --------------------------------------------------------------------------- downloads


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


# --------------------------------------------------------------------------- full disks


def test_a_full_disk_is_refused_up_front(server: FileServer, tmp_path: Path, models_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    monkeypatch.setattr(fetch, "_free_space", lambda folder: 50_000)

    with pytest.raises(fetch.DiskFullError) as caught:
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

    real_init = fetch.PartWriter.__init__

    def cramped(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.fh = FullAfter(self.fh, 70_000)

    monkeypatch.setattr(fetch.PartWriter, "__init__", cramped)
    with pytest.raises(fetch.DiskFullError) as caught:
        pull(models_dir, mset)
    assert str(models_dir / "alpha") in str(caught.value)
    part = models_dir / "alpha/weights.bin.part"
    assert part.read_bytes() == ALPHA_WEIGHTS[:70_000]
    assert not (models_dir / "alpha/weights.bin").exists()

    monkeypatch.undo()  # room again
    pull(models_dir, mset)
    assert (models_dir / "alpha/weights.bin").read_bytes() == ALPHA_WEIGHTS
    assert server.asked("a/weights.bin") == [None, "bytes=70000-"]
