"""`--state redis://[USER:PASSWORD@]HOST:PORT/DB[?on_error=open|closed&timeout=SECONDS]`
(rediss:// for TLS, valkey:// accepted; a Unix socket: unix://[USER:PASSWORD@]/PATH?db=DB[&…], redis-py's form): the settings of the shared state store, or a
StateError that says what is wrong (serve prints it and exits 2 before anything listens)."""
from __future__ import annotations

import urllib.parse

from .embedded import StateError


def redacted(url: str) -> str:
    """The URL as logs, errors and verdict hits show it: a password replaced by `***` (it was written to the service
    log at every start and outage line, and into each STATE_UNAVAILABLE hit's source in the verdict log: found by the
    Redis operations probe, `requirepass`)."""
    try:
        u = urllib.parse.urlsplit(url)
        if u.password is None:
            return url
        host = u.netloc.rsplit("@", 1)[1]
        return urllib.parse.urlunsplit(u._replace(netloc=f"{u.username or ''}:***@{host}"))
    except ValueError:
        return url.split("@", 1)[1] if "@" in url else url


def parse_url(url: str) -> dict:
    """redis://HOST:PORT/DB[?on_error=open|closed&timeout=SECONDS] -> settings (StateError if bad). The
    settings' `url` is redacted (no password): it is what logs and hits show."""
    u = urllib.parse.urlsplit(url)
    shown = redacted(url)
    if u.scheme not in ("redis", "rediss", "valkey", "unix"):
        raise StateError(f"--state {shown!r}: expected redis://HOST:PORT/DB or unix:///PATH?db=DB (or no --state for "
                         "the embedded store)")
    q = urllib.parse.parse_qs(u.query)
    socket_path = None
    if u.scheme == "unix":      # redis-py's form: unix://[USER:PASSWORD@]/path/redis.sock?db=N
        socket_path, port, db = u.path, 0, q.pop("db", ["0"])[-1]
        if not socket_path.startswith("/"):
            raise StateError(f"--state {shown!r}: a Unix socket is unix:///absolute/path?db=N")
    else:
        try:
            port = u.port or 6379
        except ValueError:
            raise StateError(f"--state {shown!r}: bad port") from None
        db = (u.path or "/0").strip("/") or "0"
    if not db.isdigit():
        raise StateError(f"--state {shown!r}: the database is a number (redis://HOST:PORT/0, unix:///PATH?db=0)")
    unknown = set(q) - {"on_error", "timeout"}
    if unknown:
        raise StateError(f"--state {shown!r}: unknown option {sorted(unknown)[0]!r} (on_error, timeout"
                         + (", db" if socket_path else "") + ")")
    on_error = q.get("on_error", ["open"])[-1]
    if on_error not in ("open", "closed"):
        raise StateError(f"--state {shown!r}: on_error is open or closed, not {on_error!r}")
    try:
        timeout = float(q.get("timeout", ["0.5"])[-1])
        assert 0 < timeout <= 30
    except (ValueError, AssertionError):
        raise StateError(f"--state {shown!r}: timeout is seconds in (0, 30]") from None
    return {"host": u.hostname or "127.0.0.1", "port": port, "db": int(db), "ssl": u.scheme == "rediss",
            "unix_socket_path": socket_path,
            "password": urllib.parse.unquote(u.password) if u.password else None,
            "username": urllib.parse.unquote(u.username) if u.username else None,
            "on_error": on_error, "timeout": timeout, "url": shown}


def connection(cfg: dict) -> dict:
    """The redis-py client arguments that say where the server is and who we are (TCP or a Unix socket)."""
    kw = dict(db=cfg["db"], username=cfg["username"], password=cfg["password"])
    if cfg.get("unix_socket_path"):
        return {**kw, "unix_socket_path": cfg["unix_socket_path"]}
    return {**kw, "host": cfg["host"], "port": cfg["port"], "ssl": cfg["ssl"]}
