"""`standin doctor`'s engines check: the engines the config uses are installed and see the GPU when they
should (nvidia-smi, CTranslate2 for whisper, onnxruntime's CUDA provider for piper, llama.cpp's GPU
offload), and the OpenAI-compatible server (vLLM) answers with the configured model."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.doctor.context import Doctor, http_get


def check_engines(d: Doctor) -> None:
    c = d.cfg
    gpu_wanted = c.models.set == "gpu" or c.stt.device == "cuda"
    gpus = nvidia_gpus(d.timeout_s * 3)
    if gpus.error and gpu_wanted:
        d.report.add("engines", "fail", f"no usable NVIDIA GPU: {gpus.error}", gpus.fix)
    elif gpus.names:
        d.report.add("engines", "ok", "nvidia-smi: " + "; ".join(gpus.names))
    elif gpu_wanted:
        d.report.add("engines", "fail", "the config wants a GPU but there is no NVIDIA driver",
                     "install the driver (the Ansible role standin_nvidia), or use the cpu set: "
                     "config/cpu.toml")
    if not c.vad.model:
        from models.vad_silero import INSTALL_HINT, default_model_path

        found = default_model_path()
        if found is None:
            d.report.add("engines", "fail", "the Silero VAD model is not installed", INSTALL_HINT)
        else:
            d.report.add("engines", "ok", f"VAD: {found}")
    if c.stt.engine == "whisper":
        _check_whisper(d, bool(gpus.names))
    if c.tts.engine == "piper":
        _check_piper(d, bool(gpus.names), gpu_wanted)
    if c.tts.engine == "espeak" and shutil.which("espeak-ng") is None:
        d.report.add("engines", "fail", "[tts] engine = \"espeak\" but espeak-ng is not installed",
                     "apt-get install espeak-ng")
    if c.llm.engine == "llama_cpp" or c.judge.engine == "llm":
        _check_llama(d, bool(gpus.names))
    if c.llm.engine == "openai":
        _check_openai(d)


def _check_whisper(d: Doctor, have_gpu: bool) -> None:
    device = d.cfg.stt.device
    try:
        import ctranslate2
        import faster_whisper  # noqa: F401
    except ImportError as exc:
        _not_installed(d, "whisper", exc, "faster-whisper")
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
        d.report.add("engines", "ok", f"whisper (CTranslate2 {ctranslate2.__version__}): {where}, "
                     f"{cuda} device(s); compute types {', '.join(types)}")
    elif device == "cuda":
        d.report.add("engines", "fail", f"whisper: [stt] device = \"cuda\" but CTranslate2 sees no "
                     f"CUDA device{detail}",
                     "CTranslate2 needs CUDA 12 with cuBLAS and cuDNN 9 (pip install "
                     "nvidia-cublas-cu12 nvidia-cudnn-cu12 and put their lib folders on "
                     "LD_LIBRARY_PATH), or set [stt] device = \"auto\"")
    elif have_gpu:
        d.report.add("engines", "warn", f"whisper runs on the CPU: CTranslate2 sees no CUDA device"
                     f"{detail} although there is a GPU",
                     "install cuBLAS and cuDNN 9 for CUDA 12 (pip install nvidia-cublas-cu12 "
                     "nvidia-cudnn-cu12) and put their lib folders on LD_LIBRARY_PATH")
    else:
        d.report.add("engines", "ok", f"whisper (CTranslate2 {ctranslate2.__version__}): CPU")


def _check_piper(d: Doctor, have_gpu: bool, gpu_wanted: bool) -> None:
    try:
        import onnxruntime
        import piper  # noqa: F401
    except ImportError as exc:
        _not_installed(d, "piper", exc, "piper-tts")
        return
    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        ok, detail = onnx_cuda_works()
        if ok:
            d.report.add("engines", "ok", f"piper: onnxruntime {onnxruntime.__version__} runs on CUDA")
        else:
            d.report.add("engines", "fail" if gpu_wanted else "warn",
                         f"piper: onnxruntime has a CUDA provider but it does not run: {detail}",
                         "onnxruntime-gpu needs CUDA 12 and cuDNN 9 libraries on LD_LIBRARY_PATH "
                         "(pip install nvidia-cudnn-cu12 nvidia-cublas-cu12)")
    elif have_gpu or gpu_wanted:
        d.report.add("engines", "warn", "piper runs on the CPU: this onnxruntime has no CUDA provider",
                     "pip uninstall -y onnxruntime && pip install onnxruntime-gpu (same version), in "
                     "standin's virtualenv")
    else:
        d.report.add("engines", "ok", f"piper: onnxruntime {onnxruntime.__version__} on the CPU")


def _check_llama(d: Doctor, have_gpu: bool) -> None:
    try:
        import llama_cpp
    except ImportError as exc:
        _not_installed(d, "llama.cpp", exc, "llama-cpp-python")
        return
    try:
        offload = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:
        offload = False
    users = " and ".join(x for x, used in (("the turn judge", d.cfg.judge.engine == "llm"),
                                           ("the replies", d.cfg.llm.engine == "llama_cpp"))
                         if used)
    if offload:
        d.report.add("engines", "ok", f"llama.cpp {llama_cpp.__version__} ({users}): GPU offload")
    elif have_gpu and d.cfg.llm.gpu_layers != 0:
        d.report.add("engines", "warn", f"llama.cpp {llama_cpp.__version__} ({users}) was built "
                     "without GPU support: it runs on the CPU",
                     f"CMAKE_ARGS=\"-DGGML_CUDA=on\" pip install --force-reinstall --no-cache-dir "
                     f"llama-cpp-python=={llama_cpp.__version__} (needs the CUDA toolkit)")
    else:
        d.report.add("engines", "ok", f"llama.cpp {llama_cpp.__version__} ({users}): CPU")


def _check_openai(d: Doctor) -> None:
    c = d.cfg.llm
    url = c.base_url.rstrip("/") + "/models"
    headers = {}
    if c.api_key_env and d.env.get(c.api_key_env):
        headers["Authorization"] = f"Bearer {d.env[c.api_key_env]}"
    status, body, error = http_get(url, headers, d.timeout_s)
    fix = ("start the model server: systemctl start standin-vllm (logs: journalctl -u standin-vllm); "
           "on first start vLLM needs a few minutes to load the model")
    if status != 200 or not isinstance(body, dict):
        d.report.add("engines", "fail", f"replies: the OpenAI-compatible server at {c.base_url} does "
                     f"not answer ({error or f'HTTP {status}'})", fix)
        return
    served = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
    if c.model and c.model not in served:
        d.report.add("engines", "fail", f"replies: {c.base_url} serves {served or 'no model'}, not "
                     f"{c.model!r}", f"set [llm] model to one of {served}, or start vLLM with "
                     f"--served-model-name {c.model}")
        return
    d.report.add("engines", "ok", f"replies: {c.base_url} serves {c.model or served}")


def _not_installed(d: Doctor, engine: str, exc: ImportError, package: str) -> None:
    d.report.add("engines", "fail", f"{engine}: {exc}", f"pip install {package} (in standin's virtualenv)")


# --------------------------------------------------------------------------- the GPU


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
