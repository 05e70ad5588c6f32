"""The shared state store (`telfilter serve --state redis://HOST:PORT/DB`): rule counters
checked and committed atomically in Redis (or Valkey), so every process and machine pointing
at one server enforces one cap.

Theory of operation
-------------------
Judging stays synchronous and local. Each process keeps a *mirror* (MemoryCounters) of the
counter commits it made that the server confirmed; rules read the mirror while judging, as
with the embedded store. The mirror only ever holds a subset of the server's truth, so a local
"over the limit" is always right; a local "under the limit" may be wrong, because other
processes committed too. That is what the server settles:

1. The pipeline's commit step calls `add` / `add_distinct` / `add_at` (only for messages let through).
   Here that records an *op* (namespace, key, window, limit, value, second) in `self.ops`,
   nothing else.
2. Right after `Pipeline.judge` the caller (the SMPP submit path, the SIP screen's INVITE) calls
   `settle(pipe, verdict, then)`, which takes this message's ops and queues them. Once per
   event-loop iteration the queue goes to the server as ONE script call (a Lua script, one
   EVALSHA per batch, at most one batch in flight so the server sees messages in the order
   they were judged).
3. The script, for each message in order: reads every key of its ops, counts the stamps within
   each window, and if an op of an *enforcing* rule (a rule whose forced action is drop)
   would be over its limit, commits nothing for that message; otherwise it commits every op
   (stamps appended, the key's TTL set to its window). It returns, per message, whether it
   committed and each op's count. Two processes racing for the last slot of a cap are ordered
   by the server: one commits, the other is told the cap is full.
4. `then(verdict)` runs with the verdict the server's counts give: an allowed ad whose cap
   is full becomes DROP with the rule's own hit (AD_FREQUENCY_CAP, its status codes and
   source, the evidence saying "shared state"); a tag rule over its limit adds its TAG hit.
   The mirror takes the ops of committed messages.
5. A count taken back (`remove`: an ad the SMSC refused, Pipeline.refund) leaves the mirror at once
   and goes to the server as an op of its own, unenforced, with the next batch; the script drops the
   stamp (one of exactly the op's second, as MemoryCounters.remove). A count the mirror took alone
   (fail-open, below) is given back to the mirror only.

Ops no caller settles (`call_ended`, an MO judged by the routing path) are committed by a
sweep at the end of the loop iteration without enforcement: they still count everywhere.

Unreachable server: every call is bounded (`timeout`, default 0.5 s), a failure backs off, and `on_error`
(open, the default, or closed) decides each message meanwhile: engine/state/redis_outage.py. Through Sentinel
(`redis+sentinel://…`, engine/state/sentinel.py) a failover is such an outage, and the next call goes to the
primary the sentinels name.

Keys and values: engine/state/redis_script.py; ops and the mirror: engine/state/redis_counters.py; step 4's
verdict: engine/state/redis_enforce.py.
One batch names keys in many hash slots, so this is one Redis (or Valkey) primary, with
replicas/Sentinel for availability; on Redis Cluster each key is a slot of its own and a batch
would have to be split per slot (not built: the script needs all of a message's keys on one node).

Recipient history and call durations are kept whole in every process and broadcast between
them (engine/state/events.py), and so are the SMSC message ids of forwarded messages
(engine/state/receipts.py): both ride with the batch script call as stream entries (`riders`,
each with `out`, `take()`, `lost()`, `stream`). 5656 spam reports reach every node's report
index through engine/state/replication.py.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

import msgpack

from ..aiowait import wait_for
from ..rules.counters import MemoryCounters
from .embedded import StateError
from .events import SharedEvents
from .redis_counters import SharedCounters, _Op, _drop_rule
from .redis_enforce import _Enforcement
from .redis_outage import BACKOFF_MIN, CATCH_UP, Outage, _safely
from .redis_reseed import SEED, Reseed
from .redis_script import LUA, TTL_SLACK, counter_key
from .sentinel import demoted, not_found, open_client
from .url import parse_url

log = logging.getLogger("telfilter")

MAX_BATCH = 2000            # messages per script call
UNSETTLED_MAX = 64          # timed-out batches with fail-closed or fail-open messages remembered for _reconcile


def _no_script(e: Exception) -> bool:
    """The server does not have the script (it restarted, failed over to a replica, or SCRIPT FLUSH): load it
    and send the batch again -- the script did not run. redis-py raises NoScriptError, whose text is the
    server's message without its NOSCRIPT prefix."""
    return type(e).__name__ == "NoScriptError" or "NOSCRIPT" in str(e) or "No matching script" in str(e)


def _not_sent(e: Exception) -> bool:
    """The batch never ran: no connection could be made (redis-py: "Error 111 connecting to …"), no sentinel named a
    primary (sentinel.not_found), or the server is a replica (sentinel.demoted: a replica refuses every write, so
    the script committed nothing; its count-taking messages are counted again on the primary, _catch_up)."""
    return isinstance(e, ConnectionRefusedError) or "connecting to" in str(e) or not_found(e) or demoted(e)


class RedisStore(Outage, Reseed, _Enforcement):
    """`serve --state redis://…`: counters shared through one Redis/Valkey server (see above; failures and the
    counts taken while the server was away: Outage, redis_outage.py; the counts put back after the server lost its
    keys: Reseed, redis_reseed.py; the verdict the server's counts give: _Enforcement, redis_enforce.py)."""

    shared = True

    def __init__(self, url: str, client=None):
        self.cfg = parse_url(url)
        self.on_error = self.cfg["on_error"]
        self.timeout = self.cfg["timeout"]
        if client is None:
            try:
                import redis.asyncio  # noqa: F401
            except ImportError:
                raise StateError("--state redis://… needs the redis package (pip install redis)") from None
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            c = self.cfg
            # no retries by the client: a batch script sent again after a late reply would run twice (every
            # count committed, or given back, twice); a failure is the store's to handle (back-off, on_error),
            # and a refused connection fails at once as "connecting to" (the batch never sent: _not_sent)
            client = open_client(c, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                                 health_check_interval=30, retry=Retry(NoBackoff(), 0))
        self.redis = client
        reader = None
        if hasattr(client, "connection_pool"):
            # the follower of the event stream blocks in XREAD: its own connection and timeout
            reader = open_client(self.cfg, socket_connect_timeout=self.timeout, socket_timeout=self.timeout + 2.0)
        self.events = SharedEvents(client, reader, self.cfg["url"])
        self.events.carrier = self._wake        # updates ride with the next batch script call
        self.riders = [self.events]               # streams appended by the batch script (receipts.py adds one)
        self.counters = SharedCounters(self, MemoryCounters())
        self.history = self.events.history        # broadcast to and from the other processes (events.py)
        self.calls = self.events.calls
        self.ops: list[_Op] = []
        self._removes_waiting: list[_Op] = []     # counts given back while the server was away (_degraded)
        self._commits_waiting: list[_Op] = []     # counts the mirror took alone (fail-open), for the server
        # timed-out batches that held fail-closed or fail-open messages: (token, ops of each message, indexes of
        # the dropped, indexes of those counted in the mirror alone)
        self._unsettled: list = []
        self._queue: list = []          # (pipe, verdict, ops, then) waiting for the next batch
        self._scheduled = self._busy = False
        self._sha = None
        self._reseed_init()
        self._down_until = 0.0
        self._retry = None                      # the timer of _retry_riders
        self._backoff = BACKOFF_MIN
        self._last_log = 0.0
        self._rules_id = None
        self._enforcing: dict = {}
        self._tasks: set = set()
        self.stats = {"batches": 0, "messages": 0, "ops": 0, "converted": 0, "errors": 0,
                      "fail_open": 0, "fail_closed": 0, "reconnects": 0,
                      "given_back_after_timeout": 0, "caught_up": 0, "catch_up_lost": 0,
                      "keyspace_lost": 0, "reseeded": 0, "reseed_waits": 0, "demoted": 0, "failovers": 0}
        self.write_errors = 0            # read by engine/metrics.py (state store family)
        self.unjournalled = 0
        self.buf = self._queue

    # ------------------------------------------------------------ recording
    def _record(self, op: _Op) -> None:
        self.ops.append(op)
        if not self._scheduled:
            self._schedule()

    def _wake(self) -> None:
        if not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        try:
            asyncio.get_running_loop().call_soon(self._flush)
            self._scheduled = True
        except RuntimeError:            # no loop (a synchronous caller): local only
            for op in self.ops:
                op.apply(self.counters.mem)
            del self.ops[:]

    def begin(self) -> None:
        """Before judging a message that will be settled: ops recorded by other paths since
        the last flush are set aside (committed unenforced), so `settle` takes this message's only."""
        if self.ops:
            self._queue.append((None, None, self.ops, None))
            self.ops = []

    def settle(self, pipe, verdict, then) -> None:
        """Confirm the counter commits of the message just judged with the server; call
        `then(final verdict)` now (nothing to confirm) or once the server has answered."""
        ops = self.ops
        if not ops:
            then(verdict)
            return
        self.ops = []
        self._queue.append((pipe, verdict, ops, then))
        if not self._scheduled:
            self._schedule()

    # ------------------------------------------------------------ batching
    def _flush(self) -> None:
        self._scheduled = False
        if self.ops:                     # committed by a path that does not settle (SIP, call ends)
            self._queue.append((None, None, self.ops, None))
            self.ops = []
        if self._busy or not (self._queue or self._riding()):
            return
        if time.monotonic() < self._down_until:
            batch, self._queue[:] = self._queue[:], []
            for r in self.riders:
                r.lost()
            if batch:
                self._degraded(batch, "server unavailable (backing off)", sent=False)
            self._retry_riders()                # (after _degraded: the counts given back now waiting too)
            return
        self._waiting_first(self._queue)   # counts given back or taken while the server was away: theirs now
        batch = self._queue[:MAX_BATCH]
        del self._queue[:MAX_BATCH]
        self._busy = True
        t = asyncio.ensure_future(self._send(batch))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _riding(self) -> bool:
        # stream updates waiting for the next script call, counts given back while the server was away, or
        # timed-out batches to reconcile (their answers are kept BATCH_TTL only: asked at the back-off's end,
        # not at the next message, perhaps minutes later)
        return bool(self._removes_waiting or self._commits_waiting or self._unsettled or self._seeding()) \
            or any(r.out for r in self.riders)

    async def _send(self, batch: list) -> None:
        try:
            if self._unsettled:
                try:
                    await wait_for(self._reconcile(), self.timeout * 2)
                except Exception as e:  # (the server still away) this batch never went out
                    self._failed(e)
                    self._degraded(batch, f"{type(e).__name__}: {e}", sent=False)
                    self._retry_riders()
                    return
                self._waiting_first(batch)      # the counts it gives back or commits, before this batch's messages
                                                # (a retry) are measured
            keys, index, msgs = [], {}, []
            for pipe, _v, ops, _then in batch:
                rules = self._enforce_map(pipe) if pipe is not None else None
                enc = []
                for op in ops:
                    d = op.distinct
                    k = op.key if d is SEED else counter_key(op.ns, op.key)
                    ki = index.get(k)
                    if ki is None:
                        ki = index[k] = len(keys) + 1
                        keys.append(k)
                    if d is SEED:
                        enc.append([ki, *op.value])
                        continue
                    enc.append(op.wire(ki, int(bool(rules) and _drop_rule(op, rules))))
                msgs.append(enc)
            arg = msgpack.packb(msgs)
            ev = [r.take() for r in self.riders]
            token = os.urandom(8).hex()
            seeding = "1" if any(v is SEED for _p, v, _o, _t in batch) else "0"
            try:
                res = self._answer(await wait_for(self._eval(keys, arg, ev, token, seeding), self.timeout * 2))
            except Exception as e:      # connection refused/reset, timeout, a script error: never a crash
                for r, taken in zip(self.riders, ev):
                    r.lost(taken)
                self._failed(e)
                sent = not _not_sent(e)
                dropped, alone = self._degraded(batch, f"{type(e).__name__}: {e}", sent=sent)
                if dropped or alone:
                    # the server may have run it, or run it later: asked once it answers again (_reconcile)
                    self._unsettled.append((token, [ops for _p, _v, ops, _t in batch], dropped, alone))
                    for _tok, shape, _d, lost in self._unsettled[:-UNSETTLED_MAX]:
                        self.stats["catch_up_lost"] += sum(len(shape[i]) for i in lost)
                    del self._unsettled[:-UNSETTLED_MAX]
                self._retry_riders()            # (counts given back now waiting: sent at the back-off's end)
                return
            if self._backoff > BACKOFF_MIN:
                log.warning("state: Redis %s reachable again", self.cfg["url"])
                self.stats["reconnects"] += 1
            self._backoff = BACKOFF_MIN
            self._followed()
            self.stats["batches"] += 1
            pos = 0
            for pipe, v, ops, then in batch:
                ok = res[pos]
                counts = res[pos + 1:pos + 1 + len(ops)]
                pos += 1 + len(ops)
                self.stats["messages"] += 1
                self.stats["ops"] += len(ops)
                if v is CATCH_UP:               # (the mirror has them already)
                    self._on_server(ops)
                elif v is SEED:
                    self._seeded()
                    continue
                elif ok == 2:                   # the re-seed grace runs: sent again at its end (redis_reseed.py)
                    self._hold((pipe, v, ops, then), self._grace_ms)
                    continue
                elif ok:
                    for op in ops:
                        op.apply(self.counters.mem)
                    if pipe is not None:
                        self._remember(pipe, ops)
                if then is not None:
                    _safely(self._finish, pipe, v, ops, counts, then, ok)
        finally:
            self._busy = False
            if self._queue or self.ops or self._riding():
                self._flush()

    async def _eval(self, keys, arg, ev, token, seeding):
        if self._sha is None:
            self._sha = await self.redis.script_load(LUA)
        # (the keyspace epoch this process knows: a server that lost its keys is said in the answer, redis_reseed.py)
        args = (len(keys) + len(ev), *keys, *(r.stream for r in self.riders), arg, TTL_SLACK, len(keys),
                *(x for taken in ev for x in taken), token, self._epoch or "", seeding)
        try:
            return await self.redis.evalsha(self._sha, *args)
        except Exception as e:
            if not _no_script(e):
                raise
            self._sha = await self.redis.script_load(LUA)       # the server restarted
            return await self.redis.evalsha(self._sha, *args)

    def _answer(self, res: bytes) -> list:
        """The batch script's answer as integers, after its head (redis_reseed.py: the keyspace's epoch, the grace)."""
        res = self._answer_head(res)
        return list(map(int, res.split(b","))) if res else []

    @property
    def busy(self) -> bool:
        """Verdicts or commits still waiting for the server (a drain waits for them)."""
        return bool(self._queue or self.ops or self._busy or self._held)

    # ------------------------------------------------------------ life
    async def start(self) -> None:
        """Before listening: check the server (redis_check.py: unreachable is a warning, the policy covers it; a
        refused password, a command the ACL refuses, a replica are a StateError, a start-up error; an evicting
        policy is a warning) and read the other processes' recent history and call durations."""
        from .redis_check import ServerRefused, check_store
        try:
            found = await check_store(self.cfg, self.redis, self.events.reader, self.timeout * 2)
        except ServerRefused as e:      # no retry changes it: a start-up error (redis_check.py)
            raise StateError(f"--state {self.cfg['url']}: {e}") from None
        except Exception as e:
            self._failed(e)
            return
        self._followed()
        log.info("state: Redis %s (counters shared, on_error=%s)", self.cfg["url"], self.on_error)
        for w in found["warnings"]:
            log.warning("state: Redis %s: %s", self.cfg["url"], w)
        for n in found["notes"]:
            log.info("state: Redis %s: %s", self.cfg["url"], n)
        self._epoch = found.get("epoch")
        n = await self.events.catch_up()
        if n:
            log.info("state: %d entries of shared history and call durations read", n)

    async def run(self) -> None:
        """Follow the other processes' history and call-duration updates, and watch the keyspace mark while no batch
        goes out (redis_reseed.py; cancelled on stop)."""
        if self.events.reader is not None:
            await asyncio.gather(self.events.follow(), self._watch())
        else:
            await self._watch()

    async def close(self) -> None:
        for _ in range(200):            # what was queued is answered (and broadcast) before the stop
            riding = self._riding() and time.monotonic() >= self._down_until      # (not while backing off)
            if not (self._queue or self.ops or self._busy or self._tasks or riding or self._held):
                break
            if not self._busy and (self._queue or self.ops or self._riding()):
                self._flush()
            await asyncio.sleep(0.01)
        if self._retry is not None:
            self._retry.cancel()
        lost = len(self._commits_waiting) + sum(len(shape[i]) for _t, shape, _d, alone in self._unsettled for i in alone)
        if lost:                        # (the server still away at the stop)
            self.stats["catch_up_lost"] += lost
            log.warning("state: %d counts taken while Redis %s was away never reached it (the server still away at "
                        "the stop): other processes do not see them", lost, self.cfg["url"])
        await self.events.close()
        for c in (self.redis, self.events.reader):
            try:
                if c is not None:
                    await c.aclose()
            except Exception:
                pass

    def memory(self) -> dict:
        return {"pid": os.getpid(), **self.stats}
