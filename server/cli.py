"""The `standin` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.engines import EngineError
from server.audio import AudioFileError
from server.config import Config, ConfigError, load

log = logging.getLogger("standin")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="standin", description="An on-premises phone agent.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="run a whole call offline on a recorded caller",
                         description="Run a call on a recorded caller, faster than real time, and write "
                                     "call.wav, trace.jsonl and summary.json into --out.")
    sim.add_argument("caller", type=Path, help="the caller's recording (any rate and channel count)")
    sim.add_argument("--transcript", type=Path, help="timed transcript (TSV) for the 'transcript' STT")
    sim.add_argument("--config", type=Path, help="a standin TOML file")
    sim.add_argument("--out", type=Path, required=True, help="folder for the call's files")
    sim.set_defaults(func=_simulate)

    serve = sub.add_parser("serve", help="answer phone calls over SIP",
                           description="Register to the SIP trunk (or listen directly) and answer calls; "
                                       "each call's files go to [storage] calls_dir.")
    serve.add_argument("--config", type=Path, help="a standin TOML file")
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo", help="a demo call: an espeak-ng caller leaves a message, standin answers",
                          description="Make a caller with espeak-ng, run the call on the best models present "
                                      "(config/starter.toml's, fetched by `standin models pull --set "
                                      "starter`), write its files to --out.")
    demo.add_argument("--config", type=Path, help="a standin TOML file (default: config/starter.toml)")
    demo.add_argument("--stand-ins", action="store_true",
                      help="no models: the caller's words from the timed transcript, the rules judge, "
                           "scripted replies, espeak-ng")
    demo.add_argument("--out", type=Path, default=Path("calls/demo"), help="folder for the call's files")
    demo.set_defaults(func=_demo)

    judge = sub.add_parser("judge", help="judge caller lines (one per input line) as COMPLETE or WAIT",
                           description="Print VERDICT<TAB>p_complete for each caller line read from stdin.")
    judge.add_argument("--config", type=Path, help="a standin TOML file")
    judge.add_argument("--engine", choices=("rules", "llm"), help="override the config's [judge] engine")
    judge.add_argument("--language", help="language of the lines (default: the config's)")
    judge.set_defaults(func=_judge)

    passwd = sub.add_parser("passwd", help="set the dashboard's owner password",
                            description="Ask for the owner's password (twice) and store its argon2 hash in "
                                        "[web] password_file. The password itself is never stored.")
    passwd.add_argument("--config", type=Path, help="a standin TOML file")
    passwd.add_argument("--stdin", action="store_true", help="read the password from stdin (for scripts)")
    passwd.set_defaults(func=_passwd)

    contacts = sub.add_parser("contacts", help="import contacts from a vCard file or a CardDAV address book",
                              description="Import a .vcf file ([contacts] vcard by default), or with "
                                          "--carddav the address book at [contacts] carddav_url: numbers to "
                                          "names and profiles. Cards that left the file (or the address "
                                          "book) are removed; contacts entered by hand are kept.")
    contacts.add_argument("action", choices=("import",))
    contacts.add_argument("file", nargs="?", type=Path, help="the .vcf file (default: [contacts] vcard)")
    contacts.add_argument("--carddav", action="store_true",
                          help="fetch the address book at [contacts] carddav_url instead of a file")
    contacts.add_argument("--config", type=Path, help="a standin TOML file")
    contacts.set_defaults(func=_contacts)

    from models.manager import add_cli
    from server.doctor import add_cli as add_doctor_cli

    add_cli(sub)
    add_doctor_cli(sub)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
        return result
    except (ConfigError, AudioFileError, EngineError, OSError) as exc:
        print(f"standin: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _simulate(args: argparse.Namespace) -> int:
    from server.audio import AudioReader
    from server.engines import build_engines, warm_up
    from server.simulate import simulate

    config = load(args.config)
    with AudioReader(args.caller) as caller:  # read as the call goes: an hours-long file is never held
        engines = build_engines(config, transcript=args.transcript)
        warm_up(engines)
        result = simulate(caller.blocks(), engines, config, args.out, meta={"caller_file": args.caller.name})
    _print_summary(result.summary, args.out)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from server.notify import NotifyError
    from server.serve import serve
    from server.store.db import DatabaseError
    from sip.library import SipUnavailable
    from sip.options import SipConfigError

    config = load(args.config)
    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    try:
        asyncio.run(serve(config))
    except SipConfigError as exc:
        raise ConfigError(f"{config.source}: {exc}") from exc
    except SipUnavailable as exc:
        raise EngineError(str(exc)) from exc
    except (NotifyError, DatabaseError) as exc:
        raise ConfigError(f"{config.source}: {exc}") from exc
    return 0


def _demo(args: argparse.Namespace) -> int:
    from server.demo import demo_config, run_demo, turn_latencies

    config, choices = demo_config(args.config, stand_ins=args.stand_ins)
    print("engines:")
    for c in choices:
        note = f"  ({c.note})" if c.note else ""
        print(f"  {c.role:<6} {c.engine:<10} {c.model or '-'}{note}")
    if any(c.note for c in choices):
        print("  fetch the starter models with `standin models pull --set starter`")
    summary = run_demo(config, args.out)
    _print_summary(summary, args.out)
    rows = turn_latencies(summary)
    if rows:
        print("replies (ms): voice-to-voice = the caller's last word to the bot's first audio")

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f}"

        for i, r in enumerate(rows, 1):
            print(f"  {i}. voice-to-voice {ms(r['voice_to_voice_ms'])}  stt {ms(r['stt_ms'])}  judge "
                  f"{ms(r['judge_ms'])}  llm first token {ms(r['llm_first_token_ms'])}, first clause "
                  f"{ms(r['llm_first_clause_ms'])}  tts first audio {ms(r['tts_first_audio_ms'])}")
    print(f"the caller: {args.out / 'caller.wav'}; listen to the call: play {args.out / 'call.wav'}")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    import getpass

    from server.web.auth import set_password

    config = load(args.config)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("new dashboard password: ")
        if getpass.getpass("again: ") != password:
            print("standin: the two passwords differ; nothing changed", file=sys.stderr)
            return 1
    if len(password) < 8:
        print("standin: use at least 8 characters; nothing changed", file=sys.stderr)
        return 1
    set_password(Path(config.web.password_file), password)
    print(f"password hash written to {config.web.password_file}")
    return 0


def _contacts(args: argparse.Namespace) -> int:
    from server.contacts import VcardError, import_carddav, import_vcard
    from server.contacts.carddav import public_url
    from server.store.db import DatabaseError, open_database

    config = load(args.config)
    path: Path | None = None
    if args.carddav:
        if args.file is not None:
            raise ConfigError("name a .vcf file or --carddav, not both")
        if not config.contacts.carddav_url:
            raise ConfigError(f"{config.source}: set [contacts] carddav_url to import with --carddav")
        where = public_url(config.contacts.carddav_url)
    else:
        path = args.file or (Path(config.contacts.vcard) if config.contacts.vcard else None)
        if path is None:
            raise ConfigError(f"{config.source}: name a .vcf file, or set [contacts] vcard")
        where = str(path)
    try:
        db = open_database(config.storage.database)
        summary = import_vcard(db, path) if path is not None else import_carddav(db, config.contacts)
    except (DatabaseError, VcardError) as exc:
        print(f"standin: {exc}", file=sys.stderr)
        return 2
    print(f"{where}: {summary.added} added, {summary.updated} updated, {summary.unchanged} unchanged, "
          f"{summary.removed} removed, {summary.skipped} skipped")
    for problem in summary.problems:
        print(f"  {problem}")
    return 1 if summary.problems else 0


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    print(f"call ended: {summary['ended']} after {summary['duration_s']:.2f}s")
    for f in summary["caller_fragments"]:
        print(f"  caller {f['start_s']:6.2f}-{f['end_s']:6.2f}  {f['text']}")
    for d in summary["decisions"]:
        print(f"  turn   {d['at_s']:6.2f}         {d['verdict']} by {d['by']}")
    for b in summary["bot_turns"]:
        cut = "  [cut off]" if b["interrupted"] else ""
        print(f"  bot    {b['start_s']:6.2f}-{b['end_s']:6.2f}  {b['text_heard']}{cut}")
    print(f"files: {out / 'call.wav'}, {out / 'trace.jsonl'}, {out / 'summary.json'}")


def _judge(args: argparse.Namespace) -> int:
    from models.engines import Line
    from server.engines import build_judge

    config: Config = load(args.config, {"judge": {"engine": args.engine}} if args.engine else None)
    language = args.language or config.language
    judge = build_judge(config)
    warm_up = getattr(judge, "warm_up", None)
    if warm_up is not None:
        warm_up()
    for raw in sys.stdin:
        verdict = judge.judge((Line("caller", raw.rstrip("\n")),), language=language)
        label = "COMPLETE" if verdict.p_complete >= config.turns.threshold else "WAIT"
        print(f"{label}\t{verdict.p_complete:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
