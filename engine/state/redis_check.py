"""What `serve --state redis://…` checks of its server before it listens (and `config check --state` reports).

Theory of operation
-------------------
A server that answers is not yet a server the shared store can use. Found by the Redis operations probe: with a
wrong password, a user whose ACL lacks EVALSHA or XADD, or a replica given by mistake, serve logged "counters
shared" (or an outage) and then let every message through fail-open for as long as it ran, one ERROR line every
5 s: an outage that never ends, because nothing about it heals by itself. So before listening the store asks:

- PING: authentication refused (no password, a wrong one, a disabled user) is a start-up error;
- INFO (may be refused, renamed or disabled: then said once and not checked): the role (a replica is a start-up
  error: its writes are refused, READONLY, or with `replica-read-only no` kept apart from the primary's, so the
  caps would never be shared), the eviction policy (a `maxmemory` with any policy but `noeviction` evicts counter
  keys under memory pressure -- every counter key has a TTL, so `volatile-*` evicts them too -- and the caps they
  held reset silently: a warning) and persistence (none: a Redis restart resets every cap: said at start);
- one script call that runs every command the store's scripts use, with the options they use, on throwaway keys
  `tf:check:{…}`, each under pcall, plus the commands called directly (EVAL, EVALSHA, SCRIPT LOAD, SCRIPT EXISTS, XADD,
  XRANGE, XREVRANGE, XREAD, TIME): a command the ACL refuses (a user without @sortedset), or one the server does not
  know (a managed Redis's `rename-command`, to a secret name or to nothing), is a start-up error naming it; before,
  the sorted-set commands and TTL/PTTL were not tried and a renamed TIME was taken for an outage (fail-open for as
  long as serve ran). Memory full (OOM, `noeviction`) is not: writes fail until memory is freed, which is an outage
  (`on_error` decides meanwhile), said as a warning.
- a server that cannot be reached over TCP is asked once in the other protocol (`_other_protocol`): a plain port
  that answers PING without TLS (given as `rediss://`), or a port that completes a TLS handshake (given as
  `redis://`: the server's `tls-port`), is a start-up error naming the scheme to use; before, each was an outage
  ("unreachable (TimeoutError: )") and serve failed open for as long as it ran.

The key `tf:keyspace` (no TTL) marks the keyspace the counters live in, its value the keyspace's epoch: the check
sets it when gone (redis_script.MARK) and the store learns the epoch; every batch script call (redis_script.py) and a
store with no batch to send look for it, and if it is gone or another epoch the server lost its keys (restarted without
persistence, FLUSHALL, or evicted): said as an error (`keyspace_lost`), and every process puts back the counts of
enforced caps its mirror holds (redis_reseed.py).
"""
from __future__ import annotations

import asyncio
import os
import re
import ssl

from ..aiowait import wait_for
from .redis_script import MARK

KEYSPACE = "tf:keyspace"

# every command the store's scripts call (redis_script.py, pool.py, receipts.py, replication.py, mo_parts_scripts.py;
# tests/test_redis_check_commands.py reads them there), with the options they use; KEYS: a string, a hash, a list, a
# stream and a sorted set, all throwaway. Returns the commands refused, "CMD: error" each.
CHECK_LUA = r"""
local bad = {}
local function try(name, ...)
  local r = redis.pcall(name, ...)
  if type(r) == 'table' and r.err then bad[#bad + 1] = name .. ': ' .. r.err end
end
try('SET', KEYS[1], '1', 'EX', 60)
try('SET', KEYS[1], '1', 'KEEPTTL')
try('GET', KEYS[1])
try('EXISTS', KEYS[1])
try('EXPIRE', KEYS[1], 60)
try('PEXPIRE', KEYS[1], 60000)
try('TTL', KEYS[1])
try('PTTL', KEYS[1])
try('TIME')
try('HSET', KEYS[2], 'f', '1')
try('HINCRBY', KEYS[2], 'f', 1)
try('HGET', KEYS[2], 'f')
try('HGETALL', KEYS[2])
try('HLEN', KEYS[2])
try('HDEL', KEYS[2], 'f')
try('RPUSH', KEYS[3], '1')
try('LPUSH', KEYS[3], '1')
try('LLEN', KEYS[3])
try('RPOP', KEYS[3])
try('XADD', KEYS[4], '*', 'x', '1')
try('XTRIM', KEYS[4], 'MINID', '~', '0-0')
try('ZADD', KEYS[5], 1, 'm')
try('ZSCORE', KEYS[5], 'm')
try('ZRANGE', KEYS[5], 0, -1, 'WITHSCORES')
try('ZRANGEBYSCORE', KEYS[5], '-inf', 1, 'LIMIT', 0, 1)
try('ZREM', KEYS[5], 'm')
try('ZREMRANGEBYSCORE', KEYS[5], '-inf', 1)
try('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return bad
"""

# the commands called directly (redis_store.py, pool.py, events.py, stream_follower.py, receipt_handover.py: redis-py
# asks SCRIPT EXISTS before a pipeline of registered scripts)
DIRECT = ("PING, INFO (optional), EVAL, EVALSHA, SCRIPT LOAD, SCRIPT EXISTS, XADD, XRANGE, XREVRANGE, XREAD, TIME, HSET, "
          "HDEL, DEL")
IN_SCRIPTS = ("GET SET EXISTS EXPIRE PEXPIRE TTL PTTL TIME DEL HSET HGET HGETALL HDEL HLEN HINCRBY LPUSH RPUSH RPOP LLEN "
              "XADD XTRIM ZADD ZSCORE ZRANGE ZRANGEBYSCORE ZREM ZREMRANGEBYSCORE")
NEEDS = f"the shared store needs {DIRECT} and, in its scripts, {IN_SCRIPTS}, on keys tf:*"


class ServerRefused(Exception):
    """The server answers but cannot be used as the shared store: what is wrong, said as a start-up error."""


def _text(x) -> str:
    return x.decode(errors="replace") if isinstance(x, bytes) else str(x)


def _not_there(e: Exception) -> str | None:
    """Why `e` says a command is not there for us (the user's ACL refuses it, or the server does not know it: renamed
    or disabled with rename-command), else None."""
    name, msg = type(e).__name__, str(e)
    if name == "NoPermissionError" or "NOPERM" in msg or "no permissions" in msg.lower():
        return f"the Redis user is refused what the shared store needs ({msg}); {NEEDS}"
    unknown = re.search(r"unknown command [`']([^`']*)[`']", msg)       # (Redis 6 quotes it `TIME`, 7 'TIME')
    if unknown:
        return (f"the server does not know the command {unknown.group(1).upper()} (renamed or disabled by "
                f"rename-command?); {NEEDS}")
    return None


def _refused(e: Exception) -> str | None:
    """Why `e` is a refusal no retry will change (authentication, ACL, a command renamed away, a replica), else None
    (an outage)."""
    name, msg = type(e).__name__, str(e)
    if name == "AuthenticationError" or "WRONGPASS" in msg or "NOAUTH" in msg or "invalid username-password" in msg:
        return f"authentication refused ({msg}): check the user and password in the URL"
    why = _not_there(e)
    if why:
        return why
    if "CERTIFICATE_VERIFY_FAILED" in msg or "WRONG_VERSION_NUMBER" in msg:
        return (f"TLS refused ({msg}): for a server whose certificate a private CA signed, give the CA to serve as "
                "SSL_CERT_FILE=/path/ca.pem (OpenSSL's default trust store otherwise); rediss:// needs a TLS port")
    if name == "ReadOnlyError" or "READONLY" in msg or "read only replica" in msg:
        return f"the server is a read-only replica ({msg}): give the primary"
    if "DB index is out of range" in msg:      # (SELECT at each connection: every batch would be an outage)
        return (f"the server has no such database ({msg}): the URL's database must be below the server's "
                "`databases` setting (16 by default)")
    return None


def _script_refusal(bad: list) -> str:
    """The start-up error for the commands CHECK_LUA found refused ("CMD: error" each), grouped by why."""
    unknown = [b for b in bad if "unknown" in b.lower() and "command" in b.lower()]
    denied = [b for b in bad if "NOPERM" in b or "permission" in b.lower() or "can't run" in b.lower()]
    other = [b for b in bad if b not in unknown and b not in denied]

    def names(group):
        return ", ".join(dict.fromkeys(b.split(":", 1)[0] for b in group))
    why = []
    if denied:
        why.append(f"the Redis user may not run {names(denied)} inside scripts ({denied[0]})")
    if unknown:
        why.append(f"the server does not know {names(unknown)} inside scripts, renamed or disabled by "
                   f"rename-command? ({unknown[0]})")
    if other:
        why.append(f"the server refuses {names(other)} as the store's scripts call them, an older server? ({other[0]})")
    return "; ".join(why) + f"; {NEEDS}"


async def check_server(client, reader=None, timeout: float = 1.0) -> dict:
    """Ask the server what the shared store needs. Returns {"warnings": [...], "notes": [...], "run_id": …};
    raises ServerRefused (a start-up error) or the client's error when it cannot be reached (an outage: the
    store's policy covers it)."""
    out: dict = {"warnings": [], "notes": [], "run_id": None}

    async def call(coro):
        return await wait_for(coro, timeout)

    try:
        await call(client.ping())
    except Exception as e:
        why = _refused(e)
        if why:
            raise ServerRefused(why) from None
        raise
    try:
        info = await call(client.info())
    except Exception as e:
        why = _refused(e)
        if why and not _not_there(e):       # (INFO itself refused by the ACL, or renamed away: not needed)
            raise ServerRefused(why) from None
        info = None
        out["notes"].append(f"INFO refused ({type(e).__name__}: {e}): role, eviction policy and persistence "
                            "not checked")
    if info is not None:
        out["run_id"] = info.get("run_id")
        role = _text(info.get("role", "master"))
        if role not in ("master", "primary"):       # (Valkey may say primary)
            where = f" of {info.get('master_host')}:{info.get('master_port')}" if info.get("master_host") else ""
            raise ServerRefused(f"the server is a replica{where} (role {role}): its writes are refused or never "
                                "reach the primary, so no cap would be shared: give the primary (with Sentinel, "
                                "the sentinels: redis+sentinel://HOST:26379,…/SERVICE/DB)")
        policy, maxmem = _text(info.get("maxmemory_policy", "noeviction")), int(info.get("maxmemory", 0) or 0)
        if maxmem and policy != "noeviction":
            out["warnings"].append(
                f"maxmemory-policy is {policy} with maxmemory {maxmem} bytes: under memory pressure Redis evicts "
                "counter keys (each has a TTL, so volatile-* policies evict them too) and the caps they held reset "
                "silently; set maxmemory-policy noeviction (a full server then refuses writes, handled as Redis "
                "away: on_error) and size maxmemory for the keys")
        elif not maxmem and policy != "noeviction":
            out["notes"].append(f"maxmemory-policy is {policy} (no maxmemory set: nothing is evicted until one is)")
        if not int(info.get("aof_enabled", 0) or 0):
            out["notes"].append("appendonly is off: a Redis restart loses the counts since its last RDB save, if any "
                                "(appendonly yes + appendfsync everysec loses at most ~1 s)")
    token = os.urandom(6).hex()
    keys = [f"tf:check:{{{token}}}:{k}" for k in ("s", "h", "l", "x", "z")]
    try:
        sha = await call(client.script_load(CHECK_LUA))
        oom = _memory_full(await call(client.evalsha(sha, len(keys), *keys)))     # (what scripts refuse said first)
        await call(client.eval("return 1", 0))
        await call(client.time())
        await call(client.xadd(keys[3], {"x": "1"}))
        await call(client.xrange(keys[3], count=1))
        await call(client.xrevrange(keys[3], count=1))
        await call(client.script_exists(sha))
        await call((reader or client).xread({keys[3]: "0-0"}, count=1))
        await call(client.delete(keys[3]))
        # the keyspace's epoch (set, with the re-seed grace, when gone: redis_reseed.py)
        out["epoch"] = _text(await call(client.eval(MARK, 2, KEYSPACE, "tf:reseed", os.urandom(8).hex())))
    except ServerRefused:
        raise
    except Exception as e:
        why = _refused(e)
        if why:
            raise ServerRefused(why) from None
        if "OOM" in str(e) or type(e).__name__ == "OutOfMemoryError":
            out["warnings"].append(f"the server refuses writes now, memory full ({e}): handled as Redis away "
                                   "(on_error) until memory is freed")
            return out
        raise
    if oom:
        out["warnings"].append(f"the server refuses writes now, memory full ({oom[0]}): handled as Redis away "
                               "(on_error) until memory is freed")
    return out


def _memory_full(bad) -> list:
    """CHECK_LUA's answer: a command refused raises ServerRefused naming it (every one refused, grouped by why);
    returns those refused for memory full (not a refusal: an outage until memory is freed)."""
    bad = [_text(b) for b in bad or ()]
    oom = [b for b in bad if "OOM" in b or "maxmemory" in b]
    refused = [b for b in bad if b not in oom]
    if refused:
        if any("READONLY" in b or "read only" in b for b in refused):
            raise ServerRefused("the server is a read-only replica: give the primary")
        raise ServerRefused(_script_refusal(refused))
    return oom


async def _other_protocol(cfg: dict, timeout: float) -> str | None:
    """After the server could not be reached over TCP: why, if its port speaks the other protocol than the URL's
    scheme (a plain Redis given as rediss://, a TLS port given as redis://), else None (an outage)."""
    host, port = cfg.get("host"), cfg.get("port")
    if cfg.get("sentinels") or cfg.get("unix_socket_path") or not host:
        return None
    w = None
    try:
        if cfg.get("ssl"):              # a plain Redis waits for the end of a line the TLS hello never sends
            r, w = await wait_for(asyncio.open_connection(host, port), timeout)
            w.write(b"PING\r\n")
            line = await wait_for(r.readline(), timeout)
            if line[:1] in (b"+", b"-"):
                return (f"{host}:{port} is a plain (not TLS) Redis port: it answered {_text(line.strip())[:60]!r} "
                        "without TLS; use redis:// for it, or rediss:// with the server's tls-port")
            return None
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE      # (a probe: nothing is sent over it)
        _r, w = await wait_for(asyncio.open_connection(host, port, ssl=ctx), timeout)
        return f"{host}:{port} is a TLS port (it completed a TLS handshake): use rediss:// for it"
    except Exception:                   # (asyncio.TimeoutError included: a hung server is an outage)
        return None
    finally:
        if w is not None:
            w.close()


async def check_store(cfg: dict, client, reader=None, timeout: float = 1.0) -> dict:
    """check_server; through Sentinel first what the sentinels say of the service (sentinel.check_sentinels: an
    unknown service, their password refused: ServerRefused; their warnings and notes first). A replica where the
    sentinels name the primary is an outage, not a refusal: a failover under way, the sentinels not yet told."""
    if not cfg.get("sentinels"):
        try:
            return await check_server(client, reader, timeout)
        except ServerRefused:
            raise
        except Exception:
            why = await _other_protocol(cfg, timeout)
            if why:
                raise ServerRefused(why) from None
            raise
    from .sentinel import check_sentinels
    via = await check_sentinels(cfg, timeout)
    try:
        found = await check_server(client, reader, timeout)
    except ServerRefused as e:
        if "replica" in str(e):
            raise ConnectionError(f"{e} (named by the sentinels: a failover under way?)") from None
        raise
    found["warnings"][:0], found["notes"][:0] = via["warnings"], via["notes"]
    return found


def check_url(url: str) -> tuple[list, list, list]:
    """`telfilter config check --state URL`: (errors, warnings, notes) about the server as serve would find it at
    start (a URL it refuses, a server it refuses: errors; unreachable, an evicting policy, memory full: warnings)."""
    from .embedded import StateError
    from .url import parse_url
    try:
        cfg = parse_url(url)
    except StateError as e:
        return [str(e)], [], []
    try:
        import redis.asyncio  # noqa: F401  (the package is there)
    except ImportError:
        return ["--state redis://… needs the redis package (pip install redis)"], [], []
    shown = cfg["url"]

    async def run():
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from .sentinel import open_client
        c = open_client(cfg, socket_timeout=cfg["timeout"] * 2, socket_connect_timeout=cfg["timeout"] * 2,
                        retry=Retry(NoBackoff(), 0))
        try:
            return await check_store(cfg, c, None, cfg["timeout"] * 2)
        finally:
            await c.aclose()
    try:
        found = asyncio.run(run())
    except ServerRefused as e:
        return [f"--state {shown}: {e}"], [], []
    except Exception as e:
        return [], [f"--state {shown}: unreachable ({type(e).__name__}: {e}): serve would start with the counters "
                    f"failing {cfg['on_error']} until it answers"], []
    return ([], [f"--state {shown}: {w}" for w in found["warnings"]],
            [f"--state {shown}: usable as the shared state server"] + [f"--state {shown}: {n}" for n in found["notes"]])
