"""The Ansible roles: lint and syntax check, and the roles a CI machine can run, run for real.

`ci_playbook.yml` runs standin_base, standin_app, standin_models, standin_services, standin_firewall and
standin_backup with `-c local` into a scratch prefix: a service user (when run as root), standin installed
into a virtualenv there (without its dependencies, which this test does not download again), the config
and secrets rendered from variables with the secrets in an Ansible Vault file, models imported from a
folder against a tiny manifest, the systemd units checked with systemd-analyze and the nftables table with
nft. No service is started and no firewall is loaded. The second run must change nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.ansible_ci import (
    ANSIBLE,
    HERE,
    Provisioned,
    assert_config_and_secrets,
    assert_idempotent,
    env,
    run_twice,
    scratch,
    tool,
)
from tests.deploy.doctor_box import REPO


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


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    playbook = tool("ansible-playbook")
    with scratch(tmp_path_factory.mktemp("ansible")) as s:
        command = [playbook, "-i", "localhost,", "-c", "local", *s.playbook_args()]
        outputs, recaps = run_twice(command, env(), "localhost")
        yield Provisioned(s.root, s.work, s.user, recaps, outputs, s.manifest)


@pytest.mark.slow
def test_roles_run_and_a_second_run_changes_nothing(provisioned: Provisioned) -> None:
    assert_idempotent(provisioned)


@pytest.mark.slow
def test_config_and_secrets_are_what_standin_reads(provisioned: Provisioned) -> None:
    assert_config_and_secrets(provisioned)


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

