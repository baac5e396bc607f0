"""The Ansible roles: lint and syntax check, and the roles a CI machine can run, run for real.

`ci_playbook.yml` runs standin_base, standin_app, standin_models, standin_services, standin_firewall and
standin_backup with `-c local` into a scratch prefix: a service user (when run as root), standin installed
into a virtualenv there (without its dependencies, which this test does not download again), the config
and secrets rendered from variables with the secrets in an Ansible Vault file, models imported from a
folder against a tiny manifest, the systemd units checked with systemd-analyze and the nftables table with
nft. No service is started and no firewall is loaded. The second run must change nothing.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.doctor_box import REPO

ANSIBLE = REPO / "ansible"
HERE = Path(__file__).resolve().parent
CI_USER = "standin-ci"
SECRETS = {
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


def test_playbook_syntax() -> None:
    done = subprocess.run([tool("ansible-playbook"), "--syntax-check", "-i", "inventory/example/hosts.yml",
                           "site.yml"], cwd=ANSIBLE, env=env(), capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([tool("ansible-playbook"), "--syntax-check", "-i", "localhost,",
                           str(HERE / "ci_playbook.yml")], cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_ansible_lint() -> None:
    done = subprocess.run([tool("ansible-lint"), "--offline", "--nocolor"], cwd=ANSIBLE, env=env(),
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failure(s), 0 warning(s)" in done.stdout + done.stderr


# --------------------------------------------------------------------------- two real runs


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


RECAP = re.compile(r"^localhost\s*:\s*(.*)$", re.MULTILINE)


def recap(output: str) -> dict[str, int]:
    found = RECAP.findall(output)
    assert found, f"no PLAY RECAP in:\n{output[-3000:]}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])}


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


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    playbook, vault = tool("ansible-playbook"), tool("ansible-vault")
    work = tmp_path_factory.mktemp("ansible")
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
    made_user = as_root and not _user_exists(CI_USER)
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
    (work / "vars.json").write_text(json.dumps(settings), encoding="utf-8")
    (work / "vault-pass").write_text("test vault password\n", encoding="utf-8")
    (work / "vault.yml").write_text(json.dumps(SECRETS), encoding="utf-8")
    subprocess.run([vault, "encrypt", "--vault-password-file", str(work / "vault-pass"),
                    str(work / "vault.yml")], env=env(), check=True, capture_output=True, timeout=120)
    assert (work / "vault.yml").read_text().startswith("$ANSIBLE_VAULT;")
    command = [playbook, "-i", "localhost,", "-c", "local", "-e", f"@{work / 'vars.json'}",
               "-e", f"@{work / 'vault.yml'}", "--vault-password-file", str(work / "vault-pass"),
               str(HERE / "ci_playbook.yml")]
    outputs, recaps = [], []
    try:
        for _ in range(2):
            done = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=1200,
                                  check=False)
            outputs.append(done.stdout + done.stderr)
            recaps.append(recap(outputs[-1]))
        yield Provisioned(root, work, user, recaps, outputs, manifest)
    finally:
        if made_user and _user_exists(CI_USER):
            subprocess.run(["userdel", CI_USER], check=False, capture_output=True)
            subprocess.run(["groupdel", CI_USER], check=False, capture_output=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _changed_tasks(output: str) -> list[str]:
    tasks, current = [], ""
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            current = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:"):
            tasks.append(current)
    return tasks


@pytest.mark.slow
def test_roles_run_and_a_second_run_changes_nothing(provisioned: Provisioned) -> None:
    first, second = provisioned.recaps
    assert first["failed"] == 0 and first["unreachable"] == 0, provisioned.outputs[0][-6000:]
    assert first["changed"] > 10
    assert second["failed"] == 0, provisioned.outputs[1][-6000:]
    assert second["changed"] == 0, f"changed on the second run: {_changed_tasks(provisioned.outputs[1])}"


@pytest.mark.slow
def test_config_and_secrets_are_what_standin_reads(provisioned: Provisioned) -> None:
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


@pytest.mark.slow
def test_doctor_accepts_what_ansible_wrote(provisioned: Provisioned) -> None:
    p = provisioned.path
    done = subprocess.run([sys.executable, "-m", "server.doctor", "--config",
                           str(p("/etc/standin/standin.toml")), "--manifest", str(provisioned.manifest),
                           "--only", "config,models,web,disk", "--user", provisioned.user],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "set cpu: all 4 files present" in done.stdout
    assert "read 1 variable(s) from" in done.stdout  # the environment file beside the config


@pytest.mark.slow
def test_units_pass_systemd_analyze(provisioned: Provisioned) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = sorted(provisioned.path("/etc/systemd/system").glob("standin*"))
    assert [u.name for u in units] == ["standin-backup.service", "standin-backup.timer", "standin.service"]
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "standin" not in done.stdout + done.stderr
    service = (units[2]).read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "Restart=on-failure",
                 f"User={provisioned.user}", "PrivateDevices=yes"):
        assert line in service.splitlines(), line


@pytest.mark.slow
def test_firewall_lets_in_the_trunk_and_the_lan_only(provisioned: Provisioned) -> None:
    from server.doctor import nft
    from tests.deploy.test_doctor_firewall import live_ruleset

    ruleset = nft.Ruleset.parse(live_ruleset(provisioned.path("/etc/nftables.d/standin.nft").read_text()))
    sip = ruleset.verdict("udp", 5060)
    assert nft.opening_admits(ruleset, sip, "192.0.2.10") is True
    assert nft.opening_admits(ruleset, sip, "198.51.100.20") is False
    runs = nft.port_intervals(ruleset, "udp", 40000, 1000)
    assert len(runs) == 1 and not runs[0][2].closed
    assert nft.opening_admits(ruleset, runs[0][2], "198.51.100.20") is True  # a media server
    web = ruleset.verdict("tcp", 8080)
    assert nft.opening_admits(ruleset, web, "192.168.1.40") is True
    assert nft.opening_admits(ruleset, web, "fd00::40") is True
    assert nft.opening_admits(ruleset, web, "203.0.113.5") is False
    assert ruleset.verdict("tcp", 3306).closed
    conf = provisioned.path("/etc/nftables.conf").read_text()
    assert f'include "{provisioned.path("/etc/nftables.d")}/*.nft"' in conf


@pytest.mark.slow
def test_backup_snapshots_link_unchanged_recordings_and_keep_the_newest(provisioned: Provisioned,
                                                                      tmp_path: Path) -> None:
    script = provisioned.path("/opt/standin/libexec/standin-backup")
    db = tmp_path / "standin.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE calls (id INTEGER)")
        c.execute("INSERT INTO calls VALUES (1)")
    calls = tmp_path / "calls"
    (calls / "20261121-090000-a").mkdir(parents=True)
    (calls / "20261121-090000-a" / "call.wav").write_bytes(b"RIFF" + bytes(1000))
    dest = tmp_path / "backups"

    def backup() -> str:
        done = subprocess.run([sys.executable, str(script), "--database", f"sqlite:///{db}", "--calls",
                               str(calls), "--dest", str(dest), "--keep", "2"], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        time.sleep(1.1)  # snapshots are named by the second
        return done.stdout

    assert "1 copied, 0 unchanged" in backup()
    (calls / "20261121-100000-b").mkdir()
    (calls / "20261121-100000-b" / "call.wav").write_bytes(b"RIFF" + bytes(2000))
    assert "1 copied, 1 unchanged" in backup()
    first, second = sorted(p for p in dest.iterdir())
    a1, a2 = (s / "calls" / "20261121-090000-a" / "call.wav" for s in (first, second))
    assert a1.stat().st_ino == a2.stat().st_ino  # linked, not copied again
    with sqlite3.connect(second / "standin.db") as c:
        assert c.execute("SELECT id FROM calls").fetchall() == [(1,)]
    assert "1 old snapshot(s) removed, 2 kept" in backup()
    assert first not in list(dest.iterdir())

