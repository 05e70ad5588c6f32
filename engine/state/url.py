"""`--state redis://[USER:PASSWORD@]HOST:PORT/DB[?on_error=open|closed&timeout=SECONDS]`
(rediss:// for TLS, valkey:// accepted): the settings of the shared state store, or a
StateError that says what is wrong (serve prints it and exits 2 before anything listens)."""
from __future__ import annotations

import urllib.parse

from .embedded import StateError


def parse_url(url: str) -> dict:
    """redis://HOST:PORT/DB[?on_error=open|closed&timeout=SECONDS] -> settings (StateError if bad)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("redis", "rediss", "valkey"):
        raise StateError(f"--state {url!r}: expected redis://HOST:PORT/DB (or no --state for the embedded store)")
    try:
        port = u.port or 6379
    except ValueError:
        raise StateError(f"--state {url!r}: bad port") from None
    db = (u.path or "/0").strip("/") or "0"
    if not db.isdigit():
        raise StateError(f"--state {url!r}: the database is a number (redis://HOST:PORT/0)")
    q = urllib.parse.parse_qs(u.query)
    unknown = set(q) - {"on_error", "timeout"}
    if unknown:
        raise StateError(f"--state {url!r}: unknown option {sorted(unknown)[0]!r} (on_error, timeout)")
    on_error = q.get("on_error", ["open"])[-1]
    if on_error not in ("open", "closed"):
        raise StateError(f"--state {url!r}: on_error is open or closed, not {on_error!r}")
    try:
        timeout = float(q.get("timeout", ["0.5"])[-1])
        assert 0 < timeout <= 30
    except (ValueError, AssertionError):
        raise StateError(f"--state {url!r}: timeout is seconds in (0, 30]") from None
    return {"host": u.hostname or "127.0.0.1", "port": port, "db": int(db), "ssl": u.scheme == "rediss",
            "password": urllib.parse.unquote(u.password) if u.password else None,
            "username": urllib.parse.unquote(u.username) if u.username else None,
            "on_error": on_error, "timeout": timeout, "url": url}
