"""The model manager against a real HTTP server on 127.0.0.1 (tests/models/model_server.py): status and
its `.verified` cache, what a pull fetches and refuses, the `standin models` commands, and the helpers
engines and the CLI use (the models folder, the missing-model message).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import pytest

from models import manager
from models.manifest import CACHE_NAME
from tests.models.model_server import (
    ALPHA_CONFIG,
    ALPHA_WEIGHTS,
    BETA_VOICE,
    FILES,
    FileServer,
    pull,
    states,
    test_set,
    write_manifest,
)

# --------------------------------------------------------------------------- status and pull


def test_second_status_uses_the_verified_cache(server: FileServer, tmp_path: Path, models_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    mset = test_set(write_manifest(tmp_path / "m.toml", server))
    pull(models_dir, mset)
    assert (models_dir / CACHE_NAME).is_file()
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
