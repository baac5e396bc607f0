"""A call's engines and model files on its page (compact: engine, model, a short digest with the full one
in its title) and in the JSON API."""

from __future__ import annotations

import html
import re
from typing import Any

from server.store.db import Database
from server.store.schema import Call
from tests.store.postgres import both_backends
from tests.web.conftest import Site, add_call

WHISPER_BIN = "e76620f83d5f5b69efd3d87e3dc180c1bd21df9fbebacfd4335e5e1efcc018da"
GGUF = "6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e"
ENGINES: list[dict[str, Any]] = [
    {"role": "vad", "kind": "silero", "model": "silero_vad.onnx",
     "files": [{"name": "/opt/silero_vad.onnx", "sha256": "1a" * 32, "size": 2327524}], "options": {}},
    {"role": "stt", "kind": "whisper", "model": "whisper/large-v3-turbo",
     "files": [{"name": "whisper/large-v3-turbo/model.bin", "sha256": WHISPER_BIN, "size": 1617884929},
               {"name": "whisper/large-v3-turbo/config.json", "sha256": None, "size": 2263}],
     "options": {"size": "large-v3-turbo", "device": "cuda", "compute_type": "float16", "language": "it"}},
    {"role": "judge", "kind": "rules+llm", "model": "llm/<judge>.gguf",
     "files": [{"name": "llm/<judge>.gguf", "sha256": GGUF, "size": 1117320736}],
     "options": {"n_ctx": 4096, "threads": "default", "gpu_layers": -1}},
    {"role": "llm", "kind": "openai", "model": "Qwen/Qwen2.5-7B-Instruct-AWQ", "files": [],
     "options": {"server": "gpu-box.lan:8000", "max_tokens": 200, "temperature": 0.6}},
    {"role": "tts", "kind": "espeak", "model": "", "files": [], "options": {"rate": 175, "voice": None}},
]


def call_with_engines(db: Database, n: int, engines: list[dict[str, Any]] | None) -> int:
    call_id = add_call(db, n)
    with db.session() as s:
        call = s.get(Call, call_id)
        assert call is not None
        call.engines = engines
    return call_id


@both_backends
def test_the_api_gives_a_calls_engines_and_null_for_a_call_stored_without_them(owner: Site) -> None:
    call_id = call_with_engines(owner.context.db, 1, ENGINES)
    assert owner.client.get(f"/api/calls/{call_id}").json()["engines"] == ENGINES
    older = call_with_engines(owner.context.db, 2, None)
    assert owner.client.get(f"/api/calls/{older}").json()["engines"] is None


def test_the_call_page_shows_engine_model_and_short_digests_with_the_full_ones_in_titles(owner: Site) -> None:
    call_id = call_with_engines(owner.context.db, 1, ENGINES)
    page = owner.client.get(f"/calls/{call_id}").text
    section = re.search(r"<h2>Engines</h2>.*?</table>", page, re.S)
    assert section, "the page has no engines table"
    rows = [[html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[:3]]
            for row in re.findall(r"<tr><td>.*?</tr>", section.group(0), re.S)]
    assert rows == [["vad", "silero", "silero_vad.onnx"], ["stt", "whisper", "whisper/large-v3-turbo"],
                    ["judge", "rules+llm", "llm/<judge>.gguf"],
                    ["llm", "openai", "Qwen/Qwen2.5-7B-Instruct-AWQ"], ["tts", "espeak", "–"]]
    table = section.group(0)
    assert f'<code title="whisper/large-v3-turbo/model.bin: {WHISPER_BIN}">{WHISPER_BIN[:12]}</code>' in table
    assert '<code title="whisper/large-v3-turbo/config.json: digest not read">unverified</code>' in table
    assert f'<code title="llm/&lt;judge&gt;.gguf: {GGUF}">{GGUF[:12]}</code>' in table  # escaped
    assert "<judge>" not in table
    assert "Qwen/Qwen2.5-7B-Instruct-AWQ" in table and "server gpu-box.lan:8000" in table
    assert "size large-v3-turbo, device cuda, compute_type float16, language it" in table
    assert "rate 175</td>" in table  # an option without a value is left out


def test_a_call_stored_without_engines_has_no_engines_section(owner: Site) -> None:
    call_id = call_with_engines(owner.context.db, 1, None)
    assert "<h2>Engines</h2>" not in owner.client.get(f"/calls/{call_id}").text
