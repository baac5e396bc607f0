"""What `standin doctor` found: each finding with its check, its level and its fix, and the report that
collects them, as the terminal shows it."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Literal

Level = Literal["ok", "info", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    level: Level
    what: str
    fix: str = ""


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    source: str = "defaults"  # the config file checked

    def add(self, check: str, level: Level, what: str, fix: str = "") -> None:
        self.findings.append(Finding(check, level, what, fix))

    @property
    def failed(self) -> bool:
        return any(f.level == "fail" for f in self.findings)

    def count(self, level: Level) -> int:
        return sum(f.level == level for f in self.findings)


_LABELS = {"ok": "ok", "info": "info", "warn": "WARN", "fail": "FAIL"}


def render(report: Report, width: int = 110) -> str:
    lines = [f"standin doctor: {report.source}"]
    indent = " " * 16
    for f in report.findings:
        lines += textwrap.wrap(f"{f.check:<9} {_LABELS[f.level]:<4}  {f.what}", width,
                               subsequent_indent=indent, break_on_hyphens=False, break_long_words=False)
        if f.fix and f.level in ("warn", "fail"):
            lines += textwrap.wrap(f"fix: {f.fix}", width, initial_indent=indent,
                                   subsequent_indent=indent + "     ", break_on_hyphens=False,
                                   break_long_words=False)
    fails, warns = report.count("fail"), report.count("warn")
    if fails:
        lines.append(f"{fails} problem(s), {warns} warning(s): fix the problems before a caller finds them")
    else:
        lines.append("no problems" + (f", {warns} warning(s)" if warns else "") + ": standin is ready")
    return "\n".join(lines)
