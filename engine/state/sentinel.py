"""Redis clients for the shared state store, for one server (`redis://…`) or through Redis Sentinel
(`redis+sentinel://H1,H2,H3/SERVICE/DB`, url.py).

Theory of operation
-------------------
Through Sentinel every client is redis-py's `Sentinel(…).master_for(SERVICE)`: each new connection first asks the
sentinels (in turn, the last one that answered first) which node is the service's primary, and connects there. A
connection is made again after any failure, so after a failover (the primary stopped, Sentinel promoted a replica)
the store's next call, at the end of its back-off, goes to the new primary; until the sentinels name one (the old
primary down but not yet replaced: redis-py's MasterNotFoundError) the call fails before anything is sent, an
outage like any other (redis_outage.py: on_error decides, counts wait for the server).

A primary demoted while still reachable (Sentinel reconfigured it as a replica of the new one, or an operator's
REPLICAOF) answers writes with READONLY. redis-py's Sentinel connection takes that as "the previous master is now a
slave", drops the connection and asks the sentinels again; `demoted(e)` recognises both forms. With `redis://` the
client cannot follow: RedisStore logs it as an error naming the Sentinel URL (every call meanwhile is an outage).

The sentinels' connections take the store's timeout and no retries (a sentinel that does not answer costs one
timeout, then the next is asked); their credentials are `sentinel_username`/`sentinel_password`, the data nodes'
the URL's USER:PASSWORD.
"""
from __future__ import annotations

import asyncio
import re

from ..aiowait import wait_for
from .url import connection


def open_client(cfg: dict, **kw):
    """A redis.asyncio client of the server `cfg` names (its primary, through Sentinel); `kw`: socket timeouts,
    retry, health checks. Its `aclose` closes the sentinels' connections too."""
    import redis.asyncio as aioredis
    if not cfg.get("sentinels"):
        return aioredis.Redis(**connection(cfg), **kw)
    from redis.asyncio.sentinel import MasterNotFoundError, Sentinel

    class Primary(aioredis.Redis):
        sentinel = None

        async def aclose(self, close_connection_pool=None) -> None:
            await super().aclose(close_connection_pool)
            if self.sentinel is not None:
                await self.sentinel.aclose()

    class Sentinels(Sentinel):
        async def discover_master(self, service_name: str):
            try:
                return await super().discover_master(service_name)
            except MasterNotFoundError as e:
                raise MasterNotFoundError(_not_found_why(service_name, cfg["sentinels"], str(e))) from None

    s = Sentinels(cfg["sentinels"], sentinel_kwargs=sentinel_kwargs(cfg))
    c = s.master_for(cfg["service"], redis_class=Primary, db=cfg["db"], username=cfg["username"],
                     password=cfg["password"], **kw)
    c.sentinel = s
    return c


def _not_found_why(service: str, sentinels, said: str) -> str:
    """redis-py's MasterNotFoundError, said in a line: its message holds the repr of every sentinel's client (~1 KB
    each, written into every outage line: the store's, the streams', the pool's) before each one's error."""
    # each error follows its client's repr, which ends ")>)>)>" (Redis(ConnectionPool(Connection))), and runs to the
    # next client's repr or the end: redis-py 8 says "network:ConnectionError", older ones the exception's repr with
    # its reason, which can run past 200 characters (an IPv6 and an IPv4 address refused: "Multiple exceptions");
    # a long one is shortened, never dropped (dropped, the sentinel read as one that answered)
    errors = [e if len(e) <= 200 else e[:199] + "…"
              for e in re.findall(r"\)>\)>\)> - (.*?)(?=, <redis\.|\Z)", said, re.S)]
    where = ", ".join(f"{h}:{p}" for h, p in sentinels)
    if errors:
        return (f"No master found for {service!r}: sentinels {where} unreachable ({'; '.join(errors)})"
                if len(errors) == len(sentinels) else
                f"No master found for {service!r}: asked {where}; {len(errors)} unreachable ({'; '.join(errors)}), "
                "the others name no primary that is up")
    return f"No master found for {service!r}: sentinels {where} name no primary that is up (a failover under way?)"


def sentinel_kwargs(cfg: dict) -> dict:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    return dict(username=cfg.get("sentinel_username"), password=cfg.get("sentinel_password"),
                socket_timeout=cfg["timeout"], socket_connect_timeout=cfg["timeout"], retry=Retry(NoBackoff(), 0))


def primary(client) -> tuple | None:
    """(host, port) of the primary the client's connections go to now (Sentinel's latest answer), None without
    Sentinel or before the first answer."""
    return getattr(getattr(client, "connection_pool", None), "master_address", None)


def demoted(e: Exception) -> bool:
    """The server answered as a replica: its writes refused (READONLY, a script's write included), or redis-py's
    Sentinel connection saying so after it dropped the connection to ask the sentinels again."""
    s = str(e)
    return (type(e).__name__ == "ReadOnlyError" or "READONLY" in s or "read only replica" in s
            or "previous master is now a slave" in s)


def not_found(e: Exception) -> bool:
    """No sentinel named a usable primary (all unreachable, or the primary down and not yet replaced): nothing was
    sent to any data node."""
    return type(e).__name__ in ("MasterNotFoundError", "SlaveNotFoundError") or "No master found" in str(e)


async def check_sentinels(cfg: dict, timeout: float) -> dict:
    """What the sentinels say of the service, before the store asks its primary (redis_check.check_server).
    Returns {"warnings", "notes", "primary"}; raises ServerRefused when no retry changes it: the sentinels refuse
    the credentials, or every sentinel that answered does not monitor the service (a misspelt name would otherwise
    be an outage without end). Sentinels that do not answer are a warning (all of them: the caller's first call
    fails as an outage)."""
    import redis.asyncio as aioredis

    from .redis_check import ServerRefused, _refused
    out: dict = {"warnings": [], "notes": [], "primary": None}
    answers, down, unknown = [], [], []

    async def ask(host, port):
        c = aioredis.Redis(host=host, port=port, **sentinel_kwargs(cfg))
        try:
            return await wait_for(c.sentinel_master(cfg["service"]), timeout)
        finally:
            await c.aclose()
    for (host, port), r in zip(cfg["sentinels"], await asyncio.gather(
            *(ask(h, p) for h, p in cfg["sentinels"]), return_exceptions=True)):
        where = f"{host}:{port}"
        if isinstance(r, BaseException):
            why = _refused(r) if isinstance(r, Exception) else None
            if why and why.startswith("authentication"):
                raise ServerRefused(f"sentinel {where}: {why} (the sentinels' own: sentinel_username, "
                                    "sentinel_password)")
            if "No such master" in str(r) or "no such master" in str(r).lower():
                unknown.append(where)
            else:
                down.append(f"{where} ({type(r).__name__}: {r})")
            continue
        answers.append((where, r))
    if unknown and not answers:
        raise ServerRefused(f"no sentinel monitors a service named {cfg['service']!r} ({', '.join(unknown)} "
                            "answered; SENTINEL MASTERS lists the names)")
    if unknown:
        out["warnings"].append(f"sentinel(s) {', '.join(unknown)} do not monitor {cfg['service']!r}: they will "
                               "take no part in its failover")
    if down:
        out["warnings"].append(f"{len(down)} of {len(cfg['sentinels'])} sentinels did not answer: "
                               + "; ".join(down))
    if answers:
        where, m = answers[0]
        out["primary"] = (m.get("ip"), m.get("port"))
        quorum, replicas = int(m.get("quorum", 0) or 0), int(m.get("num-slaves", 0) or 0)
        others = int(m.get("num-other-sentinels", 0) or 0)
        out["notes"].append(f"sentinels name {m.get('ip')}:{m.get('port')} primary of {cfg['service']!r} "
                            f"({replicas} replica(s), {others + 1} sentinel(s) seen by {where}, quorum {quorum})")
        if replicas == 0:
            out["warnings"].append(f"the sentinels know no replica of {cfg['service']!r}: a failover has nothing to "
                                   "promote")
        if others + 1 < quorum:
            out["warnings"].append(f"{where} sees {others + 1} sentinel(s), fewer than the quorum {quorum}: the "
                                   "primary's failure cannot be agreed, no failover will happen")
    return out
