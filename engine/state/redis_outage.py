"""The shared state store's side of an unreachable server (RedisStore's failures; redis_store.py has the rest).

Theory of operation
-------------------
Unreachable server: every call is bounded (`timeout`, default 0.5 s) and after a failure the
server is not tried again until a back-off (0.1 s doubling to 5 s) has passed, so a message
never waits longer than one timeout. Meanwhile `on_error` decides:
  open    (default) the local verdict stands and the ops go to the mirror (caps hold per
          process: each message is measured again against the mirror as it stands when the batch fails, the
          messages let through before it included, and one over a drop rule's cap is dropped); every such
          message is counted (`fail_open`) and logged, rate-limited. Its counts are committed on the server,
          unenforced, once it answers again (`_catch_up`: the message went out, so every process must count it;
          before, another process let the day's cap through again after the outage); a batch that may have run
          (a timeout) is asked about first (`_reconcile`), so no count is committed twice.
  closed  a message with an op of a drop rule counting per advertiser (a counter keyed by
          `owner`: an ad under its frequency cap) is dropped with STATE_UNAVAILABLE
          (ESME_RTHROTTLED, SIP 503: the sender retries later); other messages pass as in `open`.

The counts that wait for the server are bounded: given back (`_removes_waiting`) and taken alone
(`_commits_waiting`) the newest LOCAL_MAX each, sent REMOVES_PER_CALL a script call at the head of a batch;
timed-out batches to reconcile the newest UNSETTLED_MAX (redis_store.py). What never reached the server is
counted (`catch_up_lost`) and said at the stop.
"""
from __future__ import annotations

import asyncio
import logging
import time

from ..verdict import Action, Hit, decide
from .redis_counters import AT, LOCAL_MAX, REMOVE, _advertiser_cap, _drop_rule, _Op
from .redis_reseed import SEED, SEEDS_PER_CALL
from .redis_script import RECONCILE
from .sentinel import demoted, primary

log = logging.getLogger("telfilter")

BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0
# through Sentinel a retry first asks a sentinel (one SENTINEL MASTERS) and reaches the new primary at the first
# retry after the failover: capped at 1 s, a failover's outage outlasts Sentinel's own by at most that
SENTINEL_BACKOFF_MAX = 1.0
REMOVES_PER_CALL = 2000     # counts given back after an outage: at most this many a script call
CATCH_UP = object()         # a batch entry's verdict: counts the mirror took alone, now for the server (_catch_up)


def _removes_of(ops) -> list:
    """The ops that give back the counts (counted at submission or at delivery) of `ops` on the server."""
    return [_Op(op.ns, op.key, None, op.now, op.window, op.limit, REMOVE) for op in ops
            if op.distinct is False or op.distinct is AT]


def _safely(fn, *args) -> None:
    """Run one message's continuation: an error in it must not leave the rest of the batch unanswered."""
    try:
        fn(*args)
    except Exception:
        log.exception("state: a settled verdict's continuation failed")


class Outage:
    """RedisStore's failure handling: back-off, the `on_error` policy, and the counts for the server once it
    answers again (a mixin: the state is RedisStore's)."""

    _demotion_said = False      # the server answering as a replica logged (_demoted), until a batch succeeds
    _primary = None             # (host, port) the sentinels named last (_followed)

    def _waiting_first(self, batch: list) -> None:
        """Put a chunk (REMOVES_PER_CALL) of the counts waiting to be given back, and one of those the mirror took
        alone (_catch_up), at the head of `batch`, and before them a chunk of the counts put back after the server
        lost its keys (redis_reseed.py): the messages after them are measured with them."""
        seeds = self._seed_chunk(SEEDS_PER_CALL) if self._seeding() else None
        if seeds:
            batch.insert(0, (None, SEED, seeds, None))
            self._removes_ahead(batch)
        w = self._commits_waiting
        if w:
            # (a count given back meanwhile, an ad the SMSC refused, left the mirror alone: not sent; `local` says
            # how many of each key and second the mirror still holds alone)
            local, chunk, seen = self.counters.local, [], {}
            for op in w[:REMOVES_PER_CALL]:
                if op.distinct is not True:
                    k = (op.ns, op.key, op.now)
                    n = seen.get(k, 0)
                    if n >= local.get(k, 0):
                        continue
                    seen[k] = n + 1
                chunk.append(op)
            del w[:REMOVES_PER_CALL]
            if chunk:
                batch.insert(0, (None, CATCH_UP, chunk, None))
        w = self._removes_waiting
        if w:
            batch.insert(0, (None, None, w[:REMOVES_PER_CALL], None))
            del w[:REMOVES_PER_CALL]

    def _catch_up(self, ops) -> None:
        """Counts the mirror took alone (a message let through fail-open, or a catch-up whose batch failed): sent to
        the server, unenforced, with the first batch it answers (the newest LOCAL_MAX; older ones are counted as
        `catch_up_lost`)."""
        w = self._commits_waiting
        w += [op for op in ops if op.distinct is not REMOVE]
        if len(w) > LOCAL_MAX:
            self.stats["catch_up_lost"] += len(w) - LOCAL_MAX
            del w[:len(w) - LOCAL_MAX]

    async def _reconcile(self) -> None:
        """Batches whose answer never came, with messages dropped fail-closed (STATE_UNAVAILABLE: the sender
        retries) or let through fail-open: RECONCILE tells whether the script ran (its answer) or stops it from
        ever running. A dropped message it committed was never sent: its counts are given back, or the sender's
        retry would be counted again and the recipient get one ad fewer than the cap for a day (found by a pool
        probe: Redis paused with SIGSTOP for 1 s under on_error=closed). A message let through is counted on the
        server once: by the batch if it committed it, else by a catch-up (_catch_up)."""
        while self._unsettled:
            token, shape, dropped, alone = self._unsettled[0]
            res = await self.redis.eval(RECONCILE, 1, "tf:b:" + token)
            del self._unsettled[0]
            if res in (b"-", "-", b"", ""):     # never ran, and now never will
                for i in alone:
                    self._catch_up(shape[i])
                    # (and the counts it gave back, an ad the SMSC refused: still to be given back there)
                    self._give_back_later([op for op in shape[i] if op.distinct is REMOVE])
                continue
            res = list(map(int, (res if isinstance(res, bytes) else res.encode()).split(b",")))
            pos, want, sent = 0, set(dropped), set(alone)
            for i, ops in enumerate(shape):
                ok = res[pos] == 1              # (2: it waited for the re-seed grace, committed nothing)
                pos += 1 + len(ops)
                if i in sent:
                    if ok:
                        self._on_server(ops)
                    else:                       # (the server's cap was full: the message went out all the same)
                        self._catch_up(ops)
                elif ok and i in want:
                    self._give_back_later(_removes_of(ops))
                    self.stats["given_back_after_timeout"] += 1

    def _on_server(self, ops) -> None:
        """Counts the mirror took alone are now on the server too: a count given back from now on is given back
        there as well (SharedCounters.remove)."""
        self.stats["caught_up"] += len(ops)
        # (one given back, Pipeline.refund, while the server's answer was awaited: the refund took it from the mirror
        # alone, the server has it all the same -- given back there too, with the next batch)
        self._give_back_later(_removes_of([op for op in ops if (op.distinct is False or op.distinct is AT)
                                           and not self.counters.on_server(op)]))

    def _give_back_later(self, removes) -> None:
        """Counts to give back on the server with the next batch it answers (the newest LOCAL_MAX)."""
        w = self._removes_waiting
        w += removes
        if len(w) > LOCAL_MAX:
            del w[:len(w) - LOCAL_MAX]

    def _retry_riders(self) -> None:
        """Stream updates a rider keeps for the server (receipts.py's message ids) go at the end of the back-off,
        whether or not anything else wakes the batch by then."""
        if self._retry is None and self._riding():
            def retry():
                self._retry = None
                self._wake()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._retry = loop.call_later(max(0.0, self._down_until - time.monotonic()), retry)

    def _failed(self, e: Exception) -> None:
        self.stats["errors"] += 1
        self.write_errors += 1
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, SENTINEL_BACKOFF_MAX if self.cfg.get("sentinels") else BACKOFF_MAX)
        self._retry_riders()
        self._sha = None
        if demoted(e):
            self._demoted(e)
        now = time.monotonic()
        if now - self._last_log >= 5.0:
            self._last_log = now
            log.error("state: Redis %s unavailable (%s: %s); counters fail %s (fail_open=%d fail_closed=%d); "
                      "retrying in %.1fs", self.cfg["url"], type(e).__name__, e, self.on_error,
                      self.stats["fail_open"], self.stats["fail_closed"], self._backoff)

    def _demoted(self, e: Exception) -> None:
        """The server answered as a replica (sentinel.demoted): a failover demoted the primary while it stayed
        reachable, or an operator's REPLICAOF. Said once until a batch succeeds again (then `_followed`). Through
        Sentinel the next connection asks the sentinels for the new primary (redis-py drops the connection that
        met READONLY; the pool's idle ones are dropped here too, so none of them is used on the replica again);
        with redis:// nothing can follow it: every call is an outage until the server is a primary again."""
        self.stats["demoted"] += 1
        if self.cfg.get("sentinels"):
            pool = getattr(self.redis, "connection_pool", None)
            if pool is not None:
                t = asyncio.ensure_future(pool.disconnect(inuse_connections=False))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
        if self._demotion_said:
            return
        self._demotion_said = True
        if self.cfg.get("sentinels"):
            was = primary(self.redis)
            log.error("state: Redis %s: the primary%s was demoted to a replica (%s: %s): a failover; asking the "
                      "sentinels for the new one, counters fail %s meanwhile", self.cfg["url"],
                      f" {was[0]}:{was[1]}" if was else "", type(e).__name__, e, self.on_error)
        else:
            log.error("state: Redis %s is now a read-only replica (%s: %s): a failover or REPLICAOF demoted it, and "
                      "a redis:// URL cannot follow the primary elsewhere: counters fail %s (every batch is an "
                      "outage) until this server is a primary again. With Sentinel give the sentinels instead: "
                      "--state redis+sentinel://SENTINEL:26379,SENTINEL:26379,…/SERVICE/DB", self.cfg["url"],
                      type(e).__name__, e, self.on_error)

    def _followed(self) -> None:
        """A batch succeeded: a new primary named by the sentinels is said once (the failover followed)."""
        self._demotion_said = False
        p = primary(self.redis)
        if p is not None and p != self._primary:
            if self._primary is not None:
                self.stats["failovers"] += 1
                log.warning("state: Redis %s: the sentinels name a new primary, %s:%s (was %s:%s): counters go there "
                            "now", self.cfg["url"], p[0], p[1], *self._primary)
            self._primary = p

    def _degraded(self, batch: list, why: str, sent: bool = True) -> tuple:
        """The server could not be asked: the `on_error` policy decides each message. A count given back (an
        ad the SMSC refused) in a batch that was never `sent` is kept to be given back on the server when it
        answers again (the newest LOCAL_MAX); one whose batch may have run there (a timeout, a connection lost
        mid-call) is not sent twice: taking a second stamp could let a 4th ad through. The counts of a message
        let through are committed on the server when it answers again (_catch_up); when the batch may have run,
        once _reconcile knows whether it did. Returns, when the batch may have run, the indexes of the messages
        dropped fail-closed and those of the messages counted in the mirror alone (for _reconcile)."""
        if not sent:
            self._give_back_later([op for _p, _v, ops, _t in batch for op in ops if op.distinct is REMOVE])
        closed, alone = [], []
        for i, (pipe, v, ops, then) in enumerate(batch):
            if v is SEED:                       # (a seed counts once: all of it again)
                self._reseed_again()
                continue
            if v is CATCH_UP:                   # counts the mirror holds already: for the server, still
                if sent:
                    alone.append(i)
                else:
                    self._catch_up(ops)
                continue
            enforced = False
            if then is not None and self.on_error == "closed":
                rules = self._enforce_map(pipe)
                enforced = any(_advertiser_cap(op, rules) for op in ops)
            if enforced:
                self.stats["fail_closed"] += 1
                closed.append(i)
                hit = Hit("STATE_UNAVAILABLE", 0.0, f"shared counters unavailable ({why}); fail-closed",
                          f"state:{self.cfg['url']}", Action.DROP, 0x58, 503)       # ESME_RTHROTTLED
                _safely(then, decide(list(v.hits) + [hit], pipe.rules.tag_threshold, pipe.rules.drop_threshold))
                continue
            self.stats["fail_open"] += 1
            mem, counters = self.counters.mem, self.counters
            if then is not None:
                # the cap holds per process: the message measured again against the mirror, which now holds the
                # messages let through before it in this batch (judged against it before any of them was in it)
                pend: dict = {}
                counts = [op.measure(mem, pend) for op in ops]
                rules = self._enforce_map(pipe)
                if any(op.over(n) and _drop_rule(op, rules) for op, n in zip(ops, counts)):
                    _safely(self._finish, pipe, v, ops, counts, then, False)      # dropped, nothing committed
                    closed.append(i)            # (given back if the batch ran after all and committed it)
                    continue
            for op in ops:
                op.apply(mem)
                if op.distinct is False or op.distinct is AT:
                    counters.committed_locally(op)
            if pipe is not None:
                self._remember(pipe, ops)
            if sent:
                alone.append(i)
            else:
                self._catch_up(ops)
            if then is not None:
                _safely(then, v)
        return (closed, alone) if sent else ([], [])
