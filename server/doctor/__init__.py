"""`standin doctor`: what is wrong with this box, found before a caller finds it.

Every check reports findings (ok, info, warn, fail); each warn and fail says how to fix it.

- config    the TOML file, its [sip] table included, is valid
- models    every file of the configured model set is there with the manifest's digest, and every model
            the engines are configured with exists
- engines   the engines the config uses are installed and see the GPU when they should (nvidia-smi,
            CTranslate2 for whisper, onnxruntime's CUDA provider for piper, llama.cpp's GPU offload), and
            the OpenAI-compatible server (vLLM) answers with the configured model
- sip       the trunk password can be read, the registrar resolves, and, while standin runs, the
            registration the running service reports (asked through the dashboard's /api/health)
- ports     the SIP and dashboard ports are free, or held by standin
- rtp       the RTP range is free for standin's calls
- firewall  nftables lets SIP in from the registrar, the RTP range in, and shows who reaches the dashboard
- disk      the calls folder and the database have a writable home with room for recordings
- notify    the notification channels are valid apprise URLs whose servers answer; `--notify-test`
            sends a test message
- web       the dashboard has an owner password

Secrets the service gets from its environment file (`standin.env` beside the config, as the Ansible
roles install it) are read from there too. Exit status: 0 when nothing failed, 1 when something did,
2 for a usage error.

This file is the command line; the checks live beside it: context.py (what they share: the config, the
service's secrets, the running standin), models.py, engines.py, network.py (sip, ports, rtp, firewall,
with procs.py for who holds a port and nft.py for what nftables lets in) and host.py (disk, notify, web);
findings.py holds the Finding, the Report and how it prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from server.doctor import engines, host, models, network
from server.doctor.context import DEFAULT_CONFIG, ENV_FILE_NAME, Doctor
from server.doctor.findings import Finding, Report, render

__all__ = ["CHECKS", "Finding", "Report", "add_arguments", "add_cli", "diagnose", "main", "render", "run"]

# The checks after config, in the order they run; config runs first, always: the others need what it reads.
STEPS: dict[str, Callable[[Doctor], None]] = {
    "models": models.check_models, "engines": engines.check_engines, "sip": network.check_sip,
    "ports": network.check_ports, "rtp": network.check_rtp, "firewall": network.check_firewall,
    "disk": host.check_disk, "notify": host.check_notify, "web": host.check_web,
}
CHECKS = ("config", *STEPS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=f"the TOML file standin serve runs with "
                        f"(default: {DEFAULT_CONFIG} when it exists)")
    parser.add_argument("--only", metavar="CHECKS",
                        help=f"comma-separated checks to run: {', '.join(CHECKS)}")
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="the models folder (default: the "
                        "config's [models] dir, else standin's default)")
    parser.add_argument("--manifest", type=Path, metavar="FILE", help="a model manifest other than the "
                        "shipped one")
    parser.add_argument("--token", help="an API token for the dashboard (default: the first of "
                        "STANDIN_API_TOKENS or [web] api_tokens)")
    parser.add_argument("--env-file", type=Path, metavar="FILE", help="the service's environment file "
                        f"(default: {ENV_FILE_NAME} beside the config, when it exists)")
    parser.add_argument("--user", help="the user the service runs as (default: standin, when it exists)")
    parser.add_argument("--notify-test", action="store_true", help="send a test message to every "
                        "notification channel")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each network "
                        "answer (default: 3)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `doctor` to the `standin` command's subparsers."""
    parser = subparsers.add_parser("doctor", help="check this box and say how to fix what is wrong",
                                   description="Check the config, the models and their checksums, the GPU "
                                               "for each engine, SIP registration, ports, the RTP range and "
                                               "the firewall, disk space, notification channels and the "
                                               "dashboard; each problem comes with its fix. Exit status 1 "
                                               "when something is wrong.")
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def diagnose(args: argparse.Namespace) -> Report:
    only = [c.strip() for c in (args.only or "").split(",") if c.strip()] or list(CHECKS)
    unknown = [c for c in only if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check {unknown[0]!r}; the checks are: {', '.join(CHECKS)}")
    report = Report()
    doctor = Doctor(args, report)
    doctor.check_config()
    if doctor.config is None:
        return report
    for name in only:
        if name in STEPS:
            try:
                STEPS[name](doctor)
            except Exception as exc:  # a check that breaks must not hide the others' findings
                report.add(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                           "report this as a bug in standin doctor")
    return report


def run(args: argparse.Namespace) -> int:
    try:
        report = diagnose(args)
    except ValueError as exc:
        print(f"standin doctor: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": not report.failed, "findings": [asdict(f) for f in report.findings]},
                         indent=1))
    else:
        print(render(report))
    return 1 if report.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="standin doctor", description="Check this box: config, models, "
                                     "GPU, SIP, ports, firewall, disk, notifications; each problem with "
                                     "its fix.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
