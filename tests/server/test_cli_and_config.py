"""The command line and the configuration: clear errors, never a stack trace, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from server.cli import main
from server.config import ConfigError, load


def standin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_simulate_writes_the_three_files(shared: Path, tmp_path: Path) -> None:
    s = shared / "scenarios"
    result = standin("simulate", str(s / "quick_question.wav"), "--transcript", str(s / "quick_question.tsv"),
                     "--out", str(tmp_path / "call"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "call" / "summary.json").read_text())
    assert summary["caller_fragments"][0]["text"] == "Hi, is Marco there?"
    assert summary["decisions"][-1] == {**summary["decisions"][-1], "verdict": "COMPLETE", "by": "judge"}
    audio, rate = soundfile.read(tmp_path / "call" / "call.wav")
    assert rate == 16000 and audio.shape[1] == 2
    trace = [json.loads(line) for line in (tmp_path / "call" / "trace.jsonl").read_text().splitlines()]
    assert {"CallStarted", "VadWindow", "TranscriptReady", "Play"} <= {r["type"] for r in trace}


def test_an_unreadable_recording_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "caller.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    code = main(["simulate", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "Traceback" not in err


def test_a_malformed_transcript_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "caller.wav"
    soundfile.write(wav, np.zeros(16000, np.int16), 16000)
    tsv = tmp_path / "caller.tsv"
    tsv.write_text("start_s\tend_s\tlabel\ttext\n0.5\tsoon\tWAIT\thello\n")
    code = main(["simulate", str(wav), "--transcript", str(tsv), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"{tsv}:2" in err and "numbers" in err


def test_the_transcript_engine_needs_a_transcript(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "caller.wav"
    soundfile.write(wav, np.zeros(16000, np.int16), 16000)
    assert main(["simulate", str(wav), "--out", str(tmp_path / "out")]) == 2
    assert "--transcript" in capsys.readouterr().err


def test_judge_prints_a_verdict_per_line() -> None:
    result = subprocess.run([sys.executable, "-m", "server.cli", "judge"], input="Is Marco there?\nI need\n",
                            capture_output=True, text=True, timeout=60, check=True)
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [v for v, _ in lines] == ["COMPLETE", "WAIT"] and all(0 <= float(p) <= 1 for _, p in lines)


def test_config_reads_every_table_and_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[call]\ngreeting = ""\n[turns]\nbackstop_ms = 2500\n[stt]\nlanguage = "it"\n'
                    '[simulate]\nlatency_ms = {stt = 150, judge = 20, llm = 150, tts = 80}\n')
    config = load(good)
    assert config.call.greeting == "" and config.turns.backstop_ms == 2500 and config.language == "it"
    assert config.simulate.latency_ms["llm"] == 150
    cases = {
        "[turns]\nbackstop_msec = 1\n": "unknown key 'backstop_msec'",
        "[tunrs]\n": "unknown table [tunrs]",
        "[turns]\nbackstop_ms = \"long\"\n": "expected a whole number",
        "[llm]\nengine = \"gpt\"\n": "not available",
        "[segmenter]\nstart_p = 0.2\nend_p = 0.4\n": "thresholds",
        "[simulate]\nlatency_ms = {sst = 1}\n": "latency_ms",
        "[call\n": "not valid TOML",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_the_shipped_configs_load_and_name_what_to_fetch(name: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(__file__).resolve().parents[2] / "config" / f"{name}.toml"
    config = load(path, {"models": {"dir": str(tmp_path)}})
    assert config.models.set == name and config.stt.engine == "whisper" and config.tts.engine == "piper"
    wav = tmp_path / "caller.wav"
    soundfile.write(wav, np.zeros(16000, np.int16), 16000)
    monkeypatch.setenv("STANDIN_MODELS", str(tmp_path))  # an empty models folder
    code = main(["simulate", str(wav), "--config", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "standin models pull" in err and "Traceback" not in err


def test_contacts_import_reads_a_vcard_into_the_database(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from server.contacts import lookup_contact
    from server.store.db import open_database

    vcf = tmp_path / "people.vcf"
    vcf.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:anna-1\r\nFN:Anna Bianchi\r\n"
                   "TEL;TYPE=CELL:+39 333 123 4567\r\nEND:VCARD\r\n"
                   "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:broken\r\nFN:No Number\r\nEND:VCARD\r\n")
    config = tmp_path / "standin.toml"
    config.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "db.sqlite"}"\n')
    assert main(["contacts", "import", str(vcf), "--config", str(config)]) == 0
    assert "1 added" in capsys.readouterr().out
    db = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with db.session() as session:
        found = lookup_contact(session, "00393331234567")
    assert found is not None and found["name"] == "Anna Bianchi"


def test_contacts_import_without_a_file_says_how_to_name_one(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", "import", "--config", str(_empty_config(tmp_path))]) == 2
    assert "[contacts] vcard" in capsys.readouterr().err


def _empty_config(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.write_text("")
    return path


@pytest.mark.parametrize("notify", ['first_retry_s = 0', 'max_retry_s = 1', 'max_attempts = 0'])
def test_impossible_notify_retries_are_refused(notify: str, tmp_path: Path) -> None:
    path = tmp_path / "standin.toml"
    path.write_text(f"[notify]\n{notify}\n")
    with pytest.raises(ConfigError, match=r"\[notify\]"):
        load(path)


def test_the_calls_fixed_lines_follow_its_language_unless_the_owner_wrote_them() -> None:
    from server.core.phrases import PHRASES

    italian = load(None, {"stt": {"language": "it"}})
    call = italian.conversation().call
    assert (call.greeting, call.goodbye, call.ack, call.repeat) == (
        PHRASES["it"]["greeting"], PHRASES["it"]["goodbye"], PHRASES["it"]["ack"], PHRASES["it"]["repeat"])
    assert load(None).conversation("it-IT").call.goodbye == PHRASES["it"]["goodbye"]  # a profile's language
    assert load(None).conversation("de").call.goodbye == PHRASES["en"]["goodbye"]  # none written: English
    own = load(None, {"stt": {"language": "it"}, "call": {"goodbye": "Ciao da Marco!"}})
    assert own.conversation().call.goodbye == "Ciao da Marco!"
    assert own.conversation().call.apology == PHRASES["it"]["apology"]
