"""`standin doctor`'s checks of this box's own resources: disk (a writable home with room for the calls
and the database), notify (the notification channels answer, and take a test message), and web (the
dashboard has an owner password)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import urllib.parse
from pathlib import Path
from typing import Any

from server.doctor.context import Doctor

GIB = 1 << 30


# --------------------------------------------------------------------------- disk


def check_disk(d: Doctor) -> None:
    from server.audio import CALL_RATE

    c = d.cfg
    user = service_user(d)
    calls = Path(c.storage.calls_dir).expanduser().absolute()
    _check_dir(d, "[storage] calls_dir", calls, user)
    per_hour = CALL_RATE * 2 * 2 * 3600  # call.wav: 16-bit stereo
    base = _existing(calls)
    usage = shutil.disk_usage(base)
    hours = usage.free / per_hour
    what = (f"{_gib(usage.free)} free for recordings on {base} (about {hours:,.0f} hours of calls; "
            f"a {c.call.max_duration_s / 60:.0f}-minute call takes "
            f"{per_hour * c.call.max_duration_s / 3600 / 1e6:.0f} MB)")
    fix = f"free space on {base} or move [storage] calls_dir to a larger disk"
    if usage.free < GIB:
        d.report.add("disk", "fail", what, fix)
    elif usage.free < 5 * GIB:
        d.report.add("disk", "warn", what, fix)
    else:
        d.report.add("disk", "ok", what)
    db = c.storage.database
    if db.startswith("sqlite:///"):
        path = Path(db[len("sqlite:///"):]).expanduser().absolute()
        _check_dir(d, "[storage] database", path.parent, user)
    else:
        scheme = urllib.parse.urlsplit(db).scheme
        d.report.add("disk", "info", f"[storage] database is a {scheme} server; doctor does not check "
                     "its disk")


def _check_dir(d: Doctor, key: str, path: Path, user: pwd.struct_passwd) -> None:
    if path.is_dir():
        if writable_by(path, user):
            d.report.add("disk", "ok", f"{key}: {path} is writable by {user.pw_name}")
        else:
            d.report.add("disk", "fail", f"{key}: {user.pw_name} cannot write into {path}",
                         f"chown {user.pw_name}: {path} (or chmod it so {user.pw_name} can write)")
        return
    parent = _existing(path)
    if path.exists():
        d.report.add("disk", "fail", f"{key}: {path} is not a folder", f"remove it or change {key}")
    elif writable_by(parent, user):
        d.report.add("disk", "info", f"{key}: {path} does not exist yet; standin makes it")
    else:
        d.report.add("disk", "fail", f"{key}: {path} does not exist and {user.pw_name} cannot make it",
                     f"mkdir -p {path} && chown {user.pw_name}: {path}")


def service_user(d: Doctor) -> pwd.struct_passwd:
    name = d.args.user
    if name:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            d.report.add("disk", "warn", f"there is no user {name!r}; checking as {_me().pw_name}",
                         "give the user the service runs as with --user")
    else:
        try:
            return pwd.getpwnam("standin")
        except KeyError:
            pass
    return _me()


def writable_by(path: Path, user: pwd.struct_passwd) -> bool:
    if user.pw_uid == 0:
        return True
    if user.pw_uid == os.geteuid():
        return os.access(path, os.W_OK | os.X_OK)
    try:
        st = path.stat()
    except OSError:
        return False
    import grp

    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IWUSR and st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IWOTH and st.st_mode & stat.S_IXOTH)


def _existing(path: Path) -> Path:
    p = path
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def _me() -> pwd.struct_passwd:
    return pwd.getpwuid(os.geteuid())


# --------------------------------------------------------------------------- notifications


def notify_urls(d: Doctor) -> list[str]:
    n = d.cfg.notify
    urls = list(n.urls)
    if n.urls_file:
        path = Path(n.urls_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            d.report.add("notify", "fail", f"[notify] urls_file {path} cannot be read: {exc.strerror}",
                         f"write one apprise URL a line into {path}, readable by the service user "
                         "(Ansible: standin_notify_urls); run doctor as root to read it")
        else:
            urls += [ln.strip() for ln in text.splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#")]
    urls += [u.strip() for u in d.env.get("STANDIN_NOTIFY_URLS", "").replace("\n", ",").split(",")
             if u.strip()]
    return list(dict.fromkeys(urls))


def check_notify(d: Doctor) -> None:
    urls = notify_urls(d)
    if not urls:
        d.report.add("notify", "warn", "no notification channel: messages reach the dashboard only",
                     "add apprise URLs to [notify] urls_file (Ansible: standin_notify_urls)")
        return
    try:
        import apprise
    except ImportError:
        d.report.add("notify", "fail", "apprise is not installed", "pip install apprise")
        return
    for url in urls:
        plugin: Any = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:
            scheme = url.split("://", 1)[0] if "://" in url else url[:12]
            d.report.add("notify", "fail", f"{scheme}://...: not a valid apprise URL",
                         "write it as the apprise documentation shows for that service "
                         "(https://github.com/caronc/apprise/wiki)")
            continue
        shown = _shown(plugin)
        endpoint = notify_endpoint(plugin)
        if endpoint is None:
            d.report.add("notify", "info", f"{shown}: valid; doctor cannot tell where it connects")
            continue
        host, port = endpoint
        error = tcp_reachable(host, port, d.timeout_s)
        if error:
            d.report.add("notify", "fail", f"{shown}: {host}:{port} cannot be reached ({error})",
                         "check this box's network path and DNS to that server, or use a channel on "
                         "the LAN (e.g. a self-hosted ntfy)")
        else:
            d.report.add("notify", "ok", f"{shown}: {host}:{port} answers")
    if d.args.notify_test:
        _send_test(d, urls)


def _send_test(d: Doctor, urls: list[str]) -> None:
    """A test message to every channel, through standin's own notifier (server.notify.send_test) or,
    where that is missing, apprise directly."""
    try:
        from server.notify import send_test
    except ImportError:
        results = [(_private(url), _apprise_send(url), "") for url in urls]
        note = " (sent with apprise directly: server.notify.send_test is missing)"
    else:
        try:
            checks = send_test(urls, timeout_s=max(d.timeout_s, 10.0))
        except Exception as exc:
            d.report.add("notify", "fail", f"the test message failed: {type(exc).__name__}: {exc}",
                         "check the URLs in [notify] urls_file")
            return
        results = [(str(c.label), bool(c.ok), str(c.error)) for c in checks]
        note = ""
    for label, sent, error in results:
        if sent:
            d.report.add("notify", "ok", f"{label}: test message sent{note}")
        else:
            d.report.add("notify", "fail", f"{label}: the test message was not delivered"
                         + (f" ({error})" if error else "") + note,
                         "check the URL's credentials and the service's own status")


def notify_endpoint(plugin: Any) -> tuple[str, int] | None:
    """The host and port an apprise plugin connects to, where it can be told."""
    url = None
    cloud = getattr(plugin, "cloud_notify_url", None)
    if getattr(plugin, "mode", None) == "cloud" and isinstance(cloud, str):
        url = cloud
    elif isinstance(getattr(plugin, "notify_url", None), str) and plugin.notify_url.startswith("http"):
        url = plugin.notify_url
    if url is not None:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    smtp = getattr(plugin, "smtp_host", None)
    if isinstance(smtp, str) and smtp:
        return smtp, int(getattr(plugin, "port", None) or 25)
    host = getattr(plugin, "host", None)
    if isinstance(host, str) and host:
        port = getattr(plugin, "port", None)
        return host, int(port) if port else (443 if getattr(plugin, "secure", False) else 80)
    return None


def tcp_reachable(host: str, port: int, timeout_s: float) -> str:
    """'' when a TCP connection opens, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return ""
    except socket.gaierror as exc:
        return f"{host} does not resolve: {exc.strerror}"
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return exc.strerror or str(exc)


def _apprise_send(url: str) -> bool:
    import apprise

    a = apprise.Apprise()
    a.add(url)
    return bool(a.notify(body="standin doctor: a test message. If you read it, standin's messages reach you "
                         "here.", title="standin test"))


def _private(url: str) -> str:
    try:
        import apprise

        plugin: Any = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except ImportError:
        plugin = None
    return _shown(plugin) if plugin is not None else url.split("://", 1)[0] + "://..."


def _shown(plugin: Any) -> str:
    """An apprise plugin's URL with its secrets masked and without its query."""
    return str(plugin.url(privacy=True).split("?", 1)[0])


# --------------------------------------------------------------------------- dashboard


def check_web(d: Doctor) -> None:
    w = d.cfg.web
    if not w.listen:
        d.report.add("web", "info", "[web] listen is empty: no dashboard")
        return
    path = Path(w.password_file).expanduser()
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        d.report.add("web", "fail", f"the dashboard has no owner password ({path} does not exist)",
                     f"standin passwd --config {d.cfg.source}")
        return
    except OSError as exc:
        d.report.add("web", "warn", f"{path} cannot be read here: {exc.strerror}",
                     "run doctor as root or as the service user")
        return
    if not text.startswith("$argon2"):
        d.report.add("web", "fail", f"{path} does not hold an argon2 hash",
                     f"standin passwd --config {d.cfg.source}")
    else:
        d.report.add("web", "ok", f"the dashboard on {w.listen} has an owner password")
    host = _listen_host(w.listen)
    if host not in _LOOPBACK and not w.secure_cookies:
        d.report.add("web", "info", f"the dashboard listens on {host} over plain HTTP; set "
                     "[web] secure_cookies = true once a TLS proxy is in front of it")


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _listen_host(listen: str) -> str:
    return listen.rsplit(":", 1)[0].strip("[]")
