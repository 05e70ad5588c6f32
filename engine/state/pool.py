"""Per-account SMPP limits that hold across processes sharing one Redis (`serve --workers N`,
or several nodes with `--state redis://…`): max binds and submit throughput.

Theory of operation
-------------------
Every process has an id (`<host>:<pid>:<random>`) and, per account, two hashes in one hash slot
(`tf:{a:<account>}:n` / `:t`): its field in `n` is what it holds or asks, its field in `t` the
time (server clock) until which that field counts. A process refreshes its fields every
`BEAT` s; a process that died stops refreshing and its fields stop counting `TTL` s later
(and are removed by the next script that sees them), so a `kill -9` never leaks binds.

- **Max binds.** A bind that passed the local checks asks the server (`reserve`, a Lua script):
  the sum of the live fields of `n` is the account's binds everywhere; below `max_binds` the
  script adds one to this process's field and says yes, otherwise no (ESME_RBINDFAIL). A
  bind that ends writes this process's exact count back at once (the binds held and the
  reservations still in flight; before, only the refresh did, so an ESME binding and unbinding
  again and again was refused once it had made max_binds binds within BEAT). Two processes
  racing for the last bind are ordered by the server.
- **Throughput.** Each process's token bucket for an account gets a share of the account's
  rate: every `BEAT` s it publishes its demand (submits asked for in the last period) in
  `:d` hashes and sets its rate to `rate * own / total` (an equal share while nobody asks).
  The sum of the rates is the account's rate, so the limit holds however the kernel spread
  the binds; a process whose demand rises gets its share within one period.

Redis unreachable: binds fall back to the local `max_binds` and buckets keep their last rate
(said at once, then every 30 s while it lasts, and when it answers again); nothing waits longer than the store's timeout.
After a bind's question failed (or while the store itself backs off), the next binds do not ask: they take the local
limit at once until a back-off has passed (0.1 s doubling to 5 s; a refresh that works ends it), so a hung server
costs one bind the wait, not each (before, every bind of an outage waited 2 x timeout, 1 s by default).
"""
from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time

from ..aiowait import wait_for
from ..servicelog import Trouble
from ..smpp_proxy.accounts import TokenBucket

BEAT = 1.0          # seconds between refreshes
TTL = 5             # seconds a field counts without a refresh
ASK_BACKOFF_MIN, ASK_BACKOFF_MAX = 0.1, 5.0     # seconds binds take the local limit unasked after a failure

RESERVE = r"""
local now = redis.call('TIME')
now = tonumber(now[1])
local n, t = KEYS[1], KEYS[2]
local me, max = ARGV[1], tonumber(ARGV[2])
local total = 0
local exp = redis.call('HGETALL', t)
local alive = {}
for i = 1, #exp, 2 do
  if tonumber(exp[i + 1]) >= now then alive[exp[i]] = true
  else redis.call('HDEL', t, exp[i]); redis.call('HDEL', n, exp[i]) end
end
local cur = redis.call('HGETALL', n)
for i = 1, #cur, 2 do
  if alive[cur[i]] then total = total + tonumber(cur[i + 1]) else redis.call('HDEL', n, cur[i]) end
end
if total >= max then return 0 end
redis.call('HINCRBY', n, me, 1)
redis.call('HSET', t, me, now + tonumber(ARGV[3]))
return 1
"""

SHARE = r"""
local now = redis.call('TIME')
now = tonumber(now[1])
local d, t = KEYS[1], KEYS[2]
redis.call('HSET', d, ARGV[1], ARGV[2])
redis.call('HSET', t, ARGV[1], now + tonumber(ARGV[3]))
redis.call('EXPIRE', d, 3600)
redis.call('EXPIRE', t, 3600)
local exp = redis.call('HGETALL', t)
local total, live = 0, 0
for i = 1, #exp, 2 do
  if tonumber(exp[i + 1]) >= now then
    live = live + 1
    total = total + tonumber(redis.call('HGET', d, exp[i]) or '0')
  else redis.call('HDEL', t, exp[i]); redis.call('HDEL', d, exp[i]) end
end
return {tostring(total), live}
"""


def _keys(acct: str, kind: str) -> tuple[str, str]:
    tag = "{a:" + acct.replace("}", "_") + "}"
    return f"tf:{tag}:{kind}", f"tf:{tag}:{kind}t"


class SharedBucket(TokenBucket):
    """A token bucket whose rate is this process's share of the account's rate."""

    def __init__(self, rate: float, burst: float | None = None):
        super().__init__(rate, burst)
        self.base = rate
        self.asked = 0

    def take(self, now: float | None = None) -> bool:
        self.asked += 1
        return super().take(now)

    def charge(self, n: int) -> None:
        self.asked += n
        super().charge(n)


class PoolLimits:
    def __init__(self, store, proxy):
        self.store, self.proxy = store, proxy
        self.redis = store.redis
        self.me = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.timeout = store.timeout
        self.stats = {"bind_refused_pool": 0, "errors": 0, "binds_unasked": 0}
        # said once, then every 30 s while Redis stays away (a line a second, and one per bind, before)
        self.refresh_trouble = Trouble("pool limits refresh")
        self.bind_trouble = Trouble("max_binds across the pool")
        self.reserving: dict[str, int] = {}     # account -> reservations asked and not yet bound or refused
        self._releases: set = set()              # release_bind's writes under way (ended by close)
        self._closed = False
        self._ask_after = 0.0                    # monotonic: binds before it take the local limit unasked
        self._ask_backoff = ASK_BACKOFF_MIN
        proxy.bucket_factory = SharedBucket
        proxy.bind_gate = self.reserve_bind
        proxy.bind_released = self.release_bind

    def reserve_bind(self, acct, done) -> None:
        """done(True) if the account may have one more bind across the pool."""
        if time.monotonic() < max(self._ask_after, getattr(self.store, "_down_until", 0.0)):
            self.stats["binds_unasked"] += 1    # the server failed a moment ago: the local limit (passed) at once
            return done(True)
        a = acct.system_id
        self.reserving[a] = self.reserving.get(a, 0) + 1

        async def ask():
            ok = True
            try:
                n, t = _keys(a, "n")
                ok = await wait_for(
                    self.redis.eval(RESERVE, 2, n, t, self.me, acct.max_binds, TTL), self.timeout * 2)
                if not ok:
                    self.stats["bind_refused_pool"] += 1
                self.bind_trouble.ok()
                self._asked_ok()
            except Exception as e:              # fall back to the local check (already passed)
                self.stats["errors"] += 1
                self.bind_trouble.failed(f"{type(e).__name__}: {e}", "local limit only")
                self._ask_after = time.monotonic() + self._ask_backoff
                self._ask_backoff = min(self._ask_backoff * 2, ASK_BACKOFF_MAX)
            finally:
                self.reserving[a] -= 1
            done(bool(ok))                      # (bound now: in proxy.binds)
        asyncio.ensure_future(ask())

    def _asked_ok(self) -> None:
        """The server answered: binds ask it again from now on."""
        self._ask_after, self._ask_backoff = 0.0, ASK_BACKOFF_MIN

    def _held(self, acct: str) -> int:
        """This process's binds of the account, those being reserved included (counted until refused)."""
        return len([s for s in self.proxy.binds.get(acct, ()) if not s.closed]) + self.reserving.get(acct, 0)

    def release_bind(self, acct: str) -> None:
        """A bind ended: this process's exact count written back now (the refresh would within BEAT)."""
        async def write():
            try:
                n, _t = _keys(acct, "n")
                await wait_for(self.redis.hset(n, self.me, self._held(acct)), self.timeout * 2)
            except Exception:                   # (the next refresh writes it; its failures are said there)
                self.stats["errors"] += 1
        if self._closed:                        # (the stop removes this process's fields)
            return
        t = asyncio.ensure_future(write())
        self._releases.add(t)
        t.add_done_callback(self._releases.discard)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(BEAT)
            try:
                await wait_for(self._beat(), self.timeout * 4)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.stats["errors"] += 1
                self.refresh_trouble.failed(f"{type(e).__name__}: {e}", "last shares kept")
            else:
                self.refresh_trouble.ok()
                self._asked_ok()

    async def _beat(self) -> None:
        p = self.redis.pipeline(transaction=False)
        until = int(await self._now()) + TTL
        for a in list(self.proxy.binds):        # exact counts (a release that failed is made good here)
            n, t = _keys(a, "n")
            p.hset(n, self.me, self._held(a))
            p.hset(t, self.me, until)
        await p.execute()
        for a, b in list(self.proxy.buckets.items()):
            if not isinstance(b, SharedBucket):
                continue
            asked, b.asked = b.asked, 0
            d, t = _keys(a, "d")
            total, live = await self.redis.eval(SHARE, 2, d, t, self.me, asked, TTL)
            total = float(total)
            share = asked / total if total > 0 else 1.0 / max(int(live), 1)
            b.rate = max(b.base * share, b.base * 0.01)
            b.burst = max(1.0, b.rate)

    async def _now(self) -> float:
        s, us = await self.redis.time()
        return s + us / 1e6

    async def close(self) -> None:
        self._closed = True
        for t in list(self._releases):          # (their fields are removed below)
            t.cancel()
        await asyncio.gather(*self._releases, return_exceptions=True)
        try:
            p = self.redis.pipeline(transaction=False)
            for a in list(self.proxy.binds) + list(self.proxy.buckets):
                for kind in ("n", "d"):
                    k, t = _keys(a, kind)
                    p.hdel(k, self.me)
                    p.hdel(t, self.me)
            await wait_for(p.execute(), self.timeout * 2)
        except Exception:
            pass
