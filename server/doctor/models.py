"""`standin doctor`'s models check: every file of the configured model set is there with the manifest's
digest, and every model the engines are configured with exists."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from server.doctor.context import Doctor


def check_models(d: Doctor) -> None:
    from models.manager import ModelsError, human_size, load_manifest, status
    from server.engines import models_dir as configured_models_dir

    c = d.cfg
    models_dir = d.args.models_dir or configured_models_dir(c)
    pull = f"standin models pull --set {c.models.set} --models-dir {models_dir}"
    if d.args.manifest is not None:
        pull += f" --manifest {d.args.manifest}"
    covered: set[str] = set()
    try:
        manifest = load_manifest(d.args.manifest)
        mset = manifest.set(c.models.set)
    except ModelsError as exc:
        d.report.add("models", "fail", str(exc), "reinstall standin, or give --manifest FILE")
    else:
        tty = sys.stderr.isatty()

        def hashing(f: Any) -> None:
            if tty:
                print(f"doctor: checking the sha256 of {f.path}...", file=sys.stderr)

        rows = status(models_dir, mset, on_hash=hashing)
        covered = {r.file.path for r in rows}
        bad = [r for r in rows if r.state in ("missing", "corrupt")]
        for model in mset.models:
            mine = [r for r in bad if r.file.model == model.name]
            if not mine:
                continue
            if len(mine) == len(model.files) and all(r.state == "missing" for r in mine):
                size = human_size(sum(f.size for f in model.files))
                what = f"model {model.name} is missing ({len(mine)} file(s), {size})"
            else:
                what = f"model {model.name}: " + "; ".join(
                    f"{r.file.path} is {r.state}" + (f" ({r.detail})" if r.detail else "") for r in mine)
            d.report.add("models", "fail", what, pull)
        unverified = [r for r in rows if r.state == "unverified"]
        if unverified:
            d.report.add("models", "warn", f"{len(unverified)} file(s) of set {mset.name} have no "
                         "digest in the manifest and cannot be checked",
                         "add their sha256 to the manifest")
        if not bad:
            d.report.add("models", "ok", f"set {mset.name}: all {len(rows)} files present with the "
                         f"manifest's checksums, in {models_dir}")
    seen: set[Path] = set()
    for what, path, kind in _configured_models(d, models_dir):
        if path in seen:
            continue
        seen.add(path)
        _check_model_path(d, what, path, kind, models_dir=models_dir, covered=covered, pull=pull)


def _configured_models(d: Doctor, models_dir: Path) -> list[tuple[str, Path, str]]:
    c = d.cfg

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else models_dir / p

    found: list[tuple[str, Path, str]] = []
    if c.stt.engine == "whisper" and c.stt.model:
        found.append(("[stt] model", resolve(c.stt.model), "whisper"))
    if c.judge.engine == "llm" and (c.judge.model or c.llm.model):
        found.append(("[judge] model", resolve(c.judge.model or c.llm.model), "file"))
    if c.llm.engine == "llama_cpp" and c.llm.model:
        found.append(("[llm] model", resolve(c.llm.model), "file"))
    if c.tts.engine == "piper" and c.tts.voice:
        found.append(("[tts] voice", resolve(c.tts.voice), "piper"))
    if c.vad.model:
        found.append(("[vad] model", Path(c.vad.model).expanduser(), "file"))
    return found


def _check_model_path(d: Doctor, what: str, path: Path, kind: str, *, models_dir: Path, covered: set[str],
                      pull: str) -> None:
    try:
        rel = path.relative_to(models_dir).as_posix()
    except ValueError:
        rel = ""
    if rel and any(p == rel or p.startswith(rel + "/") for p in covered):
        return  # one of the set's files: checked with its digest above
    needed = [path / "model.bin"] if kind == "whisper" else [path]
    if kind == "piper":
        needed.append(path.with_name(path.name + ".json"))
    missing = [p for p in needed if not p.is_file()]
    if missing:
        d.report.add("models", "fail", f"{what}: {missing[0]} does not exist (nor is it part of "
                     "the model set)", f"copy it there, or point {what} at a model of the set "
                     f"(standin models list --set {d.cfg.models.set})")
        return
    d.report.add("models", "info", f"{what}: {path} is there but is not part of the model set, "
                 "so its checksum cannot be checked")
