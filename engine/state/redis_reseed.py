"""The shared counters after the server lost its keys (redis_store.py's RedisStore; the batch script's `reseed`,
redis_script.py): every process puts back the counts its mirror holds, so a recipient at its cap before the loss
stays at it.

Theory of operation
-------------------
Found by the Redis operations probe: a Redis restarted empty under load (no persistence; FLUSHALL, FLUSHDB and
evicted keys the same) let a second node send a recipient at its cap 3 more ads, 6 in the day. The counts were not
lost everywhere: each process's *mirror* (redis_counters.py) holds the counts the server confirmed for that
process's own messages (and those it let through fail-open), never what it read back of other processes'. So the
union of the mirrors is what the server held, within their bounds, and each process sends its part back.

1. The loss is seen by every process, not only the first: the mark `tf:keyspace` holds an *epoch* (a random token,
   set by whoever finds the mark gone: the batch script, a process's start, the watch below: redis_script.MARK).
   Each batch names the epoch its process knows; the script answers another one with 'E<epoch>;'. A process
   with no batch to send looks every RESEED_WATCH s (`_watch`: one small script call).
2. A process that learns of a loss sends its mirror's rows of the keys of drop rules (enforced caps:
   AD_FREQUENCY_CAP, DKQC, AD_CALL_FREQUENCY_CAP in the shipped pack; counts at delivery and distinct counters
   too) it committed last, newest first: the newest RESEED_MAX commits are remembered (`_remember`: 18 B each,
   18 MB at the bound; a key counted again is remembered again, so the bound is in commits, not keys, and a key
   whose last commit is older than the newest RESEED_MAX is not re-seeded). They go
   unenforced at the head of its batches, SEEDS_PER_CALL (500) keys a script call, each chunk read from the mirror
   as it is sent (~10 µs a key: no stall of the event loop), only the stamps still in their windows. Measured
   (one process, 2 loaded cores): 100,000 keys back in ~2.7 s, 300,000 in ~6.5 s (~45,000 a second).
3. Stamps carry no process identity (a second each, as in the embedded tables), so the script merges a seed
   instead of adding it: per key and second the most stamps of the server's row and the seed's (a distinct
   counter: per value the later second). A seed sent twice (a failed batch: the re-seed starts again), or holding
   counts the server took since the loss, counts once; what it cannot tell apart is two processes' counts of one
   key in the very same second, counted as one (one ad more may pass that recipient that day). Counts taken
   fail-open and waiting for the server (redis_outage.py `_catch_up`) of the keys re-seeded leave that queue:
   the seed carries them (sent after it, they would be added a second time).
4. Meanwhile, the *grace*: from the loss found until RESEED_GRACE_MS (1 s) after the last chunk any process sent
   (`tf:reseed`), at most RESEED_GRACE_MAX_MS (5 s) after the loss (`tf:reseed:cap`), a message with an enforced op
   is not committed but answered "wait" (2) and sent again at the grace's end (`_hold`): the other processes'
   counts are not back yet (with the shipped pack: ads, and any message from a number, FLOOD_SAME_CONTENT being a
   drop rule). Other messages are not held, and a held SMPP submit gives its SMSC window slot back to them meanwhile
   (smpp_proxy/submit_grace.py). Past the 5 s, what is still to re-seed goes on (newest
   first: ~200,000 keys a process are back by then) while messages are judged again.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from array import array

import numpy as np

from ..aiowait import wait_for
from ..rules.slots import key_hash
from .redis_counters import REMOVE, _drop_rule, _Op
from .redis_script import MARK, RESEED_GRACE_MS, counter_hash, counter_key

log = logging.getLogger("telfilter")

RESEED_MAX = 1_000_000      # the newest commits of enforced counters remembered for a re-seed
SEEDS_PER_CALL = 500        # keys re-seeded a script call (~5 ms of the event loop to read from the mirror and send)
RESEED_WATCH = 0.25         # seconds between looks at the keyspace mark while no batch went out
SEED = object()             # a batch entry's verdict: re-seeded rows (a _Op's `distinct` too)
KEYS = ("tf:keyspace", "tf:reseed")


class Reseed:
    """RedisStore's side of a lost keyspace (a mixin: the state is RedisStore's, set up by `_reseed_init`)."""

    def _reseed_init(self) -> None:
        self._epoch = None              # the keyspace epoch this process knows (the mark's value)
        self._ring = (array("Q"), array("Q"), array("H"))   # Redis key hash, mirror key hash, space of each commit
        self._ring_at = 0
        self._spaces: list = []         # [ns, window] of each space index
        self._space_ix: dict = {}
        self._todo = None               # (Redis key hashes, mirror key hashes, spaces) still to re-seed, and where
        self._held: list = []           # messages waiting for the grace's end
        self._held_timer = None
        self._grace_ms = RESEED_GRACE_MS
        self._answered = 0.0            # (monotonic) the last batch answered: the watch not needed before RESEED_WATCH

    # ------------------------------------------------------------ remembered commits
    def _remember(self, pipe, ops) -> None:
        """The commits of enforced counters the mirror just took (this process's own): what a re-seed sends."""
        rules = self._enforce_map(pipe)
        rk, mk, sx = self._ring
        for op in ops:
            if op.distinct is REMOVE or op.distinct is SEED or not _drop_rule(op, rules):
                continue
            s = self._space_ix.get(op.ns)
            if s is None:
                s = self._space_ix[op.ns] = len(self._spaces)
                self._spaces.append([op.ns, op.window])
            else:
                self._spaces[s][1] = op.window
            h, m = counter_hash(op.ns, op.key), key_hash(op.key)
            if len(rk) < RESEED_MAX:
                rk.append(h)
                mk.append(m)
                sx.append(s)
            else:
                i = self._ring_at
                rk[i], mk[i], sx[i] = h, m, s
                self._ring_at = (i + 1) % RESEED_MAX

    # ------------------------------------------------------------ the epoch
    def _answer_head(self, res: bytes) -> bytes:
        """The batch script's answer after its head ('E<epoch>;': the keyspace's epoch is not this process's;
        'W<ms>;': the grace runs)."""
        self._answered = time.monotonic()
        while res[:1] in (b"E", b"W"):
            j = res.index(b";")
            if res[:1] == b"E":
                self._epoch_is(res[1:j].decode())
            else:
                self._grace_ms = int(res[1:j])
            res = res[j + 1:]
        return res

    def _epoch_is(self, mark: str) -> None:
        was, self._epoch = self._epoch, mark
        if was is None or was == mark:
            return                      # (the first one this process knows)
        self.stats["keyspace_lost"] += 1
        self._reseed_start()
        log.error("state: Redis %s lost its keys (restarted without persistence, flushed or evicted: the mark "
                  "tf:keyspace is gone): this process puts back the %d counters of enforced caps it holds (the "
                  "newest %d commits), every process the same; messages under an enforced cap wait until they "
                  "are back", self.cfg["url"], len(self._todo[0]), RESEED_MAX)

    async def _watch(self) -> None:
        """While no batch goes out, look at the keyspace mark every RESEED_WATCH s (set again, with the grace, when
        gone): a process with no traffic puts its counts back too. A loss found ends a back-off at once."""
        while True:
            await asyncio.sleep(RESEED_WATCH)
            if self._busy or time.monotonic() - self._answered < RESEED_WATCH:
                continue
            try:
                mark = await wait_for(self.redis.eval(MARK, 2, *KEYS, os.urandom(8).hex()), self.timeout)
            except Exception:
                continue                # (an outage: the batches say it)
            was = self._epoch
            self._epoch_is(mark.decode() if isinstance(mark, bytes) else str(mark))
            if was is not None and self._epoch != was:
                self._down_until = 0.0
                self._wake()

    # ------------------------------------------------------------ re-seeding
    def _reseed_start(self) -> None:
        rk, mk, sx = (np.frombuffer(a, dtype) if len(a) else np.zeros(0, dtype)
                      for a, dtype in zip(self._ring, (np.uint64, np.uint64, np.uint16)))
        order = np.roll(np.arange(len(rk)), -self._ring_at)[::-1]      # newest first
        _u, first = np.unique(rk[order], return_index=True)
        pick = order[np.sort(first)]
        self._todo = (rk[pick], mk[pick], sx[pick], [0])
        w, keep = self._commits_waiting, []
        keys = set(self._todo[0].tolist()) if w else ()
        for op in w:                    # their counts are in the mirror, re-seeded with it (theory, 3)
            if op.distinct is not REMOVE and counter_hash(op.ns, op.key) in keys:
                if op.distinct is not True:
                    self.counters.on_server(op)
                continue
            keep.append(op)
        w[:] = keep
        self._wake()

    def _reseed_again(self) -> None:
        """A batch with re-seeded rows failed (it may have run: a seed counts once): the re-seed starts again."""
        if self._todo is not None:
            self._todo[3][0] = 0

    def _seeded(self) -> None:
        """A chunk's batch answered: the last one, the keys to re-seed are let go (one batch in flight at a time: the
        chunks before it were answered too, or a failure started the re-seed again)."""
        if self._todo is not None and not self._seeding():
            self._todo = None

    def _seeding(self) -> bool:
        """Keys still to re-seed."""
        return self._todo is not None and self._todo[3][0] < len(self._todo[0])

    def _seed_chunk(self, n: int) -> list:
        """The next `n` keys to re-seed, as ops read from the mirror now."""
        if not self._seeding():
            return []
        rk, mk, sx, at = self._todo
        i = at[0]
        at[0] = j = min(len(rk), i + n)
        mem, clock, ops = self.counters.mem, int(time.time()), []
        for h, m, s in zip(rk[i:j].tolist(), mk[i:j].tolist(), sx[i:j].tolist()):
            ns, window = self._spaces[s]
            got = _row(mem, ns, m, window, clock)
            if got and got[2]:
                mode, limit, rows = got
                w = -1 if window is None else int(window)
                enc = [5 if mode == 5 else 4, limit, w, clock, 0, int(mode == 6), rows]
                ops.append(_Op(ns, f"tf:c:{{{h:016x}}}", enc, clock, window, limit, SEED))
        self.stats["reseeded"] += len(ops)
        return ops

    def _removes_ahead(self, batch: list) -> None:
        """The counts given back queued in `batch` (entries no message settles: Pipeline.refund, uncharge) of the
        keys its seed chunk (batch[0]) puts back go before it: each left the mirror before the chunk was read, so the
        seed does not carry it; after it, the give-back took the stamp the seed put back of another count of that
        second (two ads at one delivery second, a replacement that kept its schedule: the recipient one count short).
        Before it, it takes what the server holds of it (counted since the loss), or nothing."""
        keys = {op.key for op in batch[0][2]}
        ahead = []
        for _p, v, ops, _t in batch[1:]:
            if v is None and any(op.distinct is REMOVE for op in ops):
                keep = [op for op in ops if op.distinct is not REMOVE or counter_key(op.ns, op.key) not in keys]
                if len(keep) < len(ops):
                    ahead += [op for op in ops if op.distinct is REMOVE and counter_key(op.ns, op.key) in keys]
                    ops[:] = keep
        if ahead:
            batch.insert(0, (None, None, ahead, None))

    # ------------------------------------------------------------ the grace
    def _hold(self, entry, ms: int) -> None:
        """A message the script answered "wait" (the grace runs): sent again at its end. A `then` with `held` and
        `released` (the SMPP submit path's, submit_grace.py) is told: held, it gives back the SMSC window slot its
        message took; at the grace's end `then.released(resume)`, and the message is sent again once its caller
        calls resume() (when a slot is free again)."""
        self.stats["reseed_waits"] += 1
        held = getattr(entry[3], "held", None)
        if held is not None:
            held()
        self._held.append(entry)
        if self._held_timer is None:
            try:
                self._held_timer = asyncio.get_running_loop().call_later(max(ms, 1) / 1000, self._release)
            except RuntimeError:
                pass

    def _release(self) -> None:
        self._held_timer = None
        held, self._held = self._held, []
        paced = [e for e in held if getattr(e[3], "released", None) is not None]
        self._queue[:0] = [e for e in held if getattr(e[3], "released", None) is None]
        self._wake()
        for e in paced:
            e[3].released(lambda e=e: self._resume(e))

    def _resume(self, entry) -> None:
        """A message held through the grace, sent again now (its caller has a window slot for it)."""
        self._queue.append(entry)
        self._wake()


def _row(mem, ns, h, window, clock):
    """(mode, rows' limit, live stamps or (value, second) pairs) of the mirror's row of key hash `h` in space `ns`:
    mode 4 a count, 6 a count at delivery (sent as 4, room 2 * limit), 5 a distinct counter; None: no row."""
    sp = mem.spaces.get(ns)
    if sp is None:
        return None
    hz = clock - int(window) if window is not None else 0
    t, rows = sp.table, sp.table.rows
    i = t.find(h)
    if sp.distinct:
        k = sp.limit + 1
        if i < 0:
            f = sp.first.find(h)
            fr = sp.first.rows
            return (5, sp.limit, [[fr[2 * f], fr[2 * f + 1]]]) if f >= 0 and fr[2 * f + 1] > hz else None
        b = i * 2 * k
        return 5, sp.limit, [[rows[b + j], rows[b + k + j]] for j in range(k) if rows[b + k + j] > hz]
    if i < 0:
        return None
    b = i * sp.width
    if sp.short:
        base, lo = rows[b + 1], 2 * b + 4
        with memoryview(rows).cast("B").cast("H") as st:
            return 4, sp.limit, [base + st[j] - 1 for j in range(lo, lo + sp.limit) if st[j] and base + st[j] - 1 > hz]
    return (6 if sp.at else 4), sp.limit, [x for x in rows[b:b + sp.width] if x > hz]
