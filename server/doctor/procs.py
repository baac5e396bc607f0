"""Who holds a port, and which processes are `standin serve`, for `standin doctor`.

Port owners come from /proc: the socket tables (`/proc/net/{tcp,udp}{,6}`) give a port's socket inodes,
the processes' fd links give the process. Another user's processes show only to root.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


def probe_bind(proto: str, host: str, port: int) -> str:
    """'free', 'taken', 'noaddr' (no such address here), 'denied' (a privileged port) or 'error: ...'."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    try:
        with socket.socket(family, kind) as s:
            if proto == "tcp":  # a socket left in TIME_WAIT is no owner; a listening one still is
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "taken"
        if exc.errno == errno.EADDRNOTAVAIL:
            return "noaddr"
        if exc.errno == errno.EACCES:
            return "denied"
        return f"error: {exc.strerror or exc}"
    return "free"


def socket_inodes(proto: str, proc: Path = Path("/proc")) -> dict[int, set[str]]:
    """Local port -> inodes of this network namespace's `proto` sockets (TCP: listening ones only)."""
    ports: dict[int, set[str]] = {}
    for name in (proto, proto + "6"):
        try:
            lines = (proc / "net" / name).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or (proto == "tcp" and parts[3] != "0A"):
                continue
            port = int(parts[1].rsplit(":", 1)[1], 16)
            ports.setdefault(port, set()).add(parts[9])
    return ports


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        text = " ".join(self.argv) or "?"
        return text if len(text) <= 80 else text[:77] + "..."

    @property
    def is_standin(self) -> bool:
        return is_standin_serve(self.argv)

    def serves(self, config: Path | None, proc: Path = Path("/proc")) -> bool:
        """Whether this `standin serve` runs with `config` (None: with no --config)."""
        given = None
        for i, arg in enumerate(self.argv):
            if arg == "--config" and i + 1 < len(self.argv):
                given = self.argv[i + 1]
            elif arg.startswith("--config="):
                given = arg.split("=", 1)[1]
        if given is None or config is None:
            return given is None and config is None
        try:
            cwd = Path(os.readlink(proc / str(self.pid) / "cwd"))
        except OSError:
            cwd = Path.cwd()
        return os.path.realpath(cwd / given) == os.path.realpath(config)


def process_age_s(pid: int, proc: Path = Path("/proc")) -> float | None:
    """Seconds since the process started, None when that cannot be read."""
    try:
        fields = (proc / str(pid) / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        uptime = float((proc / "uptime").read_text(encoding="ascii").split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def is_standin_serve(argv: Iterable[str]) -> bool:
    """Whether a command line is `standin serve` (the console script or `python -m server.cli`)."""
    args = list(argv)
    for i, arg in enumerate(args):
        if os.path.basename(arg) == "standin" or (arg == "server.cli" and i > 0 and args[i - 1] == "-m"):
            return "serve" in args[i + 1:]
    return False


def read_argv(pid: int, proc: Path = Path("/proc")) -> tuple[str, ...]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)


def inode_owners(inodes: set[str], proc: Path = Path("/proc")) -> dict[str, Process]:
    """The process holding each socket inode, where this user may look (root sees all)."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    found: dict[str, Process] = {}
    if not wanted:
        return found
    for pid in _pids(proc):
        try:
            fds = list((proc / str(pid) / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link in wanted:
                found[wanted[link]] = Process(pid, read_argv(pid, proc))
        if len(found) == len(wanted):
            break
    return found


def port_owners(proto: str, port: int) -> list[Process]:
    inodes = socket_inodes(proto).get(port, set())
    return list({p.pid: p for p in inode_owners(inodes).values()}.values())


def standin_processes(proc: Path = Path("/proc")) -> list[Process]:
    found = []
    for pid in _pids(proc):
        if pid != os.getpid():
            argv = read_argv(pid, proc)
            if is_standin_serve(argv):
                found.append(Process(pid, argv))
    return found


def pid_list(processes: Iterable[Process]) -> str:
    return ", ".join(str(p.pid) for p in processes)


def _pids(proc: Path) -> Iterator[int]:
    """The processes /proc lists."""
    for entry in proc.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)
