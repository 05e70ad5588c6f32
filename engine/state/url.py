"""`--state redis://[USER:PASSWORD@]HOST:PORT/DB[?on_error=open|closed&timeout=SECONDS]`
(rediss:// for TLS, valkey:// accepted; a Unix socket: unix://[USER:PASSWORD@]/PATH?db=DB[&…], redis-py's form), or
through Redis Sentinel `redis+sentinel://[USER:PASSWORD@]H1[:26379],H2[:26379],…/SERVICE[/DB][?…]` (valkey+sentinel://
accepted; USER:PASSWORD are the data nodes', `sentinel_username`/`sentinel_password` the sentinels' own, when they
require one): the settings of the shared state store, or a StateError that says what is wrong (serve prints it and
exits 2 before anything listens).

The Sentinel form is the one of the Python package Redis-Sentinel-Url and of Prefect/docket (redis-py has none of
its own; Lettuce's `redis-sentinel://…#master` differs only in where the service goes): sentinels comma-separated,
26379 by default, the service (Sentinel's master name) then the database in the path, and `sentinel_*` query options
for the sentinels' connections. Redis ACLs and `requirepass` of the sentinels are separate from the data nodes'."""
from __future__ import annotations

import re
import urllib.parse

from .embedded import StateError


SENTINEL_SCHEMES = ("redis+sentinel", "valkey+sentinel")
SENTINEL_PORT = 26379
# any query option whose name says pas(s)word, pwd or secret, whatever its case or spelling (`SENTINEL_PASSWORD=`,
# a mistyped `sentinel_pasword=`): parse_url refuses those as unknown options, and its error shows the URL
_QUERY_PW = re.compile(r"([?&][^=&#]*(?:pas|pwd|secret)[^=&#]*=)[^&#]*", re.I)
# USER:PASSWORD@ whose password holds an unencoded `/`, `?` or `#` (`openssl rand -base64` gives `/`): urlsplit ends
# the host part there and sees no password; what follows the colon up to that delimiter is then no port (digits),
# nor is a run of digits before a '/' with an '@' after it in the path (`:12/Qz=@host`: no path of ours holds one)
_RAW_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^@/?#:\[\]]*):"
                           r"(?![0-9]*(?:[?#,]|$)|[0-9]*/(?![^?#]*@))(.*)@")


def redacted(url: str) -> str:
    """The URL as logs, errors and verdict hits show it: a password replaced by `***` (it was written to the service
    log at every start and outage line, and into each STATE_UNAVAILABLE hit's source in the verdict log: found by the
    Redis operations probe, `requirepass`); the sentinels' (`sentinel_password=`) too."""
    url = _QUERY_PW.sub(r"\1***", url)
    try:
        u = urllib.parse.urlsplit(url)
        if u.password is None:
            raw = _RAW_USERINFO.match(url) if "@" not in u.netloc else None
            return url if raw is None else f"{raw.group(1)}{raw.group(2)}:***@{url[raw.end():]}"
        host = u.netloc.rsplit("@", 1)[1]
        return urllib.parse.urlunsplit(u._replace(netloc=f"{u.username or ''}:***@{host}"))
    except ValueError:
        return url.split("@", 1)[1] if "@" in url else url


def parse_url(url: str) -> dict:
    """redis://HOST:PORT/DB[?on_error=open|closed&timeout=SECONDS] -> settings (StateError if bad). The
    settings' `url` is redacted (no password): it is what logs and hits show."""
    shown = redacted(url)
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError as e:     # a bracketed host that is no IPv6 address, or no closing bracket
        raise StateError(f"--state {shown!r}: {e} (IPv6: [ADDR]:PORT)") from None
    if "@" not in u.netloc and _RAW_USERINFO.match(url):     # (it was "bad port", the URL printed password and all)
        raise StateError(f"--state {shown!r}: the password holds '/', '?' or '#': percent-encode them in the URL "
                         "(%2F, %3F, %23)")
    if u.scheme not in ("redis", "rediss", "valkey", "unix", *SENTINEL_SCHEMES):
        raise StateError(f"--state {shown!r}: expected redis://HOST:PORT/DB, unix:///PATH?db=DB or "
                         "redis+sentinel://HOST:26379,HOST:26379,…/SERVICE/DB (or no --state for the embedded store)")
    q = urllib.parse.parse_qs(u.query)
    twice = sorted(k for k, v in q.items() if len(v) > 1)
    if twice:       # (the last was taken without a word: `on_error=closed&on_error=open` ran fail-open)
        raise StateError(f"--state {shown!r}: option {twice[0]!r} is given twice")
    socket_path = sentinels = service = None
    if u.scheme in SENTINEL_SCHEMES:
        sentinels, service, db = _sentinel_parts(u, shown)
        port = 0
    elif u.scheme == "unix":      # redis-py's form: unix://[USER:PASSWORD@]/path/redis.sock?db=N
        socket_path, port, db = u.path, 0, q.pop("db", ["0"])[-1]
        if not socket_path.startswith("/"):
            raise StateError(f"--state {shown!r}: a Unix socket is unix:///absolute/path?db=N")
    else:
        try:
            port = 6379 if u.port is None else u.port
        except ValueError:
            raise StateError(f"--state {shown!r}: bad port") from None
        if port == 0:           # (taken for no port, it connected to 6379)
            raise StateError(f"--state {shown!r}: bad port")
        db = (u.path or "/0").strip("/") or "0"
    if not (db.isascii() and db.isdigit()):     # (str.isdigit takes '²', which int() refuses, and '٣', a 3)
        raise StateError(f"--state {shown!r}: the database is a number (redis://HOST:PORT/0, unix:///PATH?db=0)")
    if int(db) > 2 ** 31 - 1:       # (Redis's `databases` is an int: SELECT refuses more, at every connection)
        raise StateError(f"--state {shown!r}: the database is a number below 2147483648 (the server's `databases` "
                         "setting, 16 by default, bounds it)")
    known = {"on_error", "timeout"} | ({"sentinel_username", "sentinel_password"} if sentinels else set())
    unknown = set(q) - known
    if unknown:
        raise StateError(f"--state {shown!r}: unknown option {sorted(unknown)[0]!r} (on_error, timeout"
                         + (", db" if socket_path else "")
                         + (", sentinel_username, sentinel_password" if sentinels else "") + ")")
    on_error = q.get("on_error", ["open"])[-1]
    if on_error not in ("open", "closed"):
        raise StateError(f"--state {shown!r}: on_error is open or closed, not {on_error!r}")
    try:
        timeout = float(q.get("timeout", ["0.5"])[-1])
        assert 0 < timeout <= 30
    except (ValueError, AssertionError):
        raise StateError(f"--state {shown!r}: timeout is seconds in (0, 30]") from None
    return {"host": None if sentinels else u.hostname or "127.0.0.1", "port": port, "db": int(db),
            "ssl": u.scheme == "rediss", "unix_socket_path": socket_path,
            "sentinels": sentinels, "service": service,
            "sentinel_username": q.get("sentinel_username", [None])[-1],
            "sentinel_password": q.get("sentinel_password", [None])[-1],
            "password": urllib.parse.unquote(u.password) if u.password else None,
            "username": urllib.parse.unquote(u.username) if u.username else None,
            "on_error": on_error, "timeout": timeout, "url": shown}


def _sentinel_parts(u, shown: str) -> tuple[list, str, str]:
    """The sentinels [(host, port)], the service and the database of a redis+sentinel:// URL (urlsplit cannot read
    the port of a comma-separated host list: the netloc is split here, `[v6]:port` included)."""
    hosts = u.netloc.rsplit("@", 1)[-1]
    sentinels = []
    for h in hosts.split(","):
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", h.strip())
        if not m:
            raise StateError(f"--state {shown!r}: a sentinel is HOST[:PORT] (IPv6: [ADDR]:PORT), not {h!r}")
        port = int(m.group(2) or m.group(4) or SENTINEL_PORT)
        if not 0 < port < 65536:
            raise StateError(f"--state {shown!r}: bad port in {h!r}")
        s = (m.group(1) or m.group(3), port)
        if s in sentinels:      # (counted twice, a sentinel down would look like two: the check's "N of M")
            raise StateError(f"--state {shown!r}: sentinel {s[0]}:{s[1]} is named twice")
        sentinels.append(s)
    parts = [p for p in u.path.split("/") if p]
    if not parts or len(parts) > 2:
        raise StateError(f"--state {shown!r}: the path is /SERVICE[/DB] (the master name the sentinels monitor, "
                         "then the database number)")
    return sentinels, urllib.parse.unquote(parts[0]), parts[1] if len(parts) == 2 else "0"


def connection(cfg: dict) -> dict:
    """The redis-py client arguments that say where the server is and who we are (TCP or a Unix socket)."""
    kw = dict(db=cfg["db"], username=cfg["username"], password=cfg["password"])
    if cfg.get("unix_socket_path"):
        return {**kw, "unix_socket_path": cfg["unix_socket_path"]}
    return {**kw, "host": cfg["host"], "port": cfg["port"], "ssl": cfg["ssl"]}
