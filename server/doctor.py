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
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from server import doctor_net as net
from server.config import Config, ConfigError, load

Level = Literal["ok", "info", "warn", "fail"]
CHECKS = ("config", "models", "engines", "sip", "ports", "rtp", "firewall", "disk", "notify", "web")
DEFAULT_CONFIG = Path("/etc/standin/standin.toml")
ENV_FILE_NAME = "standin.env"
GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    level: Level
    what: str
    fix: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    source: str = "defaults"  # the config file checked

    def add(self, check: str, level: Level, what: str, fix: str = "") -> None:
        self.findings.append(Finding(check, level, what, fix))

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)

    def count(self, level: Level) -> int:
        return sum(f.level == level for f in self.findings)


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
        self._processes: list[net.Process] | None = None

    # ------------------------------------------------------------------ shared state

    def health(self) -> Health | None:
        """The running dashboard's health, asked once; None when the config has no dashboard."""
        if self._health is None and self.config is not None and self.config.web.listen:
            self._health = fetch_health(self.config.web.listen, self.api_token(), self.timeout_s)
        return self._health

    def processes(self) -> list[net.Process]:
        if self._processes is None:
            self._processes = [p for p in net.standin_processes() if p.serves(self.config_path)]
        return self._processes

    def running(self) -> bool:
        health = self.health()
        return bool(self.processes()) or (health is not None and health.answered)

    def starting(self, within_s: float = 300.0) -> bool:
        """Whether the running standin started less than `within_s` ago."""
        ages = [net.process_age_s(p.pid) for p in self.processes()]
        return any(a is not None and a < within_s for a in ages)

    def api_token(self) -> str:
        if self.args.token:
            return str(self.args.token)
        tokens = [t.strip() for t in self.env.get("STANDIN_API_TOKENS", "").split(",") if t.strip()]
        if not tokens and self.config is not None:
            tokens = [t for t in self.config.web.api_tokens if t]
        return tokens[0] if tokens else ""

    def service_user(self) -> pwd.struct_passwd:
        name = self.args.user
        if name:
            try:
                return pwd.getpwnam(name)
            except KeyError:
                self.report.add("disk", "warn", f"there is no user {name!r}; checking as {_me().pw_name}",
                                "give the user the service runs as with --user")
        else:
            try:
                return pwd.getpwnam("standin")
            except KeyError:
                pass
        return _me()

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

    # ------------------------------------------------------------------ models

    def check_models(self) -> None:
        from models.manager import ModelsError, human_size, load_manifest, status
        from server.engines import models_dir as configured_models_dir

        assert self.config is not None
        c = self.config
        models_dir = self.args.models_dir or configured_models_dir(c)
        pull = f"standin models pull --set {c.models.set} --models-dir {models_dir}"
        if self.args.manifest is not None:
            pull += f" --manifest {self.args.manifest}"
        covered: set[str] = set()
        try:
            manifest = load_manifest(self.args.manifest)
            mset = manifest.set(c.models.set)
        except ModelsError as exc:
            self.report.add("models", "fail", str(exc), "reinstall standin, or give --manifest FILE")
        else:
            tty = sys.stderr.isatty()

            def hashing(f: Any) -> None:
                if tty:
                    print(f"doctor: checking the sha256 of {f.path}...", file=sys.stderr)

            rows = status(models_dir, mset, on_hash=hashing)
            covered = {r.file.path for r in rows}
            bad = [r for r in rows if r.state in ("missing", "corrupt")]
            for model in mset.models:
                mine = [r for r in bad if r.file.model == model.name]
                if not mine:
                    continue
                if len(mine) == len(model.files) and all(r.state == "missing" for r in mine):
                    size = human_size(sum(f.size for f in model.files))
                    what = f"model {model.name} is missing ({len(mine)} file(s), {size})"
                else:
                    what = f"model {model.name}: " + "; ".join(
                        f"{r.file.path} is {r.state}" + (f" ({r.detail})" if r.detail else "") for r in mine)
                self.report.add("models", "fail", what, pull)
            unverified = [r for r in rows if r.state == "unverified"]
            if unverified:
                self.report.add("models", "warn", f"{len(unverified)} file(s) of set {mset.name} have no "
                                "digest in the manifest and cannot be checked",
                                "add their sha256 to the manifest")
            if not bad:
                self.report.add("models", "ok", f"set {mset.name}: all {len(rows)} files present with the "
                                f"manifest's checksums, in {models_dir}")
        seen: set[Path] = set()
        for what, path, kind in self._configured_models(models_dir):
            if path in seen:
                continue
            seen.add(path)
            self._check_model_path(what, path, kind, models_dir=models_dir, covered=covered, pull=pull)

    def _set_name(self) -> str:
        return self.config.models.set if self.config is not None else "cpu"

    def _configured_models(self, models_dir: Path) -> list[tuple[str, Path, str]]:
        assert self.config is not None
        c = self.config

        def resolve(value: str) -> Path:
            p = Path(value).expanduser()
            return p if p.is_absolute() else models_dir / p

        found: list[tuple[str, Path, str]] = []
        if c.stt.engine == "whisper" and c.stt.model:
            found.append(("[stt] model", resolve(c.stt.model), "whisper"))
        if c.judge.engine == "llm" and (c.judge.model or c.llm.model):
            found.append(("[judge] model", resolve(c.judge.model or c.llm.model), "file"))
        if c.llm.engine == "llama_cpp" and c.llm.model:
            found.append(("[llm] model", resolve(c.llm.model), "file"))
        if c.tts.engine == "piper" and c.tts.voice:
            found.append(("[tts] voice", resolve(c.tts.voice), "piper"))
        if c.vad.model:
            found.append(("[vad] model", Path(c.vad.model).expanduser(), "file"))
        return found

    def _check_model_path(self, what: str, path: Path, kind: str, *, models_dir: Path, covered: set[str],
                          pull: str) -> None:
        try:
            rel = path.relative_to(models_dir).as_posix()
        except ValueError:
            rel = ""
        if rel and any(p == rel or p.startswith(rel + "/") for p in covered):
            return  # one of the set's files: checked with its digest above
        needed = [path / "model.bin"] if kind == "whisper" else [path]
        if kind == "piper":
            needed.append(path.with_name(path.name + ".json"))
        missing = [p for p in needed if not p.is_file()]
        if missing:
            self.report.add("models", "fail", f"{what}: {missing[0]} does not exist (nor is it part of "
                            "the model set)", f"copy it there, or point {what} at a model of the set "
                            f"(standin models list --set {self._set_name()})")
            return
        self.report.add("models", "info", f"{what}: {path} is there but is not part of the model set, "
                        "so its checksum cannot be checked")

    # ------------------------------------------------------------------ engines and the GPU

    def check_engines(self) -> None:
        assert self.config is not None
        c = self.config
        gpu_wanted = c.models.set == "gpu" or c.stt.device == "cuda"
        gpus = nvidia_gpus(self.timeout_s * 3)
        if gpus.error and gpu_wanted:
            self.report.add("engines", "fail", f"no usable NVIDIA GPU: {gpus.error}", gpus.fix)
        elif gpus.names:
            self.report.add("engines", "ok", "nvidia-smi: " + "; ".join(gpus.names))
        elif gpu_wanted:
            self.report.add("engines", "fail", "the config wants a GPU but there is no NVIDIA driver",
                            "install the driver (the Ansible role standin_nvidia), or use the cpu set: "
                            "config/cpu.toml")
        if not c.vad.model:
            from models.vad_silero import INSTALL_HINT, default_model_path

            found = default_model_path()
            if found is None:
                self.report.add("engines", "fail", "the Silero VAD model is not installed", INSTALL_HINT)
            else:
                self.report.add("engines", "ok", f"VAD: {found}")
        if c.stt.engine == "whisper":
            self._check_whisper(bool(gpus.names))
        if c.tts.engine == "piper":
            self._check_piper(bool(gpus.names), gpu_wanted)
        if c.tts.engine == "espeak" and shutil.which("espeak-ng") is None:
            self.report.add("engines", "fail", "[tts] engine = \"espeak\" but espeak-ng is not installed",
                            "apt-get install espeak-ng")
        if c.llm.engine == "llama_cpp" or c.judge.engine == "llm":
            self._check_llama(bool(gpus.names))
        if c.llm.engine == "openai":
            self._check_openai()

    def _check_whisper(self, have_gpu: bool) -> None:
        assert self.config is not None
        device = self.config.stt.device
        try:
            import ctranslate2  # type: ignore[import-untyped]
            import faster_whisper  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            self.report.add("engines", "fail", f"whisper: {exc}", "pip install faster-whisper (in standin's "
                            "virtualenv)")
            return
        try:
            cuda = int(ctranslate2.get_cuda_device_count())
        except Exception as exc:  # a broken CUDA install raises from inside CTranslate2
            cuda, detail = 0, f" ({exc})"
        else:
            detail = ""
        if cuda > 0:
            types = sorted(ctranslate2.get_supported_compute_types("cuda"))
            where = "CUDA" if device != "cpu" else "CPU (device = \"cpu\", though CUDA is there)"
            self.report.add("engines", "ok", f"whisper (CTranslate2 {ctranslate2.__version__}): {where}, "
                            f"{cuda} device(s); compute types {', '.join(types)}")
        elif device == "cuda":
            self.report.add("engines", "fail", f"whisper: [stt] device = \"cuda\" but CTranslate2 sees no "
                            f"CUDA device{detail}",
                            "CTranslate2 needs CUDA 12 with cuBLAS and cuDNN 9 (pip install "
                            "nvidia-cublas-cu12 nvidia-cudnn-cu12 and put their lib folders on "
                            "LD_LIBRARY_PATH), or set [stt] device = \"auto\"")
        elif have_gpu:
            self.report.add("engines", "warn", f"whisper runs on the CPU: CTranslate2 sees no CUDA device"
                            f"{detail} although there is a GPU",
                            "install cuBLAS and cuDNN 9 for CUDA 12 (pip install nvidia-cublas-cu12 "
                            "nvidia-cudnn-cu12) and put their lib folders on LD_LIBRARY_PATH")
        else:
            self.report.add("engines", "ok", f"whisper (CTranslate2 {ctranslate2.__version__}): CPU")

    def _check_piper(self, have_gpu: bool, gpu_wanted: bool) -> None:
        try:
            import onnxruntime  # type: ignore[import-untyped]
            import piper  # noqa: F401
        except ImportError as exc:
            self.report.add("engines", "fail", f"piper: {exc}", "pip install piper-tts (in standin's "
                            "virtualenv)")
            return
        providers = onnxruntime.get_available_providers()
        if "CUDAExecutionProvider" in providers:
            ok, detail = onnx_cuda_works()
            if ok:
                self.report.add("engines", "ok", f"piper: onnxruntime {onnxruntime.__version__} runs on CUDA")
            else:
                self.report.add("engines", "fail" if gpu_wanted else "warn",
                                f"piper: onnxruntime has a CUDA provider but it does not run: {detail}",
                                "onnxruntime-gpu needs CUDA 12 and cuDNN 9 libraries on LD_LIBRARY_PATH "
                                "(pip install nvidia-cudnn-cu12 nvidia-cublas-cu12)")
        elif have_gpu or gpu_wanted:
            self.report.add("engines", "warn", "piper runs on the CPU: this onnxruntime has no CUDA provider",
                            "pip uninstall -y onnxruntime && pip install onnxruntime-gpu (same version), in "
                            "standin's virtualenv")
        else:
            self.report.add("engines", "ok", f"piper: onnxruntime {onnxruntime.__version__} on the CPU")

    def _check_llama(self, have_gpu: bool) -> None:
        assert self.config is not None
        try:
            import llama_cpp
        except ImportError as exc:
            self.report.add("engines", "fail", f"llama.cpp: {exc}", "pip install llama-cpp-python (in "
                            "standin's virtualenv)")
            return
        try:
            offload = bool(llama_cpp.llama_supports_gpu_offload())
        except Exception:
            offload = False
        users = " and ".join(x for x, used in (("the turn judge", self.config.judge.engine == "llm"),
                                               ("the replies", self.config.llm.engine == "llama_cpp"))
                             if used)
        if offload:
            self.report.add("engines", "ok", f"llama.cpp {llama_cpp.__version__} ({users}): GPU offload")
        elif have_gpu and self.config.llm.gpu_layers != 0:
            self.report.add("engines", "warn", f"llama.cpp {llama_cpp.__version__} ({users}) was built "
                            "without GPU support: it runs on the CPU",
                            f"CMAKE_ARGS=\"-DGGML_CUDA=on\" pip install --force-reinstall --no-cache-dir "
                            f"llama-cpp-python=={llama_cpp.__version__} (needs the CUDA toolkit)")
        else:
            self.report.add("engines", "ok", f"llama.cpp {llama_cpp.__version__} ({users}): CPU")

    def _check_openai(self) -> None:
        assert self.config is not None
        c = self.config.llm
        url = c.base_url.rstrip("/") + "/models"
        headers = {}
        if c.api_key_env and self.env.get(c.api_key_env):
            headers["Authorization"] = f"Bearer {self.env[c.api_key_env]}"
        status, body, error = http_get(url, headers, self.timeout_s)
        fix = ("start the model server: systemctl start standin-vllm (logs: journalctl -u standin-vllm); "
               "on first start vLLM needs a few minutes to load the model")
        if status != 200 or not isinstance(body, dict):
            self.report.add("engines", "fail", f"replies: the OpenAI-compatible server at {c.base_url} does "
                            f"not answer ({error or f'HTTP {status}'})", fix)
            return
        served = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
        if c.model and c.model not in served:
            self.report.add("engines", "fail", f"replies: {c.base_url} serves {served or 'no model'}, not "
                            f"{c.model!r}", f"set [llm] model to one of {served}, or start vLLM with "
                            f"--served-model-name {c.model}")
            return
        self.report.add("engines", "ok", f"replies: {c.base_url} serves {c.model or served}")

    # ------------------------------------------------------------------ SIP

    def check_sip(self) -> None:
        from sip.options import SipConfigError

        o = self.sip
        if not has_pjsua2():
            self.report.add("sip", "fail", "pjsua2 (the SIP stack) is not installed in this Python",
                            f"build it: sip/build_pjsua2.sh --venv {Path(sys.prefix)} (see sip/README.md)")
        if o.registrar is not None:
            try:
                if o.password_env is not None:
                    if not self.env.get(o.password_env):
                        raise SipConfigError(f"SIP password: the environment variable {o.password_env} is "
                                             "not set (in the service's environment file or this shell)")
                else:
                    o.password()
            except SipConfigError as exc:
                where = o.password_file or o.password_env
                self.report.add("sip", "fail", str(exc), f"put the trunk password in {where}, "
                                "readable by the service user only (Ansible: standin_sip_password)")
            else:
                self.report.add("sip", "ok", f"the SIP password for {o.username} is set")
            host = o.registrar_host
            try:
                addresses = resolve(host)
            except OSError as exc:
                self.report.add("sip", "fail", f"the registrar {host} does not resolve ({exc})",
                                "check the box's DNS (resolvectl status) and the registrar's name")
            else:
                self.report.add("sip", "ok", f"the registrar {host} resolves to {', '.join(addresses)}")
        self._check_registration()

    def _check_registration(self) -> None:
        o = self.sip
        health = self.health()
        if health is None:
            self.report.add("sip", "warn", "[web] listen is empty, so doctor cannot ask standin for its "
                            "registration", "set [web] listen (e.g. 127.0.0.1:8080) to let doctor ask")
            return
        if not health.answered:
            if self.processes():
                pids = ", ".join(str(p.pid) for p in self.processes())
                self.report.add("sip", "warn", f"standin runs (pid {pids}) but its dashboard at {health.url} "
                                f"does not answer ({health.error})",
                                "see its log: journalctl -u standin -e")
            else:
                self.report.add("sip", "warn", "standin is not running, so its registration cannot be "
                                "checked", "start it: systemctl start standin (then run doctor again)")
            return
        body = health.body or {}
        sip = body.get("sip")
        if "sip" not in body:
            said = body.get("status", health.status)
            self.report.add("sip", "warn", f"standin's dashboard answered ({said}) but without details: "
                            "doctor needs an API token",
                            "give one with --token, or put STANDIN_API_TOKENS in standin.env beside the "
                            "config (Ansible: standin_api_tokens)")
            return
        if not isinstance(sip, dict):
            serve = body.get("serve") or {}
            self.report.add("sip", "warn", "the dashboard runs without standin serve: "
                            f"{serve.get('detail', 'no SIP status')}", "start it: systemctl start standin")
            return
        state = str(sip.get("state", "unknown"))
        registrar = sip.get("registrar") or o.registrar
        code, reason = sip.get("code", 0), sip.get("reason", "")
        if state == "registered":
            expires = f", expires in {sip['expires_s']} s" if sip.get("expires_s") else ""
            self.report.add("sip", "ok", f"registered at {registrar} as {o.username} ({code} {reason}"
                            f"{expires})")
        elif state == "direct":
            self.report.add("sip", "ok", f"direct mode: no registration; calls are taken on {o.listen}")
        elif state == "registering":
            self.report.add("sip", "warn", f"still registering at {registrar} (no answer yet)",
                            "wait a few seconds and run doctor again; if it stays, check the network path "
                            "to the registrar and the firewall")
        else:
            self.report.add("sip", "fail", f"not registered at {registrar}: {state} {code} {reason}".rstrip(),
                            registration_fix(int(code or 0)))

    # ------------------------------------------------------------------ ports

    def wanted_ports(self) -> list[tuple[str, str, int, str]]:
        """(proto, host, port, the config key) for every port standin listens on."""
        from sip.options import split_host_port

        o = self.sip
        ports: list[tuple[str, str, int, str]] = []
        for t in o.transports:
            if t in ("udp", "tcp"):
                ports.append((t, o.listen_host, o.listen_port, "[sip] listen"))
        if "tls" in o.transports:
            ports.append(("tcp", o.listen_host, o.tls_port, "[sip] tls_port"))
        assert self.config is not None
        if self.config.web.listen:
            try:
                host, port = split_host_port(self.config.web.listen, "listen")
            except ValueError as exc:
                self.report.add("ports", "fail", f"[web] {exc}".replace("[sip] ", ""),
                                "write [web] listen as host:port, e.g. 127.0.0.1:8080")
            else:
                ports.append(("tcp", host, port, "[web] listen"))
        return ports

    def check_ports(self) -> None:
        running = self.running()
        health = self.health()
        for proto, host, port, key in self.wanted_ports():
            label = f"{proto} {host}:{port} ({key})"
            state = net.probe_bind(proto, host, port)
            if state == "free":
                if running and key != "[web] listen" and self.starting():
                    self.report.add("ports", "warn", f"{label}: standin started moments ago and does not "
                                    "listen there yet (it loads the models first)",
                                    "run doctor again in a minute")
                elif running and key != "[web] listen":
                    self.report.add("ports", "fail", f"{label}: standin runs but does not listen there",
                                    "see its log (journalctl -u standin -e); it may run with another config")
                else:
                    self.report.add("ports", "ok", f"{label} is free for standin")
            elif state == "taken":
                owners = net.port_owners(proto, port)
                if owners and all(p.is_standin for p in owners):
                    self.report.add("ports", "ok", f"{label} is held by standin (pid "
                                    f"{', '.join(str(p.pid) for p in owners)})")
                elif key == "[web] listen" and health is not None and health.answered and not owners:
                    self.report.add("ports", "ok", f"{label} is held by standin's dashboard")
                elif owners:
                    other = next(p for p in owners if not p.is_standin)
                    self.report.add("ports", "fail", f"{label} is taken by pid {other.pid} ({other.command})",
                                    f"stop that program, or give standin another port in {key}")
                elif running:
                    self.report.add("ports", "ok", f"{label} is held, by standin as far as this user can "
                                    "see (run doctor as root to see the process)")
                else:
                    self.report.add("ports", "fail", f"{label} is taken by a process this user cannot see",
                                    f"find it as root (ss -lnup 'sport = :{port}'; ss -lntp "
                                    f"'sport = :{port}'), stop it, or give standin another port in {key}")
            elif state == "noaddr":
                self.report.add("ports", "fail", f"{label}: {host} is not an address of this box",
                                f"use one of its addresses (ip -brief address) or 0.0.0.0 in {key}")
            elif state == "denied":
                self.report.add("ports", "fail", f"{label}: ports below 1024 need privileges",
                                f"use a port from 1024 up in {key} (5060 for SIP, 8080 for the dashboard)")
            else:
                self.report.add("ports", "fail", f"{label}: cannot be bound: {state}", f"check {key}")

    # ------------------------------------------------------------------ RTP

    def check_rtp(self) -> None:
        o = self.sip
        first, count = o.rtp_port_start, o.rtp_port_count
        last = first + count - 1
        table = net.socket_inodes("udp")
        busy = {p: i for p, i in table.items() if first <= p <= last}
        owners = net.inode_owners(set().union(*busy.values())) if busy else {}
        foreign = sorted(p for p, inodes in busy.items()
                         if not all(i in owners and owners[i].is_standin for i in inodes))
        need = 2 * o.max_calls
        free = count - len(foreign)
        label = f"udp {first}-{last} ([sip] rtp_port_start/rtp_port_count)"
        if free < need:
            self.report.add("rtp", "fail", f"{label}: only {free} ports free, {o.max_calls} calls need "
                            f"{need}",
                            "move the range ([sip] rtp_port_start) to unused ports, or stop what holds them "
                            f"(ss -lnup 'sport >= :{first} and sport <= :{last}')")
        elif foreign:
            names = sorted({owners[i].command for p in foreign for i in busy[p] if i in owners})
            self.report.add("rtp", "warn", f"{label}: {len(foreign)} ports held by other programs"
                            + (f" ({'; '.join(names[:3])})" if names else ""),
                            "keep the RTP range for standin alone: move it or those programs")
        else:
            self.report.add("rtp", "ok", f"{label}: {count} ports free for {o.max_calls} calls")

    # ------------------------------------------------------------------ firewall

    def check_firewall(self, ruleset: Mapping[str, Any] | None = None) -> None:
        if ruleset is None:
            try:
                ruleset = net.read_ruleset(self.timeout_s)
            except net.FirewallUnreadable as exc:
                self.report.add("firewall", "info", f"the firewall cannot be read: {exc}",
                                "run doctor as root to check what nftables lets in")
                return
        self.firewall_findings(net.Ruleset.parse(ruleset))

    def firewall_findings(self, rs: net.Ruleset) -> None:
        o = self.sip
        if not rs.input_chains():
            self.report.add("firewall", "warn", "no nftables input chain: every port of this box is open to "
                            "every network that reaches it",
                            "install the firewall (the Ansible role standin_firewall) to let SIP and RTP in "
                            "from the trunk only and the dashboard from the LAN only")
            return
        trunk: list[str] = []
        if o.registrar_host:
            try:
                trunk = resolve(o.registrar_host)
            except OSError:
                trunk = []
        for proto, host, port, key in self.wanted_ports():
            label = f"{proto} {port} ({key})"
            if _is_loopback(host):
                self.report.add("firewall", "ok", f"{label}: listens on loopback only")
                continue
            v = rs.verdict(proto, port)
            if v.closed:
                self.report.add("firewall", "fail" if key.startswith("[sip]") else "warn",
                                f"{label}: {v.describe()}", firewall_fix(proto, str(port), key))
                continue
            if key.startswith("[sip]") and trunk and proto == "udp":
                admitted = [a for a in trunk if net.opening_admits(rs, v, a) is not False]
                if not admitted:
                    self.report.add("firewall", "fail", f"{label}: {v.describe()}; the registrar "
                                    f"({', '.join(trunk)}) is not among them, so its calls are dropped",
                                    firewall_fix(proto, str(port), key, trunk))
                    continue
            if key == "[web] listen" and v.any:
                self.report.add("firewall", "warn", f"{label}: {v.describe()}",
                                "let only the LAN reach the dashboard (Ansible: standin_firewall_lan)")
            else:
                self.report.add("firewall", "ok", f"{label}: {v.describe()}")
        if _is_loopback(o.listen_host):
            return
        runs = net.port_intervals(rs, "udp", o.rtp_port_start, o.rtp_port_count)
        for lo, hi, v in runs:
            span = f"udp {lo}-{hi} (RTP)" if lo != hi else f"udp {lo} (RTP)"
            if v.closed:
                self.report.add("firewall", "fail", f"{span}: {v.describe()}: callers would not be heard",
                                firewall_fix("udp", f"{lo}-{hi}", "[sip] rtp_port_start", trunk))
            else:
                self.report.add("firewall", "ok", f"{span}: {v.describe()}")

    # ------------------------------------------------------------------ disk

    def check_disk(self) -> None:
        from server.audio import CALL_RATE

        assert self.config is not None
        c = self.config
        user = self.service_user()
        calls = Path(c.storage.calls_dir).expanduser().absolute()
        self._check_dir("[storage] calls_dir", calls, user)
        per_hour = CALL_RATE * 2 * 2 * 3600  # call.wav: 16-bit stereo
        base = _existing(calls)
        usage = shutil.disk_usage(base)
        hours = usage.free / per_hour
        what = (f"{_gib(usage.free)} free for recordings on {base} (about {hours:,.0f} hours of calls; "
                f"a {c.call.max_duration_s / 60:.0f}-minute call takes "
                f"{per_hour * c.call.max_duration_s / 3600 / 1e6:.0f} MB)")
        fix = f"free space on {base} or move [storage] calls_dir to a larger disk"
        if usage.free < GIB:
            self.report.add("disk", "fail", what, fix)
        elif usage.free < 5 * GIB:
            self.report.add("disk", "warn", what, fix)
        else:
            self.report.add("disk", "ok", what)
        db = c.storage.database
        if db.startswith("sqlite:///"):
            path = Path(db[len("sqlite:///"):]).expanduser().absolute()
            self._check_dir("[storage] database", path.parent, user)
        else:
            scheme = urllib.parse.urlsplit(db).scheme
            self.report.add("disk", "info", f"[storage] database is a {scheme} server; doctor does not check "
                            "its disk")

    def _check_dir(self, key: str, path: Path, user: pwd.struct_passwd) -> None:
        if path.is_dir():
            if writable_by(path, user):
                self.report.add("disk", "ok", f"{key}: {path} is writable by {user.pw_name}")
            else:
                self.report.add("disk", "fail", f"{key}: {user.pw_name} cannot write into {path}",
                                f"chown {user.pw_name}: {path} (or chmod it so {user.pw_name} can write)")
            return
        parent = _existing(path)
        if path.exists():
            self.report.add("disk", "fail", f"{key}: {path} is not a folder", f"remove it or change {key}")
        elif writable_by(parent, user):
            self.report.add("disk", "info", f"{key}: {path} does not exist yet; standin makes it")
        else:
            self.report.add("disk", "fail", f"{key}: {path} does not exist and {user.pw_name} cannot make it",
                            f"mkdir -p {path} && chown {user.pw_name}: {path}")

    # ------------------------------------------------------------------ notifications

    def notify_urls(self) -> list[str]:
        assert self.config is not None
        n = self.config.notify
        urls = list(n.urls)
        if n.urls_file:
            path = Path(n.urls_file).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                self.report.add("notify", "fail", f"[notify] urls_file {path} cannot be read: {exc.strerror}",
                                f"write one apprise URL a line into {path}, readable by the service user "
                                "(Ansible: standin_notify_urls); run doctor as root to read it")
            else:
                urls += [ln.strip() for ln in text.splitlines()
                         if ln.strip() and not ln.lstrip().startswith("#")]
        urls += [u.strip() for u in self.env.get("STANDIN_NOTIFY_URLS", "").replace("\n", ",").split(",")
                 if u.strip()]
        return list(dict.fromkeys(urls))

    def check_notify(self) -> None:
        urls = self.notify_urls()
        if not urls:
            self.report.add("notify", "warn", "no notification channel: messages reach the dashboard only",
                            "add apprise URLs to [notify] urls_file (Ansible: standin_notify_urls)")
            return
        try:
            import apprise
        except ImportError:
            self.report.add("notify", "fail", "apprise is not installed", "pip install apprise")
            return
        for url in urls:
            plugin: Any = apprise.Apprise.instantiate(url, suppress_exceptions=True)
            if plugin is None:
                scheme = url.split("://", 1)[0] if "://" in url else url[:12]
                self.report.add("notify", "fail", f"{scheme}://...: not a valid apprise URL",
                                "write it as the apprise documentation shows for that service "
                                "(https://github.com/caronc/apprise/wiki)")
                continue
            shown = plugin.url(privacy=True).split("?", 1)[0]
            endpoint = notify_endpoint(plugin)
            if endpoint is None:
                self.report.add("notify", "info", f"{shown}: valid; doctor cannot tell where it connects")
                continue
            host, port = endpoint
            error = tcp_reachable(host, port, self.timeout_s)
            if error:
                self.report.add("notify", "fail", f"{shown}: {host}:{port} cannot be reached ({error})",
                                "check this box's network path and DNS to that server, or use a channel on "
                                "the LAN (e.g. a self-hosted ntfy)")
            else:
                self.report.add("notify", "ok", f"{shown}: {host}:{port} answers")
        if self.args.notify_test:
            self._send_test(urls)

    def _send_test(self, urls: list[str]) -> None:
        """A test message to every channel, through standin's own notifier (server.notify.send_test) or,
        where that is missing, apprise directly."""
        try:
            from server.notify import send_test
        except ImportError:
            results = [(_private(url), _apprise_send(url), "") for url in urls]
            note = " (sent with apprise directly: server.notify.send_test is missing)"
        else:
            try:
                checks = send_test(urls, timeout_s=max(self.timeout_s, 10.0))
            except Exception as exc:
                self.report.add("notify", "fail", f"the test message failed: {type(exc).__name__}: {exc}",
                                "check the URLs in [notify] urls_file")
                return
            results = [(str(c.label), bool(c.ok), str(c.error)) for c in checks]
            note = ""
        for label, sent, error in results:
            if sent:
                self.report.add("notify", "ok", f"{label}: test message sent{note}")
            else:
                self.report.add("notify", "fail", f"{label}: the test message was not delivered"
                                + (f" ({error})" if error else "") + note,
                                "check the URL's credentials and the service's own status")

    # ------------------------------------------------------------------ dashboard

    def check_web(self) -> None:
        assert self.config is not None
        w = self.config.web
        if not w.listen:
            self.report.add("web", "info", "[web] listen is empty: no dashboard")
            return
        path = Path(w.password_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            self.report.add("web", "fail", f"the dashboard has no owner password ({path} does not exist)",
                            f"standin passwd --config {self.config.source}")
            return
        except OSError as exc:
            self.report.add("web", "warn", f"{path} cannot be read here: {exc.strerror}",
                            "run doctor as root or as the service user")
            return
        if not text.startswith("$argon2"):
            self.report.add("web", "fail", f"{path} does not hold an argon2 hash",
                            f"standin passwd --config {self.config.source}")
        else:
            self.report.add("web", "ok", f"the dashboard on {w.listen} has an owner password")
        host = _listen_host(w.listen)
        if host not in _LOOPBACK and not w.secure_cookies:
            self.report.add("web", "info", f"the dashboard listens on {host} over plain HTTP; set "
                            "[web] secure_cookies = true once a TLS proxy is in front of it")


# --------------------------------------------------------------------------- helpers


def resolve(host: str) -> list[str]:
    """The addresses a host name resolves to (an address stays itself); OSError when it does not."""
    return sorted({str(a[4][0]) for a in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)})


def has_pjsua2() -> bool:
    import importlib.util

    return importlib.util.find_spec("pjsua2") is not None


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


def registration_fix(code: int) -> str:
    if code in (401, 403, 407):
        return ("the registrar refused the credentials: check [sip] username and the password "
                "(Ansible: standin_sip_username, standin_sip_password)")
    if code == 404:
        return "the registrar does not know this user: check [sip] username and registrar"
    if code in (0, 408, 503):
        return ("the registrar did not answer: check DNS, the route to it, and that the firewall lets its "
                "answers in")
    return "see the registrar's answer above and standin's log: journalctl -u standin -e"


def firewall_fix(proto: str, ports: str, key: str, sources: Iterable[str] = ()) -> str:
    srcs = list(sources)
    v4 = [s for s in srcs if ":" not in s]
    saddr = f"ip saddr {{ {', '.join(v4)} }} " if v4 else ""
    return (f"let it in: nft add rule inet standin input {saddr}{proto} dport {ports} accept "
            f"(or run the Ansible role standin_firewall; {key} must match its variables)")


@dataclass(frozen=True, slots=True)
class Gpus:
    names: tuple[str, ...] = ()
    error: str = ""
    fix: str = ""


def nvidia_gpus(timeout_s: float, run: Callable[..., Any] = subprocess.run) -> Gpus:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        if Path("/proc/driver/nvidia/version").exists():
            return Gpus(error="the driver is loaded but nvidia-smi is missing",
                        fix="install nvidia-smi (it comes with the driver packages)")
        return Gpus()
    query = "--query-gpu=index,name,driver_version,memory.total,memory.used"
    try:
        done = run([smi, query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                   timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Gpus(error=f"nvidia-smi did not answer ({exc})", fix="check the driver: dmesg | grep -i nvrm")
    if done.returncode != 0:
        detail = (done.stdout.strip() or done.stderr.strip() or "failed").splitlines()[0]
        return Gpus(error=f"nvidia-smi: {detail}",
                    fix="the driver is not working: reboot after installing it; check dmesg | grep -i nvrm "
                        "and that Secure Boot lets the module load")
    names = []
    for line in done.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 5:
            idx, name, driver, total, used = parts[:5]
            names.append(f"GPU {idx} {name}, driver {driver}, {used} of {total} MiB used")
    return Gpus(tuple(names)) if names else Gpus(error="nvidia-smi lists no GPU",
                                                 fix="check the card is seated and powered: lspci | grep -i "
                                                     "nvidia")


def onnx_cuda_works() -> tuple[bool, str]:
    """Whether onnxruntime really runs a (one-node) model on CUDA, rather than falling back to the CPU."""
    try:
        import onnxruntime
        from onnx import TensorProto, helper

        node = helper.make_node("Identity", ["x"], ["y"])
        graph = helper.make_graph([node], "probe",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = min(model.ir_version, 9)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                               providers=["CUDAExecutionProvider"])
    except Exception as exc:
        return False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "CUDAExecutionProvider" in session.get_providers():
        return True, ""
    return False, "the CUDA provider fell back to the CPU (CUDA or cuDNN libraries not found)"


def notify_endpoint(plugin: Any) -> tuple[str, int] | None:
    """The host and port an apprise plugin connects to, where it can be told."""
    url = None
    cloud = getattr(plugin, "cloud_notify_url", None)
    if getattr(plugin, "mode", None) == "cloud" and isinstance(cloud, str):
        url = cloud
    elif isinstance(getattr(plugin, "notify_url", None), str) and plugin.notify_url.startswith("http"):
        url = plugin.notify_url
    if url is not None:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    smtp = getattr(plugin, "smtp_host", None)
    if isinstance(smtp, str) and smtp:
        return smtp, int(getattr(plugin, "port", None) or 25)
    host = getattr(plugin, "host", None)
    if isinstance(host, str) and host:
        port = getattr(plugin, "port", None)
        return host, int(port) if port else (443 if getattr(plugin, "secure", False) else 80)
    return None


def tcp_reachable(host: str, port: int, timeout_s: float) -> str:
    """'' when a TCP connection opens, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return ""
    except socket.gaierror as exc:
        return f"{host} does not resolve: {exc.strerror}"
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return exc.strerror or str(exc)


def writable_by(path: Path, user: pwd.struct_passwd) -> bool:
    if user.pw_uid == 0:
        return True
    if user.pw_uid == os.geteuid():
        return os.access(path, os.W_OK | os.X_OK)
    try:
        st = path.stat()
    except OSError:
        return False
    import grp

    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IWUSR and st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IXOTH)


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _listen_host(listen: str) -> str:
    return listen.rsplit(":", 1)[0].strip("[]")


def _existing(path: Path) -> Path:
    p = path
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _me() -> pwd.struct_passwd:
    return pwd.getpwuid(os.geteuid())


def _apprise_send(url: str) -> bool:
    import apprise

    a = apprise.Apprise()
    a.add(url)
    return bool(a.notify(body="standin doctor: a test message. If you read it, standin's messages reach you "
                         "here.", title="standin test"))


def _private(url: str) -> str:
    try:
        import apprise

        plugin: Any = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except ImportError:
        plugin = None
    return plugin.url(privacy=True).split("?", 1)[0] if plugin is not None else url.split("://", 1)[0] + "://..."


# --------------------------------------------------------------------------- command line


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
    steps: dict[str, Callable[[], None]] = {
        "models": doctor.check_models, "engines": doctor.check_engines, "sip": doctor.check_sip,
        "ports": doctor.check_ports, "rtp": doctor.check_rtp, "firewall": doctor.check_firewall,
        "disk": doctor.check_disk, "notify": doctor.check_notify, "web": doctor.check_web,
    }
    for name in only:
        if name in steps:
            try:
                steps[name]()
            except Exception as exc:  # a check that breaks must not hide the others' findings
                report.add(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                           "report this as a bug in standin doctor")
    return report


_LABELS = {"ok": "ok", "info": "info", "warn": "WARN", "fail": "FAIL"}


def render(report: Report, width: int = 110) -> str:
    lines = [f"standin doctor: {report.source}"]
    indent = " " * 16
    for f in report.findings:
        lines += textwrap.wrap(f"{f.check:<9} {_LABELS[f.level]:<4}  {f.what}", width,
                               subsequent_indent=indent, break_on_hyphens=False, break_long_words=False)
        if f.fix and f.level in ("warn", "fail"):
            lines += textwrap.wrap(f"fix: {f.fix}", width, initial_indent=indent,
                                   subsequent_indent=indent + "     ", break_on_hyphens=False,
                                   break_long_words=False)
    fails, warns = report.count("fail"), report.count("warn")
    if fails:
        lines.append(f"{fails} problem(s), {warns} warning(s): fix the problems before a caller finds them")
    else:
        lines.append("no problems" + (f", {warns} warning(s)" if warns else "") + ": standin is ready")
    return "\n".join(lines)


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


if __name__ == "__main__":
    sys.exit(main())
