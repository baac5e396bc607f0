"""Running `ci_playbook.yml` for real into a scratch prefix, shared by test_ansible.py (`-c local`) and
test_ansible_ssh.py (over SSH to 127.0.0.1).

`scratch()` lays out everything a run needs: a frozen copy of the source, a tiny model manifest and the
folder its files come from, the variables, the secrets in an Ansible Vault file, and (when run as root)
the service user, removed again afterwards. `run_twice()` runs the playbook twice and keeps both outputs
and PLAY RECAPs.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import pytest

from tests.deploy.doctor_box import REPO

ANSIBLE = REPO / "ansible"
HERE = Path(__file__).resolve().parent
PLAYBOOK = HERE / "ci_playbook.yml"
CI_USER = "standin-ci"
class Secrets(TypedDict):
    standin_sip_password: str
    standin_web_password: str
    standin_notify_urls: list[str]
    standin_api_tokens: list[str]


SECRETS: Secrets = {
    "standin_sip_password": "trunk-secret",
    "standin_web_password": "correct horse battery",
    "standin_notify_urls": ["json://127.0.0.1:9/hook", "ntfy://ntfy.home.lan/phone"],
    "standin_api_tokens": ["token-from-vault"],
}
# Stand-ins for the cpu set's files, at the paths the rendered config names.
MODELS = {
    "whisper/small/model.bin": b"whisper weights, in miniature\n" * 10,
    "llm/qwen2.5-1.5b-instruct-q4_k_m.gguf": b"GGUF and not much else\n",
    "piper/en_US-lessac-medium.onnx": b"a voice\n",
    "piper/en_US-lessac-medium.onnx.json": b'{"audio": {"sample_rate": 22050}}\n',
}


def tool(name: str) -> str:
    """An Ansible command from this interpreter's environment, else from PATH; skips when there is none."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install ansible-core ansible-lint)")
    return found


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}


@dataclass
class Scratch:
    """What one pair of runs works with: `work` holds the inputs, `root` is the prefix the roles write to."""

    work: Path
    root: Path
    user: str
    manifest: Path
    vars_file: Path
    vault_file: Path
    vault_pass: Path

    def playbook_args(self) -> list[str]:
        """The variables, the vault and the playbook: what follows the inventory on the command line."""
        return ["-e", f"@{self.vars_file}", "-e", f"@{self.vault_file}", "--vault-password-file",
                str(self.vault_pass), str(PLAYBOOK)]


@dataclass
class Provisioned:
    root: Path
    work: Path
    user: str
    recaps: list[dict[str, int]]
    outputs: list[str]
    manifest: Path

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")


def recap(output: str, host: str = "localhost") -> dict[str, int]:
    found = re.findall(rf"^{re.escape(host)}\s*:\s*(.*)$", output, re.MULTILINE)
    assert found, f"no PLAY RECAP for {host} in:\n{output[-3000:]}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])}


def changed_tasks(output: str) -> list[str]:
    tasks, current = [], ""
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            current = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:"):
            tasks.append(current)
    return tasks


def freeze_source(into: Path) -> Path:
    """The parts of the checkout the roles pack, copied, so a checkout edited meanwhile changes nothing."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("server", "models", "sip"):
        shutil.copytree(REPO / name, into / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, into / name)
    return into


def nft_checks() -> bool:
    if shutil.which("nft") is None:
        return False
    done = subprocess.run(["nft", "-c", "-f", "-"], input="table inet standin_probe {}\n",
                          capture_output=True, text=True, timeout=30, check=False)
    return done.returncode == 0


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def scratch(work: Path) -> Iterator[Scratch]:
    """Everything a run into `work / "root"` needs; the service user made for it (as root) goes after."""
    vault = tool("ansible-vault")
    root = work / "root"
    models_from = work / "models-from"
    models_from.mkdir()
    manifest = work / "manifest.toml"
    text = '[sets.cpu]\nmodels = ["tiny"]\n[sets.gpu]\nmodels = ["tiny"]\n[models.tiny]\nrole = "all"\n'
    for rel, data in MODELS.items():
        (models_from / Path(rel).name).write_bytes(data)
        text += (f'[[models.tiny.files]]\npath = "{rel}"\nurl = "https://models.invalid/{rel}"\n'
                 f'size = {len(data)}\nsha256 = "{hashlib.sha256(data).hexdigest()}"\n')
    manifest.write_text(text, encoding="utf-8")
    as_root = os.geteuid() == 0
    me = pwd.getpwuid(os.geteuid())
    made_user = as_root and not user_exists(CI_USER)
    user = CI_USER if as_root else me.pw_name
    settings: dict[str, Any] = {
        "standin_root": str(root),
        "standin_user": user,
        "standin_group": CI_USER if as_root else grp.getgrgid(me.pw_gid).gr_name,
        "standin_file_owner": "root" if as_root else me.pw_name,
        "standin_create_user": as_root,
        "standin_install_packages": False,
        "standin_manage_services": False,
        "standin_python": getattr(sys, "_base_executable", sys.executable),
        "standin_cli_python": sys.executable,
        "standin_source_dir": str(freeze_source(work / "source")),
        "standin_app_pip_install_deps": False,
        "standin_gpu": False,
        "standin_models_manifest": str(manifest),
        "standin_models_from": str(models_from),
        "standin_sip_registrar": "sip:192.0.2.10",
        "standin_sip_username": "4930123",
        "standin_sip_media_addresses": ["198.51.100.0/24"],
        "standin_lan_networks": ["192.168.1.0/24", "fd00::/8"],
        "standin_web_listen": "0.0.0.0:8080",
        "standin_firewall_check": nft_checks(),
        "standin_backup_keep": 2,
        "ansible_python_interpreter": sys.executable,
    }
    made = Scratch(work, root, user, manifest, work / "vars.json", work / "vault.yml", work / "vault-pass")
    made.vars_file.write_text(json.dumps(settings), encoding="utf-8")
    made.vault_pass.write_text("test vault password\n", encoding="utf-8")
    made.vault_file.write_text(json.dumps(SECRETS), encoding="utf-8")
    subprocess.run([vault, "encrypt", "--vault-password-file", str(made.vault_pass), str(made.vault_file)],
                   env=env(), check=True, capture_output=True, timeout=120)
    assert made.vault_file.read_text().startswith("$ANSIBLE_VAULT;")
    try:
        yield made
    finally:
        if made_user and user_exists(CI_USER):
            subprocess.run(["userdel", CI_USER], check=False, capture_output=True)
            subprocess.run(["groupdel", CI_USER], check=False, capture_output=True)


def run_twice(command: Sequence[str], run_env: dict[str, str],
              host: str) -> tuple[list[str], list[dict[str, int]]]:
    """The playbook run twice; each run's output (stdout then stderr) and its PLAY RECAP line for `host`."""
    outputs, recaps = [], []
    for _ in range(2):
        done = subprocess.run(list(command), cwd=REPO, env=run_env, capture_output=True, text=True,
                              timeout=1200, check=False)
        outputs.append(done.stdout + done.stderr)
        recaps.append(recap(outputs[-1], host))
    return outputs, recaps


def assert_idempotent(provisioned: Provisioned) -> None:
    """The first run did the work without failing; the second found nothing to change."""
    first, second = provisioned.recaps
    assert first["failed"] == 0 and first["unreachable"] == 0, provisioned.outputs[0][-6000:]
    assert first["changed"] > 10
    assert second["failed"] == 0 and second["unreachable"] == 0, provisioned.outputs[1][-6000:]
    assert second["changed"] == 0, f"changed on the second run: {changed_tasks(provisioned.outputs[1])}"


def assert_config_and_secrets(provisioned: Provisioned) -> None:
    """The rendered config loads in standin and says what the variables and the vault said; the secrets
    are there with tight modes, and no run printed one."""
    from argon2 import PasswordHasher

    from server.config import load
    from sip.options import SipOptions

    p = provisioned.path
    config = load(p("/etc/standin/standin.toml"))
    sip = SipOptions.from_mapping(config.sip)
    assert (sip.registrar, sip.username, sip.password()) == ("sip:192.0.2.10", "4930123", "trunk-secret")
    assert (sip.rtp_port_start, sip.rtp_port_count, sip.max_calls) == (40000, 1000, 4)
    assert config.models.set == "cpu" and Path(config.models.dir) == p("/var/lib/standin/models")
    assert (config.stt.engine, config.stt.model, config.stt.device) == ("whisper", "whisper/small", "cpu")
    assert config.llm.engine == "llama_cpp" and config.judge.engine == "llm"
    assert config.storage.database == f"sqlite:///{p('/var/lib/standin/standin.db')}"
    assert Path(config.storage.calls_dir) == p("/var/lib/standin/calls")
    assert Path(config.notify.urls_file).read_text().split() == SECRETS["standin_notify_urls"]

    web_hash = Path(config.web.password_file)
    PasswordHasher().verify(web_hash.read_text().strip(), SECRETS["standin_web_password"])
    assert web_hash.stat().st_mode & 0o777 == 0o600
    assert pwd.getpwuid(web_hash.stat().st_uid).pw_name == provisioned.user
    for secret in ("sip-password", "notify-urls", "standin.env", "standin.toml"):
        assert p(f"/etc/standin/{secret}").stat().st_mode & 0o777 == 0o640, secret

    env_file = p("/etc/standin/standin.env").read_text()
    tokens = env_file.split("STANDIN_API_TOKENS=", 1)[1].split()[0].split(",")
    assert len(tokens) == 2 and re.fullmatch(r"[A-Za-z0-9]{40}", tokens[0])
    assert tokens[1] == "token-from-vault"

    venv = p("/opt/standin/venv")
    assert (venv / "bin" / "standin").is_file()
    assert "deps=False" in (venv / ".standin-installed").read_text()
    secrets = [SECRETS["standin_sip_password"], SECRETS["standin_web_password"],
               *SECRETS["standin_api_tokens"], tokens[0]]
    for out in provisioned.outputs:
        assert not [s for s in secrets if s in out]
