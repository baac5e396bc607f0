"""The state every check of `standin doctor` shares: the config (its check runs first and reads it), the
secrets of the service's environment file, and the running standin as /proc and its dashboard show it."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.config import Config, ConfigError, load
from server.doctor import procs
from server.doctor.findings import Report

DEFAULT_CONFIG = Path("/etc/standin/standin.toml")
ENV_FILE_NAME = "standin.env"


@dataclass(frozen=True, slots=True)
class Health:
    """What the running service's GET /api/health said (status 0: nothing answered)."""

    url: str
    status: int = 0
    body: Mapping[str, Any] | None = None
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status != 0


class Doctor:
    """What the checks share: the arguments, the report, the config and the service's environment (read
    by check_config, which runs first), and the running standin, asked once."""

    def __init__(self, args: argparse.Namespace, report: Report) -> None:
        self.args = args
        self.report = report
        self.timeout_s: float = args.timeout
        self.config_path: Path | None = args.config
        if self.config_path is not None:
            report.source = str(self.config_path)
        self.config: Config | None = None
        self.sip: Any = None  # sip.options.SipOptions once the config is read
        self.env: dict[str, str] = dict(os.environ)
        self._health: Health | None = None
        self._processes: list[procs.Process] | None = None

    # ------------------------------------------------------------------ the running service

    def health(self) -> Health | None:
        """The running dashboard's health, asked once; None when the config has no dashboard."""
        if self._health is None and self.config is not None and self.config.web.listen:
            self._health = fetch_health(self.config.web.listen, self.api_token(), self.timeout_s)
        return self._health

    def processes(self) -> list[procs.Process]:
        if self._processes is None:
            self._processes = [p for p in procs.standin_processes() if p.serves(self.config_path)]
        return self._processes

    def running(self) -> bool:
        health = self.health()
        return bool(self.processes()) or (health is not None and health.answered)

    def starting(self, within_s: float = 300.0) -> bool:
        """Whether the running standin started less than `within_s` ago."""
        ages = [procs.process_age_s(p.pid) for p in self.processes()]
        return any(a is not None and a < within_s for a in ages)

    def api_token(self) -> str:
        if self.args.token:
            return str(self.args.token)
        tokens = [t.strip() for t in self.env.get("STANDIN_API_TOKENS", "").split(",") if t.strip()]
        if not tokens and self.config is not None:
            tokens = [t for t in self.config.web.api_tokens if t]
        return tokens[0] if tokens else ""

    @property
    def cfg(self) -> Config:
        """The config check's config: the other checks run only once it is read."""
        assert self.config is not None, "the config check runs first"
        return self.config

    # ------------------------------------------------------------------ config

    def check_config(self) -> None:
        from sip.options import SipConfigError, SipOptions

        if self.config_path is None:
            if DEFAULT_CONFIG.exists():
                self.config_path = DEFAULT_CONFIG
            else:
                self.report.add("config", "warn", f"no --config given and {DEFAULT_CONFIG} does not exist: "
                                "checking the built-in defaults",
                                "give the file standin serve runs with: standin doctor --config FILE")
        try:
            config = load(self.config_path)
        except ConfigError as exc:
            self.report.add("config", "fail", str(exc), f"correct {self.config_path}; every table and key "
                            "is listed in README.md (Configuration)")
            return
        try:
            self.sip = SipOptions.from_mapping(config.sip)
        except (SipConfigError, TypeError) as exc:
            self.report.add("config", "fail", f"{config.source}: {exc}", f"correct the [sip] table of "
                            f"{config.source} (see sip/README.md)")
            return
        self.config = config
        self.report.source = config.source
        self._read_env_file()
        mode = f"trunk mode, registrar {self.sip.registrar}" if self.sip.registrar else "direct mode"
        self.report.add("config", "ok", f"{config.source} is valid ({mode}; models: set {config.models.set})")

    def _read_env_file(self) -> None:
        path = self.args.env_file
        if path is None and self.config_path is not None:
            path = self.config_path.with_name(ENV_FILE_NAME)
            if not path.exists():
                return
        if path is None:
            return
        try:
            values = parse_env_file(path.read_text(encoding="utf-8"))
        except OSError as exc:
            self.report.add("config", "warn", f"cannot read the environment file {path}: {exc.strerror}",
                            "run doctor as root (or as the service user) to check the service's secrets")
            return
        self.env = {**self.env, **values}
        self.report.add("config", "info", f"read {len(values)} variable(s) from {path}")


# --------------------------------------------------------------------------- helpers


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (comments, blank lines, quotes)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def http_get(url: str, headers: Mapping[str, str], timeout_s: float) -> tuple[int, Any, str]:
    """(status, parsed JSON or None, error) of a GET; status 0 when nothing answered."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, None, str(reason)
    try:
        return status, json.loads(raw), ""
    except ValueError:
        return status, None, f"HTTP {status}, not JSON"


def fetch_health(listen: str, token: str, timeout_s: float) -> Health:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/api/health"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, body, error = http_get(url, headers, timeout_s)
    return Health(url, status, body if isinstance(body, dict) else None, error)
