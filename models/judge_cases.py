"""Labelled turn-taking cases: what the bot has heard so far, and whether the caller had finished.

A case file is a TSV with a header naming its columns: `label` (COMPLETE or WAIT), `language`, `text`
(the caller's last fragment, the line to judge) and optionally `kind` (what the case exercises) and
`context` (the story before it: lines joined by " | ", each "B: ..." for the bot or "C: ..." for an
earlier caller fragment). Lines starting with "#" are comments. `tests/data/turns/*.tsv` are the
calibration set; `../shared/turns/dev.tsv` (label, language, text) reads the same way.

Whisper may hear a fragment without punctuation, so every case can be judged as written or
`unpunctuated`: the caller's words lower-cased and stripped of punctuation (the bot's own lines keep
theirs: they are its text, not a transcript).
"""

from __future__ import annotations

import csv
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.engines import Line

__all__ = ["Case", "load_cases", "unpunctuated"]

LABELS = ("WAIT", "COMPLETE")
_ROLES: dict[str, Literal["bot", "caller"]] = {"B": "bot", "C": "caller"}
_PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")  # all but apostrophes inside a word ("I'm")


def unpunctuated(text: str) -> str:
    """`text` as a transcript without punctuation: lower case, words and digits only."""
    return " ".join(_PUNCTUATION.sub(" ", text.replace("’", "'")).lower().split())


@dataclass(frozen=True, slots=True)
class Case:
    label: str  # COMPLETE or WAIT
    language: str
    text: str  # the caller's last fragment
    context: tuple[Line, ...] = ()  # the story before it
    kind: str = ""
    source: str = ""  # file stem and line number, for reports

    @property
    def complete(self) -> bool:
        return self.label == "COMPLETE"

    @property
    def group(self) -> str:
        """Cases that share a conversation share a group (their first line), so that a fold of a
        cross-validation never sees one half of a list and tests on the other."""
        return (self.context[0].text if self.context else self.text).strip().lower()

    def fold(self, folds: int) -> int:
        return zlib.crc32(f"{self.language}:{self.group}".encode()) % folds

    def story(self, *, punctuated: bool = True) -> list[Line]:
        lines = [*self.context, Line("caller", self.text)]
        if punctuated:
            return lines
        return [Line(line.role, unpunctuated(line.text)) if line.role == "caller" else line
                for line in lines]


def _context(text: str, where: str) -> tuple[Line, ...]:
    lines = []
    for part in (p.strip() for p in text.split(" | ")):
        if not part:
            continue
        role, sep, said = part.partition(": ")
        if not sep or role not in _ROLES:
            raise ValueError(f"{where}: a context line must start with 'B: ' or 'C: ', not {part[:20]!r}")
        lines.append(Line(_ROLES[role], said.strip()))
    return tuple(lines)


def load_cases(*paths: str | Path) -> list[Case]:
    """The cases of every TSV file in `paths` (a folder stands for the *.tsv files in it)."""
    files: list[Path] = []
    for path in map(Path, paths):
        files += sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    cases: list[Case] = []
    for file in files:
        cases += _read(file)
    return cases


def _read(file: Path) -> Iterable[Case]:
    with file.open(encoding="utf-8", newline="") as f:
        rows = [(n, row) for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1)
                if row and not row[0].startswith("#")]
    if not rows:
        return []
    header = rows[0][1]
    missing = {"label", "language", "text"} - set(header)
    if missing:
        raise ValueError(f"{file}: the header lacks {', '.join(sorted(missing))}")
    cases = []
    for n, row in rows[1:]:
        where = f"{file.name}:{n}"
        if len(row) != len(header):
            raise ValueError(f"{where}: {len(row)} columns, the header has {len(header)}")
        cell = dict(zip(header, row, strict=True))
        if cell["label"] not in LABELS:
            raise ValueError(f"{where}: label {cell['label']!r} is not COMPLETE or WAIT")
        cases.append(Case(cell["label"], cell["language"], cell["text"].strip(),
                          _context(cell.get("context", ""), where), cell.get("kind", ""), where))
    return cases
