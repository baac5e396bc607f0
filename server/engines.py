"""Builds the engines a configuration asks for. Heavy modules are imported only when chosen."""

from __future__ import annotations

from pathlib import Path

from models.engines import EngineError
from server.config import Config
from server.runtime import Engines


def build_engines(config: Config, transcript: Path | None = None) -> Engines:
    from models.judge_rules import RulesJudge
    from models.llm_script import ScriptLlm
    from models.stt_transcript import TranscriptStt
    from models.tts_espeak import EspeakTts
    from models.vad_silero import SileroVad

    vad = SileroVad(Path(config.vad.model) if config.vad.model else None)
    path = transcript or (Path(config.stt.transcript) if config.stt.transcript else None)
    if path is None:
        raise EngineError("the 'transcript' STT engine needs a timed transcript: pass --transcript FILE.tsv "
                          "or set [stt] transcript in the config")
    stt = TranscriptStt.from_file(path)
    tts = EspeakTts(voice=config.tts.voice or None, rate=config.tts.rate)
    return Engines(vad=vad, stt=stt, judge=RulesJudge(), llm=ScriptLlm(config.llm.replies), tts=tts)
