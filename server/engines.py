"""Builds the engines a configuration asks for. Each engine's module is imported only when chosen, so a
box without llama.cpp or piper runs fine on the engines it has."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from models.engines import EngineError, ReplyModel, SpeechToText, TextToSpeech, TurnJudge
from server.config import Config
from server.runtime import Engines


def models_dir(config: Config) -> Path:
    from models.manager import default_models_dir

    return Path(config.models.dir).expanduser() if config.models.dir else default_models_dir()


def model_path(config: Config, value: str, what: str) -> Path:
    """A configured model path: absolute, or relative to the models folder."""
    if not value:
        raise EngineError(f"{what} needs a model: set it in the config (`standin models list` shows "
                          f"what is installed)")
    path = Path(value).expanduser()
    return path if path.is_absolute() else models_dir(config) / path


def build_engines(config: Config, transcript: Path | None = None) -> Engines:
    from models.vad_silero import SileroVad

    vad = SileroVad(Path(config.vad.model) if config.vad.model else None)
    engines = Engines(vad=vad, stt=build_stt(config, transcript), judge=build_judge(config),
                      llm=build_llm(config), tts=build_tts(config))
    return with_provenance(engines, config, transcript)


def with_provenance(engines: Engines, config: Config, transcript: Path | None = None) -> Engines:
    """`engines` with what they are and the digests of their model files (server/provenance.py), worked
    out once here so that every call of this process only copies it."""
    from server.provenance import describe_engines

    return dataclasses.replace(engines, provenance=describe_engines(engines, config, transcript=transcript))


def warm_up(engines: Engines) -> None:
    """One throwaway inference per engine that offers it, so the first caller waits for nothing."""
    for engine in (engines.stt, engines.judge, engines.llm, engines.tts):
        warm = getattr(engine, "warm_up", None)
        if warm is not None:
            warm()


def build_stt(config: Config, transcript: Path | None = None) -> SpeechToText:
    c = config.stt
    if c.engine == "whisper":
        from models.stt_whisper import WhisperOptions, WhisperStt

        options = WhisperOptions(device=c.device, compute_type=c.compute_type or None,  # type: ignore[arg-type]
                                 cpu_threads=c.threads)
        return WhisperStt(model_path(config, c.model, "[stt] engine = \"whisper\""), options)
    from models.stt_transcript import TranscriptStt

    path = transcript or (Path(c.transcript) if c.transcript else None)
    if path is None:
        raise EngineError("the 'transcript' STT engine needs a timed transcript: pass --transcript FILE.tsv "
                          "or set [stt] transcript in the config")
    return TranscriptStt.from_file(path)


def _llama_options(config: Config):  # type: ignore[no-untyped-def]
    from models.llama import LlamaOptions

    return LlamaOptions(n_ctx=config.llm.n_ctx, n_gpu_layers=config.llm.gpu_layers,
                        n_threads=config.llm.threads or None)


def build_judge(config: Config) -> TurnJudge:
    if config.judge.engine == "llm":
        from models.judge_llm import make_judge

        path = model_path(config, config.judge.model or config.llm.model, "[judge] engine = \"llm\"")
        return make_judge(path, llama=_llama_options(config))
    from models.judge_rules import RulesJudge

    return RulesJudge()


def build_llm(config: Config) -> ReplyModel:
    c = config.llm
    prompts = c.prompts or None
    if c.engine == "llama_cpp":
        from models.llama import load_llama
        from models.llm_llamacpp import LlamaCppReplies, LlamaCppRepliesOptions

        path = model_path(config, c.model, "[llm] engine = \"llama_cpp\"")
        options = LlamaCppRepliesOptions(max_tokens=c.max_tokens, temperature=c.temperature,
                                         template_dir=prompts)
        return LlamaCppReplies(load_llama(path, _llama_options(config)), options)
    if c.engine == "openai":
        from models.llm_openai import OpenAiOptions, OpenAiReplies

        return OpenAiReplies(OpenAiOptions(base_url=c.base_url, model=c.model, api_key_env=c.api_key_env,
                                           timeout_s=c.timeout_s, max_tokens=c.max_tokens,
                                           temperature=c.temperature, template_dir=prompts))
    from models.llm_script import ScriptLlm

    return ScriptLlm(c.replies)


def build_tts(config: Config) -> TextToSpeech:
    c = config.tts
    if c.engine == "piper":
        from models.tts_espeak import EspeakTts
        from models.tts_languages import ByLanguage
        from models.tts_piper import PiperOptions, PiperTts

        voice = model_path(config, c.voice, "[tts] engine = \"piper\"")
        piper = PiperTts(PiperOptions(voices={config.language: voice}, length_scale=c.length_scale))
        return ByLanguage((piper, EspeakTts(rate=c.rate)))  # a call in a language piper has no voice for
    from models.tts_espeak import EspeakTts

    return EspeakTts(voice=c.voice or None, rate=c.rate)
