"""standin's configuration: one TOML file, every table checked against the options it fills.

Each table maps onto a frozen options dataclass; an unknown key, a wrong type or an impossible value is a
`ConfigError` that names the file, the table and the key. Defaults are the numbers in DESIGN.md §2.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import phonenumbers

from models.engines import CallContext
from server.core.conversation import CallOptions, ConversationOptions
from server.core.dictation import DictationOptions
from server.core.phrases import PHRASE_KEYS, phrases_for
from server.core.screening import ScreeningOptions
from server.core.segmenter import SegmenterOptions
from server.core.speech import SpeechOptions
from server.core.turns import TurnOptions
from server.echo import EchoOptions
from server.numbering import PhoneNumbersPlan, region_for_language


class ConfigError(ValueError):
    pass


MODEL_SETS = ("cpu", "gpu", "starter", "tests")  # the sets of models/manifest.toml


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    dir: str = ""  # where model files live; relative model paths below start here ("" = the default)
    set: str = "cpu"  # the manifest set `standin models pull` fetches: one of MODEL_SETS


@dataclass(frozen=True, slots=True)
class VadConfig:
    engine: str = "silero"
    model: str = ""  # path to an ONNX file; empty: the one shipped in the silero-vad package


@dataclass(frozen=True, slots=True)
class SttConfig:
    engine: str = "transcript"  # transcript | whisper
    model: str = ""  # whisper: the CTranslate2 model folder
    language: str = "en"  # the owner's language: speech is heard, judged and spoken in it
    device: str = "auto"  # whisper: auto | cpu | cuda
    compute_type: str = ""  # whisper: "" = int8 on CPU, float16 on CUDA
    transcript: str = ""  # transcript: the timed transcript to answer from
    hints: tuple[str, ...] = ()  # names and words to expect (the owner's, places, companies)
    threads: int = 0  # whisper on a CPU: 0 = CTranslate2's default
    timeout_s: float = 15.0


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    engine: str = "rules"  # rules | llm
    model: str = ""  # llm: a GGUF file (may be the one [llm] uses)
    timeout_s: float = 5.0


DEFAULT_REPLIES = (
    "I see. I will make sure the message reaches them today.",
    "Is there anything else you would like me to pass on?",
)


@dataclass(frozen=True, slots=True)
class LlmConfig:
    engine: str = "script"  # script | llama_cpp | openai
    model: str = ""  # llama_cpp: a GGUF file; openai: the model name the server serves
    base_url: str = "http://127.0.0.1:8000/v1"  # openai: vLLM, llama.cpp's server, Ollama, ...
    api_key_env: str = ""  # openai: the environment variable holding the key, if the server wants one
    prompts: str = ""  # a folder with the owner's reply templates; "" = the shipped ones
    owner_name: str = ""  # how the prompts name the person standin answers for
    replies: tuple[str, ...] = DEFAULT_REPLIES  # script: the lines, in order
    max_tokens: int = 200
    temperature: float = 0.6
    n_ctx: int = 4096  # llama_cpp (and an llm judge on the same file)
    gpu_layers: int = -1  # llama_cpp: -1 = all, when the build has a GPU backend
    threads: int = 0  # llama_cpp (and an llm judge on the same file): 0 = llama.cpp's default
    timeout_s: float = 20.0  # longest wait for the next piece of a reply
    message_timeout_s: float = 60.0  # writing up a finished call's message; then the transcript is sent
    message_max_tokens: int = 400


@dataclass(frozen=True, slots=True)
class TtsConfig:
    engine: str = "espeak"  # espeak | piper
    voice: str = ""  # espeak: a voice name ("" = the call's language); piper: the .onnx voice file
    rate: int = 175  # espeak: words per minute
    length_scale: float = 1.0  # piper: > 1 speaks slower
    timeout_s: float = 15.0


@dataclass(frozen=True, slots=True)
class StorageConfig:
    calls_dir: str = "calls"  # every call's files (call.wav, trace.jsonl, summary.json) in a folder here
    database: str = "sqlite:///standin.db"  # a SQLAlchemy URL: SQLite (WAL) or postgresql+psycopg://...
    node: str = ""  # this box's name when several share one database: a restart recovers only its calls


@dataclass(frozen=True, slots=True)
class WebConfig:
    listen: str = "127.0.0.1:8080"  # host:port of the dashboard and API; "" = none
    api_tokens: tuple[str, ...] = ()  # bearer tokens for the API; STANDIN_API_TOKENS (comma-separated) adds
    password_file: str = "web-password"  # the owner's argon2 hash, written by `standin passwd`
    secret_file: str = "web-secret"  # session signing key, made (mode 0600) on first start
    secure_cookies: bool = False  # true when the dashboard is reached over HTTPS
    login_attempts: int = 5  # failed logins per address ...
    login_window_s: float = 300.0  # ... within this window, then 429 until it passes
    session_hours: float = 12.0
    max_body_bytes: int = 1024 * 1024  # a longer request body is refused (413) before it is read

    def __post_init__(self) -> None:
        if self.login_attempts < 1 or self.login_window_s <= 0 or self.session_hours <= 0:
            raise ValueError("login_attempts must be at least 1; login_window_s and session_hours positive")
        if self.max_body_bytes < 4096:
            raise ValueError(f"max_body_bytes must be at least 4096 (the default is 1048576), "
                             f"not {self.max_body_bytes}")


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    urls: tuple[str, ...] = ()  # apprise URLs, one per channel; STANDIN_NOTIFY_URLS and urls_file add more
    urls_file: str = ""  # a file with one apprise URL a line (keeps channel secrets out of the config)
    first_retry_s: float = 30.0  # a failed delivery is retried after this, doubling each time ...
    max_retry_s: float = 3600.0  # ... up to this
    max_attempts: int = 48  # then the delivery is marked failed and shown on the dashboard
    timeout_s: float = 30.0  # longest wait for one channel to take one message
    screened: bool = False  # also send the messages of screened calls (robocalls, silent calls)
    taken: bool = False  # also send the messages of calls the owner took (a ring-through they accepted)

    def __post_init__(self) -> None:
        if self.first_retry_s <= 0 or self.max_retry_s < self.first_retry_s:
            raise ValueError("first_retry_s must be positive and max_retry_s at least first_retry_s")
        if self.max_attempts < 1 or self.timeout_s <= 0:
            raise ValueError("max_attempts must be at least 1 and timeout_s positive")


@dataclass(frozen=True, slots=True)
class ContactsConfig:
    vcard: str = ""  # a .vcf file: numbers to names; CATEGORIES name a profile ("blocked" blocks)
    carddav_url: str = ""  # an address book collection on a CardDAV server (Nextcloud, Radicale, ...)
    carddav_username: str = ""
    carddav_password_env: str = ""  # the environment variable holding the CardDAV password ...
    carddav_password_file: str = ""  # ... or a file with it; never the password itself
    carddav_refresh_min: float = 60.0  # how often `standin serve` fetches the address book again
    default_profile: str = "default"
    # the owner's country (ISO 3166, "IT") for numbers written or said without a country code; "" = the
    # country of the owner's language when there is one (it -> IT), else none
    region: str = ""

    def __post_init__(self) -> None:
        if self.region and self.region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"region must be a two-letter country code such as IT, GB or US (or empty), "
                             f"not {self.region!r}")
        object.__setattr__(self, "region", self.region.upper())


_OWNER_PHONE = re.compile(r"(sips?:[^\s@]+@[^\s]+)|(\+?[0-9*#][0-9*# ]*)")
_HOURS = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])-([01]?[0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True, slots=True)
class OwnerConfig:
    """[owner]: putting callers through to the owner's own phone (server/ringthrough.py)."""

    phone: str = ""  # "" = never; a SIP URI (sip:me@192.168.1.20) or a number dialled through the trunk
    method: str = "bridge"  # bridge: ring, announce, join the calls | transfer: blind SIP REFER
    ring_timeout_s: float = 20.0  # ringing this long unanswered: back to the caller, take the message
    decide_timeout_s: float = 15.0  # answered, the owner has this long to press 1
    profiles: tuple[str, ...] = ("*",)  # the callers' profiles that may be put through ("*": any)
    keypad: bool = True  # a caller pressing 0 asks to be put through
    on_request: bool = True  # a caller asking for the owner does
    urgent: bool = False  # a caller saying it is urgent does (any profile; still not in quiet hours)
    quiet_hours: tuple[str, ...] = ()  # "22:00-07:00", local time: nobody is put through then
    do_not_disturb: bool = False  # nobody is put through at all (the dashboard may turn it on too)

    def __post_init__(self) -> None:
        if self.phone and not _OWNER_PHONE.fullmatch(self.phone.strip()):
            raise ValueError(f"phone must be a SIP URI (sip:user@host) or a number (+39 333 1234567), "
                             f"not {self.phone!r}")
        if self.method not in ("bridge", "transfer"):
            raise ValueError(f"method must be bridge or transfer, not {self.method!r}")
        if self.ring_timeout_s <= 0 or self.decide_timeout_s <= 0:
            raise ValueError("ring_timeout_s and decide_timeout_s must be positive")
        for span in self.quiet_hours:
            if not _HOURS.fullmatch(span.replace(" ", "")):
                raise ValueError(f"quiet_hours takes spans like \"22:00-07:00\", not {span!r}")


@dataclass(frozen=True, slots=True)
class SimulateConfig:
    latency_ms: dict[str, float] = field(default_factory=dict)  # stt, judge, llm, tts
    hangup_after_s: float = 2.0  # once the caller's audio ends and the bot is done
    echo: dict[str, float] = field(default_factory=dict)  # the bot heard back: {delay_ms, gain_db}


@dataclass(frozen=True, slots=True)
class Config:
    call: CallOptions = field(default_factory=CallOptions)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    segmenter: SegmenterOptions = field(default_factory=SegmenterOptions)
    turns: TurnOptions = field(default_factory=TurnOptions)
    echo: EchoOptions = field(default_factory=EchoOptions)
    speech: SpeechOptions = field(default_factory=SpeechOptions)
    stt: SttConfig = field(default_factory=SttConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    web: WebConfig = field(default_factory=WebConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    contacts: ContactsConfig = field(default_factory=ContactsConfig)
    owner: OwnerConfig = field(default_factory=OwnerConfig)
    screening: ScreeningOptions = field(default_factory=ScreeningOptions)
    sip: dict[str, Any] = field(default_factory=dict)  # checked by sip.options.SipOptions.from_mapping
    source: str = "defaults"
    owner_phrases: frozenset[str] = frozenset()  # the fixed lines [call] sets: kept in every language

    @property
    def language(self) -> str:
        return self.stt.language

    @property
    def region(self) -> str:
        """The owner's country for numbers without a country code ("" when none can be told)."""
        return self.contacts.region or region_for_language(self.language)

    def timeouts(self) -> dict[str, float]:
        return {"stt": self.stt.timeout_s, "judge": self.judge.timeout_s, "llm": self.llm.timeout_s,
                "tts": self.tts.timeout_s}

    def context(self, caller_number: str = "", caller_name: str = "") -> CallContext:
        """What the reply prompt may say about a call starting now."""
        return CallContext(language=self.language, caller_number=caller_number, caller_name=caller_name,
                           owner_name=self.llm.owner_name,
                           started_at=datetime.now().astimezone().isoformat(timespec="minutes"))

    def conversation(self, language: str | None = None) -> ConversationOptions:
        """The core's options for a call in `language` (default: the owner's): the fixed lines the
        owner did not write in [call] are that language's."""
        defaults = phrases_for(language or self.language)
        phrases: dict[str, Any] = {k: defaults[k] for k in PHRASE_KEYS if k not in self.owner_phrases}
        call = dataclasses.replace(self.call, **phrases)
        lang = language or self.language
        return dataclasses.replace(ConversationOptions(call, self.segmenter, self.turns, self.speech),
                                   dictation=DictationOptions(lang, self.region, plan=PhoneNumbersPlan()),
                                   screening=dataclasses.replace(self.screening, language=lang,
                                                                 settle_s=self._screen_settle_s()))

    def _screen_settle_s(self) -> float:
        """How long the silent screen waits after the caller's voice: `settle_s`, and past the turn backstop
        by SCREEN_AFTER_BACKSTOP_S, so that a caller whose words were not made out is asked to repeat
        before the call can be screened as silent (the ask starts the silent count again)."""
        return max(self.screening.settle_s, self.turns.backstop_ms / 1000 + SCREEN_AFTER_BACKSTOP_S)


SCREEN_AFTER_BACKSTOP_S = 0.5  # the silent screen waits this long after the turn backstop


_ENGINES = {
    "vad": ("silero",),
    "stt": ("transcript", "whisper"),
    "judge": ("rules", "llm"),
    "llm": ("script", "llama_cpp", "openai"),
    "tts": ("espeak", "piper"),
}
_LATENCY_KEYS = ("stt", "judge", "llm", "tts")


def load(path: Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Read `path` (None: defaults only) and apply `overrides` ({table: {key: value}}) on top."""
    tables: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            tables = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for table, values in (overrides or {}).items():
        tables.setdefault(table, {}).update(values)
    return _build(tables, source)


def _build(tables: dict[str, Any], source: str) -> Config:
    known = {f.name: f for f in dataclasses.fields(Config) if f.name not in ("source", "owner_phrases")}
    hints = typing.get_type_hints(Config)
    unknown = sorted(set(tables) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown table [{unknown[0]}]; known tables: {', '.join(known)}")
    parts: dict[str, Any] = {}
    for name in known:
        table = tables.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        parts[name] = dict(table) if name == "sip" else _options(hints[name], table, f"{source}: [{name}]")
    call_table = tables.get("call", {})
    owner_phrases = frozenset(k for k in PHRASE_KEYS if isinstance(call_table, dict) and k in call_table)
    config = Config(**parts, source=source, owner_phrases=owner_phrases)
    for stage, allowed in _ENGINES.items():
        engine = getattr(config, stage).engine
        if engine not in allowed:
            raise ConfigError(f"{source}: [{stage}] engine = {engine!r} is not available; "
                              f"choose one of: {', '.join(allowed)}")
    echo = config.simulate.echo
    if set(echo) - {"delay_ms", "gain_db"} or not all(isinstance(v, int | float) for v in echo.values()) \
            or echo.get("delay_ms", 0) < 0:
        raise ConfigError(f"{source}: [simulate] echo takes delay_ms (>= 0) and gain_db, as numbers; "
                          f"got {echo!r}")
    if config.models.set not in MODEL_SETS:
        raise ConfigError(f"{source}: [models] set must be one of {', '.join(MODEL_SETS)}, not "
                          f"{config.models.set!r}")
    for key, value in config.simulate.latency_ms.items():
        if key not in _LATENCY_KEYS or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{source}: [simulate] latency_ms takes non-negative numbers for "
                              f"{', '.join(_LATENCY_KEYS)}; got {key} = {value!r}")
    return config


def _options(cls: Any, table: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(fields)}")
        values[key] = _coerce(value, hints[key], f"{where} {key}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is tuple or origin is frozenset:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = (tuple if origin is tuple else frozenset)(value) if ok else value
    elif origin is dict:
        ok = isinstance(value, dict)
    elif isinstance(hint, types.UnionType):
        ok = True
    else:
        ok = isinstance(value, hint)
    if not ok:
        raise ConfigError(f"{where}: expected {_name(hint)}, got {value!r}")
    return value


def _name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple or origin is frozenset:
        return "a list of strings"
    if origin is dict:
        return "a table"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        hint, str(hint))
