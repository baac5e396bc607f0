"""The test call page in a real headless Chromium: log in, open /call, start a call whose microphone is a
scenario recording (Chromium's fake capture device), hear standin answer, hang up, find the call. And the
page's two audio worklets on their own, run by node."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from server.audio import resample
from tests.web.call_server import LEAD_S, PASSWORD, CallServer, make_config, shifted_scenario

CHROMIUM = Path("/usr/bin/chromium")
STATIC = Path(__file__).resolve().parents[2] / "server" / "web" / "static"


@pytest.fixture
def server(shared: Path, tmp_path: Path) -> Iterator[tuple[CallServer, Path]]:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian's chromium package); browsers are never downloaded")
    _, tsv, audio = shifted_scenario(shared / "scenarios", "quick_question", tmp_path, tail_s=30.0)
    mic = tmp_path / "microphone.wav"  # what Chromium's fake capture device plays, once
    sf.write(mic, resample(audio, 16000, 48000), 48000, subtype="PCM_16")
    srv = CallServer(make_config(tmp_path, tsv)).start()
    yield srv, mic
    srv.stop()


def launch(p: Any, mic: Path) -> Any:
    return p.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}%noloop"])


def watch(page: Any) -> list[str]:
    """Everything that goes wrong in the page: script errors, console errors, failed requests."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # (a 404 console line with no response event is the browser's own favicon request)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors


def log_in(page: Any, srv: CallServer, path: str) -> None:
    page.goto(f"{srv.origin}{path}")
    assert "/login" in page.url  # nothing without the owner's session
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{srv.origin}{path}")


@pytest.mark.slow
def test_a_test_call_from_the_browser(server: tuple[CallServer, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    srv, mic = server
    shot, detail_shot = tmp_path / "call-page.png", tmp_path / "call-detail.png"
    with sync_playwright() as p:
        browser = launch(p, mic)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            errors = watch(page)
            log_in(page, srv, "/call")

            call = page.locator("#call")
            expect(call).to_have_attribute("data-available", "true")
            page.click("#call-start")
            expect(call).to_have_attribute("data-state", "live")
            # The greeting, then the answer to "Hi, is Marco there?"
            expect(call).to_have_attribute("data-bot-turns", re.compile(r"^([2-9]|\d\d+)$"), timeout=90_000)
            expect(page.locator("#call-log")).to_contain_text("standin answered")
            page.screenshot(path=str(shot), full_page=True)

            page.click("#call-hangup")
            expect(call).to_have_attribute("data-state", "ended")
            expect(page.locator("#call-status")).to_contain_text("Call ended")
            call_id = call.get_attribute("data-call-id")
            assert call_id and call_id.startswith("browser-")

            # The call and its message, in the inbox like any other (the message is written after the call)
            page.click("#call-stored >> text=Messages")
            message = page.locator(".inbox .message")
            deadline = time.monotonic() + 120
            while message.count() == 0 and time.monotonic() < deadline:
                page.wait_for_timeout(1000)
                page.reload()
            expect(message).to_have_count(1)
            expect(message).to_contain_text("Marco")
            message.locator("text=Call details").click()
            expect(page.locator("dl.fields")).to_contain_text("browser")
            expect(page.locator("main")).to_contain_text("caller hung up")
            expect(page.locator("svg.waterfall")).to_be_visible()
            page.screenshot(path=str(detail_shot), full_page=True)
        finally:
            browser.close()

    assert not errors, errors
    for png in (shot, detail_shot):
        assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = srv.summary(call_id)
    assert summary["caller_number"] == "browser" and summary["ended"] == "caller hung up"
    question_end = LEAD_S + 2.139
    texts = " ".join(f["text"] for f in summary["caller_fragments"])
    assert "Marco" in texts, summary["caller_fragments"]
    kinds = [b["kind"] for b in summary["bot_turns"]]
    assert kinds[:2] == ["greeting", "reply"], kinds
    reply = summary["bot_turns"][1]
    assert reply["start_s"] > question_end - 0.3 and reply["text_heard"]


# ---------------------------------------------------------------------------- the worklets, in node

# Runs one AudioWorkletProcessor file the way the browser's audio thread would: `steps` feed it input
# blocks, messages from the page, or ask it for output blocks; prints what it posted and played.
HARNESS = """
const fs = require("fs"), vm = require("vm");
const [file, rate] = [process.argv[2], Number(process.argv[3])];
const posted = [];
const sandbox = { sampleRate: rate, Math, Float32Array, Int16Array, ArrayBuffer,
  AudioWorkletProcessor: class { constructor() { this.port = { postMessage: (m) => posted.push(m) }; } },
  registerProcessor: (name, cls) => { sandbox.processor = cls; } };
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(file, "utf8"), sandbox);
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const node = new sandbox.processor({ processorOptions: input.options });
const out = [];
for (const step of input.steps) {
  if (step.send) node.port.onmessage({ data: Int16Array.from(step.send).buffer });
  if (step.message) node.port.onmessage({ data: step.message });
  if (step.input) node.process([[Float32Array.from(step.input)]], [[new Float32Array(128)]]);
  for (let i = 0; i < (step.pull || 0); i++) {
    const o = [[new Float32Array(128)]];
    node.process([], o);
    out.push(...o[0][0]);
  }
}
const frames = posted.filter((m) => m instanceof ArrayBuffer).map((b) => Array.from(new Int16Array(b)));
const notes = posted.filter((m) => !(m instanceof ArrayBuffer));
process.stdout.write(JSON.stringify({ frames, notes, out }));
"""


def worklet(tmp: Path, name: str, rate: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (Debian's nodejs package)")
    harness = tmp / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    done = subprocess.run([node, str(harness), str(STATIC / name), str(rate)], capture_output=True, text=True,
                          input=json.dumps({"steps": steps, "options": {"rate": 16000, "frame": 320}}),
                          timeout=120, check=True)
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    return result


def tone(freq: float, rate: int, seconds: float, amplitude: float) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("rate", [48000, 44100])
def test_the_microphone_goes_out_as_16k_frames_without_aliasing(tmp_path: Path, rate: int) -> None:
    def mic(x: np.ndarray) -> np.ndarray:
        steps = [{"input": x[i:i + 128].tolist()} for i in range(0, len(x), 128)]
        frames = worklet(tmp_path, "mic-worklet.js", rate, steps)["frames"]
        assert {len(f) for f in frames} == {320}
        assert abs(len(frames) - len(x) / rate * 50) <= 1  # one 20 ms frame per 20 ms of input
        return np.concatenate(frames)[1600:] / 32768  # past the filter's start

    voice = mic(tone(1000, rate, 1.0, 0.5))
    assert peak_hz(voice, 16000) == pytest.approx(1000, abs=5)
    assert rms(voice) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    above = mic(tone(10000, rate, 1.0, 0.5))  # above 8 kHz: would fold back to 6 kHz
    assert 20 * np.log10(rms(above) / (0.5 / np.sqrt(2))) < -40


def test_the_player_buffers_resamples_and_drains(tmp_path: Path) -> None:
    pcm = np.round(tone(1000, 16000, 1.0, 16000 / 32768) * 32768).astype(int)
    frames = [pcm[i:i + 320].tolist() for i in range(0, len(pcm), 320)]
    steps: list[dict[str, Any]] = [{"send": frames[0]}, {"send": frames[1]}, {"pull": 10}]  # 40 ms in
    steps += [{"send": frames[2]}, {"pull": 1}]  # 60 ms: it starts
    steps += [step for f in frames[3:10] for step in ({"send": f}, {"pull": 7})]  # ~20 ms each
    steps += [{"send": f} for f in frames[10:]]  # a 0.8 s burst: more than it keeps
    steps += [{"pull": 400}, {"message": {"type": "drain"}}, {"pull": 2}]
    result = worklet(tmp_path, "player-worklet.js", 48000, steps)
    out = np.array(result["out"])
    assert not out[:1280].any()  # nothing before 60 ms were buffered
    played = out[1280:][np.abs(out[1280:]) > 0]
    assert peak_hz(played, 48000) == pytest.approx(1000, abs=10)
    assert rms(played) == pytest.approx(16000 / 32768 / np.sqrt(2), rel=0.03)
    levels = [n for n in result["notes"] if n["type"] == "level"]
    assert levels[-1]["droppedMs"] > 300  # the burst was cut back to a short buffer
    assert len(played) / 48 < 1000 - 300
    assert result["notes"][-1] == {"type": "drained"}
