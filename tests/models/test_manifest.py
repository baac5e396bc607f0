"""The model manifest: the shipped one is complete and pinned, digests other than sha256 work, and a
bad manifest is refused with a message naming its place.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from models import manifest
from tests.models.model_server import blob, states, test_set, write_manifest

# --------------------------------------------------------------------------- manifests


def test_the_shipped_manifest_is_complete() -> None:
    shipped = manifest.load_manifest()
    assert {"gpu", "cpu"} <= set(shipped.sets)
    raw = tomllib.loads(manifest.MANIFEST_PATH.read_text(encoding="utf-8"))
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
    with pytest.raises(manifest.ManifestError, match=re.escape(message)) as caught:
        manifest.load_manifest(path)
    assert str(path) in str(caught.value)


def test_an_absent_manifest_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(manifest.ManifestError, match=r"no model manifest at .*nope\.toml"):
        manifest.load_manifest(tmp_path / "nope.toml")
