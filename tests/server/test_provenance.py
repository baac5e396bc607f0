"""Which engines and model files served a call: described once when the engines are built, digests from
the models directory's `.verified` cache (a start costs a stat per file), carried by a simulated call's
summary.json and its trace's first line, and by a live call's row in the database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import models.manager
from models.engines import Line, Verdict
from models.judge_rules import RulesJudge
from models.llm_openai import OpenAiOptions, OpenAiReplies
from models.stt_whisper import WhisperStt
from server.audio import read_audio
from server.config import load
from server.engines import build_engines
from server.owner import Owner
from server.provenance import Provenance, describe_engines, provenance_json, server_of
from server.runtime import Engines
from server.serve import answer
from server.simulate import simulate
from server.store.db import open_database
from server.store.schema import Call
from tests.fakes import SpanStt, SpanVad, ToneTts
from tests.models.tiny_gguf import write_tiny_llama
from tests.server.owner_kit import WavTransport, scenario_config

VOICE = "piper/en_US-test-medium.onnx"
GGUF = "llm/tiny.gguf"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A tiny models directory: a random GGUF, a piper voice's two files (never loaded here)."""
    root = tmp_path / "models"
    for folder in ("llm", "piper"):
        (root / folder).mkdir(parents=True)
    write_tiny_llama(root / GGUF)
    (root / VOICE).write_bytes(b"not really onnx" * 100)
    (root / (VOICE + ".json")).write_text('{"audio": {"sample_rate": 22050}}')
    return root


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files read through for their digest (models.manager.file_digest), by name."""
    seen: list[str] = []
    real = models.manager.file_digest

    def counting(path: Any, *args: Any, **kwargs: Any) -> str:
        seen.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(models.manager, "file_digest", counting)
    return seen


def local_config(models_dir: Path, tmp_path: Path) -> Any:
    tsv = tmp_path / "caller.tsv"
    tsv.write_text("start_s\tend_s\tlabel\ttext\n")
    return load(None, {"models": {"dir": str(models_dir)}, "stt": {"transcript": str(tsv)},
                       "judge": {"engine": "llm", "model": GGUF},
                       "llm": {"engine": "llama_cpp", "model": GGUF, "n_ctx": 512, "gpu_layers": 0},
                       "tts": {"engine": "piper", "voice": VOICE, "length_scale": 1.1}})


def by_role(engines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["role"]: e for e in engines}


def built(config: Any) -> dict[str, dict[str, Any]]:
    """What `build_engines` worked out, by role (the llama.cpp models closed again at once)."""
    engines = build_engines(config)
    for engine in (engines.judge, engines.llm):
        close_llama(engine)
    assert engines.provenance is not None
    return by_role(engines.provenance.to_json())


def close_llama(engine: Any) -> None:
    """Free a llama.cpp model now (left to the interpreter's exit, llama-cpp-python's finaliser fails)."""
    llama = getattr(getattr(engine, "model", None), "llm", None)
    if llama is not None:
        llama.close()


def test_built_engines_name_their_model_files_and_digests_and_a_second_start_reads_none(
        models_dir: Path, tmp_path: Path, reads: list[str]) -> None:
    config = local_config(models_dir, tmp_path)
    described = built(config)

    assert list(described) == ["vad", "stt", "judge", "llm", "tts"]
    assert described["vad"]["kind"] == "silero" and described["vad"]["files"][0]["sha256"]
    assert described["stt"]["kind"] == "transcript" and described["stt"]["model"] == "caller.tsv"
    gguf = {"name": GGUF, "sha256": sha256(models_dir / GGUF), "size": (models_dir / GGUF).stat().st_size}
    assert described["judge"] == {"role": "judge", "kind": "llm", "model": GGUF, "files": [gguf],
                                  "options": {"n_ctx": 512, "threads": "default", "gpu_layers": 0}}
    assert described["llm"]["kind"] == "llama_cpp" and described["llm"]["files"] == [gguf]
    assert described["llm"]["options"]["max_tokens"] == config.llm.max_tokens
    # piper for the voice's language, espeak-ng for any other (models/tts_languages.py)
    assert described["tts"]["kind"] == "piper+espeak" and described["tts"]["model"] == "en_US-test-medium"
    assert [(f["name"], f["sha256"]) for f in described["tts"]["files"]] == [
        (VOICE, sha256(models_dir / VOICE)), (VOICE + ".json", sha256(models_dir / (VOICE + ".json")))]
    assert described["tts"]["options"] == {"length_scale": 1.1, "rate": config.tts.rate}
    assert reads.count("tiny.gguf") == 1  # judge and replies share the file: read once

    # The digests went into `.verified`, where `standin models list` finds them too
    cache = json.loads((models_dir / ".verified").read_text())["files"]
    assert cache[GGUF]["sha256"] == gguf["sha256"] and cache[VOICE]["sha256"] == sha256(models_dir / VOICE)

    reads.clear()
    assert built(config) == described
    assert reads == []  # a stat per file, no reading: the cache, and this process's own memory

    with (models_dir / VOICE).open("ab") as f:  # a changed file is read again
        f.write(b"!")
    changed = built(config)
    assert reads == ["en_US-test-medium.onnx"]
    assert changed["tts"]["files"][0]["sha256"] == sha256(models_dir / VOICE)


def test_a_digest_the_cache_holds_for_the_files_size_and_mtime_is_taken_without_reading_the_file(
        models_dir: Path, tmp_path: Path, reads: list[str]) -> None:
    voice = models_dir / VOICE
    st = voice.stat()
    planted = "ab" * 32
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": planted}
    (models_dir / ".verified").write_text(json.dumps({"version": 1, "files": {VOICE: entry}}))
    described = built(local_config(models_dir, tmp_path))
    assert described["tts"]["files"][0]["sha256"] == planted
    assert "en_US-test-medium.onnx" not in reads


def test_whisper_names_its_folder_and_files_model_bin_first_with_size_device_compute_type_and_language(
        tmp_path: Path) -> None:
    folder = tmp_path / "models" / "whisper" / "tiny.en"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt", ".hidden", "x.part"):
        (folder / name).write_text(name)
    stt = WhisperStt.__new__(WhisperStt)  # what loading leaves behind, without loading a model
    stt.model_dir, stt.device, stt.compute_type = folder, "cpu", "int8"
    config = load(None, {"models": {"dir": str(tmp_path / "models")}, "stt": {"language": "it"}})
    engines = Engines(SpanVad([]), stt, RulesJudge(), OpenAiReplies(OpenAiOptions(model="m")), ToneTts())
    whisper = describe_engines(engines, config).engines[1]
    assert (whisper.kind, whisper.model) == ("whisper", "whisper/tiny.en")
    assert [f.name for f in whisper.files] == [f"whisper/tiny.en/{n}" for n in (
        "model.bin", "config.json", "tokenizer.json", "vocabulary.txt")]
    assert whisper.files[0].sha256 == sha256(folder / "model.bin")
    assert dict(whisper.options) == {"size": "tiny.en", "device": "cpu", "compute_type": "int8",
                                     "threads": "default", "language": "it"}


def test_an_openai_server_is_named_by_host_and_model_never_by_its_credentials(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("STANDIN_TEST_KEY", "sk-very-secret-key")
    llm = OpenAiReplies(OpenAiOptions(base_url="http://owner:hunter2@gpu-box.lan:8000/v1?sig=qwerty987",
                                      model="Qwen/Qwen2.5-7B-Instruct-AWQ", api_key_env="STANDIN_TEST_KEY"))
    engines = Engines(SpanVad([]), SpanStt([]), RulesJudge(), llm, ToneTts())
    with caplog.at_level(logging.DEBUG):
        described = provenance_json(engines)
    entry = by_role(described)["llm"]
    assert (entry["kind"], entry["model"], entry["options"]["server"]) == (
        "openai", "Qwen/Qwen2.5-7B-Instruct-AWQ", "gpu-box.lan:8000")
    text = json.dumps(described) + caplog.text
    for secret in ("sk-very-secret-key", "hunter2", "owner", "qwerty987"):
        assert secret not in text
    assert server_of("https://[::1]/v1") == "[::1]" and server_of("not a url") == ""


class RulesThenModel:
    """A judge that asks the rules first and a model when they cannot tell."""

    def __init__(self, rules: RulesJudge, model: Any) -> None:
        self.rules, self.model = rules, model

    def judge(self, story: Sequence[Line], *, language: str) -> Verdict:
        return self.rules.judge(story, language=language)


def test_a_judge_made_of_rules_and_a_model_says_both(models_dir: Path, tmp_path: Path) -> None:
    from models.judge_llm import make_judge
    from models.llama import LlamaOptions

    llm_judge = make_judge(models_dir / GGUF, llama=LlamaOptions(n_ctx=256, n_gpu_layers=0))
    engines = Engines(SpanVad([]), SpanStt([]), RulesThenModel(RulesJudge(), llm_judge),
                      OpenAiReplies(OpenAiOptions(model="m")), ToneTts())
    judge = describe_engines(engines, local_config(models_dir, tmp_path)).engines[2]
    close_llama(llm_judge)
    assert (judge.kind, judge.model) == ("rules+llm", GGUF)
    assert [(f.name, f.sha256) for f in judge.files] == [(GGUF, sha256(models_dir / GGUF))]


def test_engines_put_together_by_hand_say_what_they_are_without_reading_files() -> None:
    engines = Engines(SpanVad([]), SpanStt([]), RulesJudge(), OpenAiReplies(OpenAiOptions(model="m")),
                      ToneTts())
    assert [(e["role"], e["kind"]) for e in provenance_json(engines)] == [
        ("vad", "SpanVad"), ("stt", "SpanStt"), ("judge", "rules"), ("llm", "openai"), ("tts", "ToneTts")]


def test_provenance_read_back_keeps_what_has_the_right_shape() -> None:
    good = {"role": "stt", "kind": "whisper", "model": "whisper/small",
            "files": [{"name": "whisper/small/model.bin", "sha256": "AB" * 32, "size": 12}],
            "options": {"size": "small", "beam": 1, "odd": [1, 2]}}
    read = Provenance.from_json([good, "junk", {"role": "tts"}, {"role": "llm", "kind": "script",
                                                                 "files": [{"sha256": "x"}], "options": 3}])
    assert read is not None
    assert read.to_json() == [
        {**good, "files": [{"name": "whisper/small/model.bin", "sha256": "ab" * 32, "size": 12}],
         "options": {"size": "small", "beam": 1, "odd": "[1, 2]"}},
        {"role": "llm", "kind": "script", "model": "", "files": [], "options": {}}]
    assert Provenance.from_json(None) is None and Provenance.from_json({"role": "x"}) is None


def test_a_simulated_calls_summary_and_trace_say_which_engines_served_it(
        shared: Path, tmp_path: Path) -> None:
    config = load(None, {"stt": {"transcript": str(shared / "scenarios" / "quick_question.tsv")}})
    engines = build_engines(config)
    out = tmp_path / "call"
    summary = simulate(read_audio(shared / "scenarios" / "quick_question.wav"), engines, config, out).summary
    assert engines.provenance is not None
    expected = engines.provenance.to_json()
    assert summary["engines"] == expected
    assert [(e["role"], e["kind"]) for e in expected] == [
        ("vad", "silero"), ("stt", "transcript"), ("judge", "rules"), ("llm", "script"), ("tts", "espeak")]
    assert json.loads((out / "summary.json").read_text())["engines"] == expected
    first = json.loads((out / "trace.jsonl").read_text().splitlines()[0])
    assert first == {"kind": "engines", "type": "Engines", "engines": expected}
    assert os.path.basename(expected[1]["files"][0]["name"]) == "quick_question.tsv"


def test_a_live_calls_row_keeps_the_engines_that_served_it(shared: Path, tmp_path: Path) -> None:
    config = scenario_config(shared, "quick_question", tmp_path)
    db = open_database(f"sqlite:///{tmp_path / 'standin.db'}")
    owner = Owner(config, db, build_engines(config))
    transport = WavTransport(read_audio(shared / "scenarios" / "quick_question.wav"))

    async def call() -> dict[str, Any]:
        owner.start()
        try:
            return await answer(transport, owner.engines, config, owner.calls_dir, owner=owner)
        finally:
            await asyncio.to_thread(owner.stop)

    try:
        summary = asyncio.run(call())
        assert owner.engines.provenance is not None
        expected = owner.engines.provenance.to_json()
        assert summary["engines"] == expected
        with db.session() as s:
            assert s.scalars(select(Call)).one().engines == expected
    finally:
        db.close()
