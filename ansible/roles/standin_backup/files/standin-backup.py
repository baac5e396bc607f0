#!/usr/bin/env python3
"""One snapshot of standin's database and recordings in DEST/YYYYmmdd-HHMMSS/, the oldest beyond --keep
removed.

The database is copied with SQLite's online backup (consistent while standin writes to it), or dumped
with pg_dump for PostgreSQL. The calls folder is copied file by file; a file whose size and modification
time match the previous snapshot's copy is hard-linked to it, so every snapshot is complete while only
new recordings take space. A snapshot is built under a hidden name and renamed when complete, so an
interrupted run leaves no half snapshot behind (the next run clears it).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

SNAPSHOT = re.compile(r"^\d{8}-\d{6}$")
PARTIAL_PREFIX = ".partial-"


def snapshots(dest: Path) -> list[Path]:
    return sorted(p for p in dest.iterdir() if p.is_dir() and SNAPSHOT.match(p.name))


def backup_database(url: str, into: Path) -> str:
    if url.startswith("sqlite:///"):
        source = Path(url[len("sqlite:///"):])
        if not source.exists():
            return f"no database at {source} yet"
        target = into / "standin.db"
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        return f"database {target.stat().st_size} bytes"
    if url.startswith(("postgresql:", "postgresql+")):
        plain = re.sub(r"^postgresql\+\w+:", "postgresql:", url)
        target = into / "standin.pgdump"
        subprocess.run(["pg_dump", "--format=custom", f"--file={target}", plain], check=True)
        return f"database dump {target.stat().st_size} bytes"
    raise SystemExit(f"standin-backup: cannot back up a database at {url.split(':', 1)[0]}: URLs")


def backup_calls(calls: Path, into: Path, previous: Path | None) -> tuple[int, int]:
    copied = linked = 0
    if not calls.is_dir():
        return copied, linked
    for folder, _dirs, files in os.walk(calls):
        rel = Path(folder).relative_to(calls)
        (into / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            src = Path(folder) / name
            dst = into / rel / name
            try:
                st = src.stat()
            except FileNotFoundError:
                continue  # removed while we walked
            old = previous / rel / name if previous is not None else None
            if old is not None:
                try:
                    ost = old.stat()
                except FileNotFoundError:
                    ost = None
                if ost is not None and ost.st_size == st.st_size and int(ost.st_mtime) == int(st.st_mtime):
                    os.link(old, dst)
                    linked += 1
                    continue
            shutil.copy2(src, dst)
            copied += 1
    return copied, linked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="standin-backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="[storage] database (a SQLAlchemy URL)")
    parser.add_argument("--calls", type=Path, required=True, help="[storage] calls_dir")
    parser.add_argument("--dest", type=Path, required=True, help="the backup folder")
    parser.add_argument("--keep", type=int, default=14, help="snapshots to keep (default: 14)")
    args = parser.parse_args(argv)
    if args.keep < 1:
        parser.error("--keep must be 1 or more")
    args.dest.mkdir(parents=True, exist_ok=True)
    for stale in args.dest.glob(PARTIAL_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    final = args.dest / stamp
    if final.exists():
        print(f"standin-backup: {final} exists already; run again in a second", file=sys.stderr)
        return 1
    previous = (snapshots(args.dest) or [None])[-1]
    work = args.dest / (PARTIAL_PREFIX + stamp)
    work.mkdir()
    db = backup_database(args.database, work)
    copied, linked = backup_calls(args.calls, work / "calls", previous / "calls" if previous else None)
    work.rename(final)
    removed = snapshots(args.dest)[:-args.keep]
    for p in removed:
        shutil.rmtree(p)
    print(f"standin-backup: {final.name}: {db}; call files: {copied} copied, {linked} unchanged (linked); "
          f"{len(removed)} old snapshot(s) removed, {len(snapshots(args.dest))} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
