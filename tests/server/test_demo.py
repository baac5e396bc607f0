"""`standin demo`: which engines it picks from the models present, the shipped configurations, and a whole
demo call on the stand-ins (the call on real models is in tests/server/test_real_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import cli
from server.config import load
from server.demo import STARTER_CONFIG, demo_config, run_demo, turn_latencies

CONFIGS = sorted(STARTER_CONFIG.parent.glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path: Path) -> None:
    assert load(path).models.set == path.stem  # each file is named after the model set it runs on


def test_the_starter_config_names_only_models_of_the_starter_set() -> None:
    from models.manager import load_manifest

    config = load(STARTER_CONFIG)
    starter = {f.path for f in load_manifest().set("starter").files}
    used = [config.stt.model + "/model.bin", config.llm.model, config.tts.voice]
    if config.judge.engine == "llm":
        used.append(config.judge.model or config.llm.model)
    assert all(u in starter for u in used), used
    assert config.stt.threads == config.llm.threads == 2


def _models(tmp_path: Path, *present: str) -> Path:
    folder = tmp_path / "models"
    for rel in present:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"x")
    config = tmp_path / "demo.toml"
    config.write_text(STARTER_CONFIG.read_text().replace("[models]\n", f'[models]\ndir = "{folder}"\n', 1))
    return config


def test_each_role_falls_back_to_what_is_present_and_says_so(tmp_path: Path) -> None:
    config_path = _models(tmp_path, "whisper/base/model.bin", "piper/en_US-joe-medium.onnx",
                          "llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    config, choices = demo_config(config_path)
    by_role = {c.role: c for c in choices}
    assert (by_role["stt"].engine, by_role["stt"].model) == ("whisper", "whisper/base")
    assert "whisper/tiny.en is not in" in by_role["stt"].note
    assert by_role["tts"].model == "piper/en_US-joe-medium.onnx" and not by_role["tts"].note
    assert by_role["llm"].model == "llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert config.stt.model == "whisper/base"
    assert config.llm.model == "llm/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def test_nothing_present_means_the_stand_ins(tmp_path: Path) -> None:
    config, choices = demo_config(_models(tmp_path))
    assert [(c.role, c.engine) for c in choices] == [("stt", "transcript"), ("judge", "rules"),
                                                     ("llm", "script"), ("tts", "espeak")]
    assert all(c.note for c in choices if c.role != "judge")  # the rules need no model file
    assert (config.stt.engine, config.judge.engine, config.llm.engine, config.tts.engine) == (
        "transcript", "rules", "script", "espeak")


def test_a_demo_call_on_the_stand_ins_prints_its_engines_and_latencies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--stand-ins", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "stt    transcript" in out and "tts    espeak" in out
    assert "voice-to-voice" in out
    config, _ = demo_config(None, stand_ins=True)
    summary = run_demo(config, tmp_path / "again")
    rows = turn_latencies(summary)
    replies = [b for b in summary["bot_turns"] if b["kind"] == "reply" and b["start_s"] is not None]
    assert len(rows) >= 1 and len(rows) <= len(replies)
    assert all(0 < r["voice_to_voice_ms"] < 3000 for r in rows)  # type: ignore[operator]
