"""The CI-safe roles (`ci_playbook.yml`) run over a real SSH connection, the way site.yml reaches a box.

A throwaway OpenSSH server listens on 127.0.0.1 on a free port, with its own host key and one
authorized ed25519 client key, both made for the test; password and keyboard-interactive logins are off.
The inventory names 127.0.0.1, the port, the current user and the client key, and Ansible checks the
server's host key against a known_hosts file written from the generated key (host key checking stays
on). The playbook runs twice with the same variables and vault as test_ansible.py's local run; the second
run must change nothing. Skips when sshd, ssh or ssh-keygen is not installed (Debian: openssh-server,
openssh-client).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.ansible_ci import (
    Provisioned,
    assert_config_and_secrets,
    assert_idempotent,
    env,
    run_twice,
    scratch,
    tool,
)
from tests.deploy.doctor_box import free_port, me

HOST = "sshbox"
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; it must exist when sshd runs as root


def ssh_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if found is None:
        package = "openssh-server" if name == "sshd" else "openssh-client"
        pytest.skip(f"{name} is not installed (Debian/Ubuntu: apt-get install {package})")
    return found


@dataclass
class Sshd:
    process: subprocess.Popen[bytes]
    port: int
    user: str
    key: Path
    known_hosts: Path
    log: Path
    control_root: Path

    def common_args(self, known_hosts: Path | None = None) -> str:
        """ssh options for ssh, sftp and scp: this server's host key only, this key only, no ~/.ssh/config."""
        return (f"-F /dev/null -o UserKnownHostsFile={known_hosts or self.known_hosts}"
                " -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes")

    def inventory(self, path: Path) -> Path:
        host = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": self.port,
                "ansible_user": self.user, "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": self.common_args()}
        path.write_text(json.dumps({"standin": {"hosts": {HOST: host}}}), encoding="utf-8")  # JSON is YAML
        return path

    def env(self, control_dir: str = "cp") -> dict[str, str]:
        """Ansible's environment: host key checking on, its SSH master sockets in a short folder of ours."""
        return {**env(), "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_TRANSPORT": "ssh",
                "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_root / control_dir)}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _keygen(keygen: str, path: Path) -> str:
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "standin-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=60)
    return path.with_suffix(".pub").read_text().split()[1]  # "ssh-ed25519 <key> <comment>"


def _start(sshd: str, config: Path, log: Path) -> subprocess.Popen[bytes] | None:
    """sshd in the foreground, logging to `log`; None when its port was taken meanwhile."""
    with log.open("wb") as out:
        process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Server listening on 127.0.0.1" in text:
            return process
        if process.poll() is not None:
            if "Address already in use" in text:
                return None
            pytest.fail(f"sshd exited with {process.returncode}:\n{text}")
        time.sleep(0.05)
    process.kill()
    process.wait()
    pytest.fail(f"sshd did not start listening within 20 s:\n{log.read_text(errors='replace')}")


def _close_masters(ssh: str, control_root: Path) -> None:
    """Ends the ControlPersist masters Ansible left, so no session outlives the test."""
    for sock in control_root.rglob("*"):
        if sock.is_socket():
            subprocess.run([ssh, "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit",
                            "standin-test"], capture_output=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    daemon, ssh, keygen = ssh_tool("sshd"), ssh_tool("ssh"), ssh_tool("ssh-keygen")
    here = tmp_path_factory.mktemp("sshd")
    host_key = _keygen(keygen, here / "host_ed25519")
    _keygen(keygen, here / "client_ed25519")
    (here / "authorized_keys").write_text((here / "client_ed25519.pub").read_text(), encoding="utf-8")
    user = me()
    made_privsep = os.geteuid() == 0 and not PRIVSEP_DIR.exists()
    if made_privsep:
        PRIVSEP_DIR.mkdir(mode=0o755)
    # Unix socket paths are short (108 bytes); the pytest folder can be too deep for ssh's master sockets.
    control_root = Path(tempfile.mkdtemp(prefix="standin-ssh-"))
    process = None
    try:
        for _ in range(5):
            port = free_port()
            config = here / "sshd_config"
            config.write_text("\n".join([
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {here / 'host_ed25519'}",
                f"PidFile {here / 'sshd.pid'}",
                f"AuthorizedKeysFile {here / 'authorized_keys'}",
                f"AllowUsers {user}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "StrictModes no",  # the keys sit under /tmp, which is world-writable
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                "",
            ]), encoding="utf-8")
            checked = subprocess.run([daemon, "-t", "-f", str(config)], capture_output=True, text=True,
                                     timeout=30, check=False)
            assert checked.returncode == 0, f"sshd -t: {checked.stderr}"
            process = _start(daemon, config, here / "sshd.log")
            if process is not None:
                break
        assert process is not None, "no free port sshd could listen on"
        known_hosts = here / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} ssh-ed25519 {host_key}\n", encoding="utf-8")
        server = Sshd(process, port, user, here / "client_ed25519", known_hosts, here / "sshd.log",
                      control_root)
        login = subprocess.run([ssh, *server.common_args().split(), "-o", "BatchMode=yes", "-i",
                                str(server.key), "-p", str(port), f"{user}@127.0.0.1", "echo", "logged-in"],
                               capture_output=True, text=True, timeout=60, check=False)
        assert login.stdout.strip() == "logged-in", (
            f"ssh to the test sshd failed ({login.returncode}): {login.stderr}\nsshd:\n{server.log_text()}")
        yield server
    finally:
        _close_masters(ssh, control_root)
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(control_root, ignore_errors=True)
        if made_privsep:
            with contextlib.suppress(OSError):
                PRIVSEP_DIR.rmdir()


@pytest.fixture(scope="module")
def over_ssh(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    playbook = tool("ansible-playbook")
    with scratch(tmp_path_factory.mktemp("ansible-ssh")) as s:
        inventory = sshd.inventory(s.work / "hosts.yml")
        command = [playbook, "-i", str(inventory), *s.playbook_args()]
        outputs, recaps = run_twice(command, sshd.env(), HOST)
        yield Provisioned(s.root, s.work, s.user, recaps, outputs, s.manifest)


@pytest.mark.slow
def test_roles_run_over_ssh_and_a_second_run_changes_nothing(over_ssh: Provisioned, sshd: Sshd) -> None:
    assert_idempotent(over_ssh)
    # It went through this sshd, as this user, with this key, and moved files over SFTP.
    fingerprint = subprocess.run([ssh_tool("ssh-keygen"), "-l", "-f", str(sshd.key)], capture_output=True,
                                 text=True, timeout=30, check=True).stdout.split()[1]
    log = sshd.log_text()
    accepted = [line for line in log.splitlines()
                if line.startswith(f"Accepted publickey for {sshd.user} from 127.0.0.1")]
    assert accepted and all(fingerprint in line for line in accepted), log[-3000:]
    assert f"Starting session: subsystem 'sftp' for {sshd.user} from 127.0.0.1" in log, log[-3000:]


@pytest.mark.slow
def test_config_and_secrets_over_ssh_are_what_standin_reads(over_ssh: Provisioned) -> None:
    assert_config_and_secrets(over_ssh)


@pytest.mark.slow
def test_an_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    """Host key checking is on: with another key in known_hosts, Ansible does not connect at all."""
    _keygen(ssh_tool("ssh-keygen"), tmp_path / "other_ed25519")
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{sshd.port} {(tmp_path / 'other_ed25519.pub').read_text()}",
                     encoding="utf-8")
    wrong = json.dumps({"ansible_ssh_common_args": sshd.common_args(other)})
    done = subprocess.run([tool("ansible"), "-i", str(sshd.inventory(tmp_path / "hosts.yml")), HOST, "-m",
                           "ansible.builtin.ping", "-e", wrong],
                          env=sshd.env("cp-wrong-key"), capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode != 0, done.stdout
    assert "UNREACHABLE" in done.stdout and "Host key verification failed" in done.stdout + done.stderr, (
        done.stdout + done.stderr)
