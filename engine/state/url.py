"""`--state redis://[USER:PASSWORD@]HOST:PORT/DB[?on_error=open|closed&timeout=SECONDS]`
(rediss:// for TLS, valkey:// accepted): the settings of the shared state store, or a
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
    if u.scheme not in ("redis", "rediss", "valkey"):
        raise StateError(f"--state {shown!r}: expected redis://HOST:PORT/DB (or no --state for the embedded store)")
    try:
        port = u.port or 6379
    except ValueError:
        raise StateError(f"--state {shown!r}: bad port") from None
    db = (u.path or "/0").strip("/") or "0"
    if not db.isdigit():
        raise StateError(f"--state {shown!r}: the database is a number (redis://HOST:PORT/0)")
    q = urllib.parse.parse_qs(u.query)
    unknown = set(q) - {"on_error", "timeout"}
    if unknown:
        raise StateError(f"--state {shown!r}: unknown option {sorted(unknown)[0]!r} (on_error, timeout)")
    on_error = q.get("on_error", ["open"])[-1]
    if on_error not in ("open", "closed"):
        raise StateError(f"--state {shown!r}: on_error is open or closed, not {on_error!r}")
    try:
        timeout = float(q.get("timeout", ["0.5"])[-1])
        assert 0 < timeout <= 30
    except (ValueError, AssertionError):
        raise StateError(f"--state {shown!r}: timeout is seconds in (0, 30]") from None
    return {"host": u.hostname or "127.0.0.1", "port": port, "db": int(db), "ssl": u.scheme == "rediss",
            "password": urllib.parse.unquote(u.password) if u.password else None,
            "username": urllib.parse.unquote(u.username) if u.username else None,
            "on_error": on_error, "timeout": timeout, "url": shown}
