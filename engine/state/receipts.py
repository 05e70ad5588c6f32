"""Delivery receipts across processes sharing one Redis (`serve --workers N`, or several nodes on
`--state redis://…`), each with SMSC links of its own.

Theory of operation
-------------------
An SMSC delivers a receipt on any receiver/transceiver bind of our system_id (often round-robin),
so with N processes a receipt usually reaches one that never saw its message's submit_sm_resp, and
the account's receiver bind may be in yet another. Two things travel through the server:

- **message_id -> account** (the stream `tf:mid`). Every id this process adds to its MessageIds (an
  SMSC's submit_sm_resp, a late answer) is appended to `out`: one list append on the submit path.
  Once per event-loop iteration they ride, grouped by account, as one stream entry in the counters'
  batch script call (redis_store.py `riders`: no round trip of their own). The follower of the
  event stream (events.py: the same XREAD BLOCK, so one wake-up for both entries of a script call)
  adds the other processes' ids to this process's table of learned ids, and a
  receipt that was waiting for its id (`receipt_wait`, routing.py) is routed at once. The stream is
  trimmed (MINID) to the last KEEP seconds: followers apply in real time, and a process that starts
  reads that window first. So a receipt is routed wherever it lands. The learned ids go to a table
  of their own (SharedMessageIds.learned), not to the one of this process's ids: each has the
  MessageIds bound (2M ids). This process's own table covers its own traffic exactly as without
  Redis (2M ids: ~7 minutes at 5k/s through this process), so other processes' ids never shorten
  the life of ours (a late receipt back on the bind that submitted it, common with transceivers, is
  still routed); the learned table covers the other processes' traffic (~7 minutes at 5k/s for the
  rest of the pool). Lookups try our own ids first, then the learned ones. Memory in each process,
  at the bound in steady traffic (msgids.py BYTES_PER_ID_NOTED, BYTES_PER_ID): ~231 B an id of our own
  (with what replace_sm needs: ~462 MB at 2M) and ~130 B a learned one (~260 MB), ~722 MB for both.
  Redis memory: KEEP seconds of ids, ~15 bytes an id (5k/s: ~9 MB).
- **Receipts held for an account bound elsewhere** (the list `tf:{a:<account>}:rq`, in the
  account's hash slot like pool.py's keys). A receipt held here (acknowledged to the SMSC already,
  kept as the SMSC's raw bytes) for an account with no receiver/transceiver bind in this process is
  pushed onto the account's list by a script that takes at most `max_held_receipts` on that list;
  what it refuses stays held here, as before (counted, `receipts_handover_full`), and an account
  whose list took nothing is not offered again for FULL_PAUSE s (not each BEAT: no batch re-sent
  every second only to be refused; at most MAX_PAUSED accounts remembered). A process with a
  receiver bind of the account and room in its windows claims (script PULL: up to that room) every
  BEAT seconds, again at once while it gets full batches and has room, and when a window slot frees
  after a full batch; what it claims goes through the normal path (routing.py `_deliver_receipt`):
  an ESME's refusal holds it here, and if that bind goes away the next sweep hands it over again.
  Per account, first in first out.
- **Claims** (the hash `tf:{a:<account>}:rqc`, a field per process). A pull moves what it pops into
  this process's claim (with a sequence number and the server's time) in the same script call, and
  the claim is deleted by an ACK once the receipts are in this process (delivered or held here). A
  pull whose answer never arrived (a timeout: the script may have run) loses nothing: the next pull
  names the last claim it did receive (`ack`), and a claim under another number is given again
  (`receipts_reclaimed`); an ACK lost the same way is done by the next pull. A claim left ACK-less
  for STALE s belongs to a process that stopped or lost the server: the next pull by any process
  puts its receipts back at the head of the list. Receipts are delivered at least once: the only
  duplicate is a process that handled a claim and could not acknowledge it within STALE s.

Failures: with the server unreachable, ids wait for it (the newest MAX_UNSHARED; older ones stay in this
process only, counted as `msgids_not_shared` in SmppProxy.stats) and go with the first script call that
succeeds, so receipts for messages forwarded during the outage are routed wherever they land once it is
back; receipts stay held here (`receipts_shared_errors`, logged every 5 s at most;
tried again after a back-off of 0.1 s doubling to 5 s): today's behaviour, nothing dropped.
Handed-over receipts are as durable as the server (`appendonly`); a hand-over whose answer comes after
the store's timeout keeps its receipts here too (they may then be delivered twice, never lost); one held
here is in this process's held-receipts journal (smpp_proxy/held.py) until the server took it (then a gone
record is written). At a stop (`close`, before serve rewrites that journal) no new hand-over or pull
starts; one still under way after the wait is cancelled and awaited (its unsent receipts back in the
held queue) before close returns, so no hand-over takes from a held queue after it was saved.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time

import msgpack

from ..aiowait import wait_for
from ..smpp_proxy.msgids import BOUND, FORMAT, MessageIds, unpack_map
from .events import read_back
from .receipt_handover import _HandOver
from .receiptq import ACK, PULL, PUSH, RESOLVE

log = logging.getLogger("telfilter")

STREAM = "tf:mid"
KEEP = 120.0                # seconds of message ids kept in the stream (and read on start)
KEEP_MS = str(int(KEEP * 1000))
MAX_UNSHARED = 200_000      # ids waiting for the server while it is away (~40 s at 5k/s; the newest kept)
TAKE_MAX = 10_000           # ids per batch script call

class SharedMessageIds(MessageIds):
    """MessageIds whose own additions are broadcast (`out`); `learn` adds another process's to a table
    of their own (`learned`, the same bound), so they never evict this process's ids: those keep the
    coverage of a process alone. Lookups try this process's ids first, then the learned ones."""
    __slots__ = ("out", "wake", "learned")

    def __init__(self, bound: int = BOUND, wake=lambda: None):
        super().__init__(bound)
        self.out: list = []
        self.wake = wake
        self.learned = MessageIds(bound)

    def __len__(self) -> int:
        return MessageIds.__len__(self) + len(self.learned)

    def __contains__(self, mid: str) -> bool:
        return mid in self._ids or mid in self.learned

    def get(self, mid: str, default=None):
        n = self._ids.get(mid)
        if n is not None:
            return self._accounts[n]
        return self.learned.get(mid, default)

    def own(self, mid: str, default=None):
        """This process's ids only."""
        return MessageIds.get(self, mid, default)

    def add(self, mid: str, account: str) -> None:
        MessageIds.add(self, mid, account)
        out = self.out
        if not out:
            self.wake()             # the first of this loop iteration: a batch script call is scheduled
        out.append(mid)

    def add_noted(self, mid: str, account: str, *note) -> None:
        self.add(mid, account)              # (broadcast)
        MessageIds.note(self, mid, *note)

    def learn(self, mid: str, account: str) -> None:
        self.learned.add(mid, account)

    def dump(self) -> bytes:
        """This process's ids and the learned ones (serve keeps both across a clean stop: after the restart
        a receipt for another process's message that lands here still finds its account)."""
        return msgpack.packb({"format": FORMAT, "version": 1, **self.columns(), "learned": self.learned.columns()},
                             use_bin_type=True)

    def load(self, data: bytes) -> int:
        d = unpack_map(data)
        n = self.add_columns(d)
        if "learned" in d:
            n += self.learned.add_columns(d["learned"])
        return n


class SharedReceipts(_HandOver):
    """Wired by serve next to PoolLimits: `proxy.msgid_account` broadcast, held receipts handed over (_HandOver,
    receipt_handover.py)."""

    stream = STREAM

    def __init__(self, store, proxy):
        self.store, self.proxy, self.redis = store, proxy, store.redis
        self.timeout, self.url = store.timeout, store.cfg["url"]
        self.me = f"{os.getpid()}:{secrets.token_hex(4)}"
        self._me = self.me.encode()
        old = proxy.msgid_account
        self.ids = proxy.msgid_account = SharedMessageIds(old.bound, store._wake)
        store.riders.append(self)                 # sent with the batch script call
        store.events.followed[STREAM] = self      # read by the event stream's follower
        proxy.receipt_handover = self
        self._push = self.redis.register_script(PUSH)
        self._pull_script = self.redis.register_script(PULL)
        self._ack = self.redis.register_script(ACK)
        self._resolve_script = self.redis.register_script(RESOLVE)
        self._in_doubt: dict = {}       # account -> (token, receipts) of a hand-over whose answer never came
        self._seq = 0
        self._received: dict = {}       # account -> number of its last claim whose answer came (until acknowledged)
        self._taken: list = []          # the ids of the last take(), for lost()
        # catch_up reads back the stream's last KEEP s and moves this on (events.read_back); without it, the whole
        # stream (KEEP s) -- not from this process's clock, which may be ahead of the server's
        self.last_id = "0-0"
        self._due: set = set()          # accounts whose held receipts go to the server
        self._pull: set = set()         # accounts to pull for now
        self._more: set = set()         # accounts whose last pull was a full batch
        self._full: dict = {}           # account -> monotonic time until which its list counts as full
        self._job = None
        self._closing = False
        self._down_until = 0.0
        self._backoff = 0.1
        self._last_log = 0.0
        self._failures = 0              # failed calls since the server last answered (_answered says the end)
        self.stats = proxy.stats        # SmppProxy.stats: in `ctl stats` and /metrics (telfilter_smpp_events)

    # ------------------------------------------------------------ message ids: a rider of the batch script
    @property
    def out(self) -> list:
        return self.ids.out

    def take(self) -> tuple:
        """(blob, milliseconds kept, process id) for the batch script: {account: [ids]} (an empty blob: none); at most
        TAKE_MAX ids a call (after an outage, the ids that waited go over several calls)."""
        out = self.ids.out
        if len(out) <= TAKE_MAX:
            mids, self.ids.out = out, []
        else:
            mids = out[:TAKE_MAX]
            del out[:TAKE_MAX]
        self._taken = mids
        keep = KEEP_MS                  # the stream trimmed on the server's clock (redis_script.TRIM_STREAM)
        if not mids:
            return b"", keep, self.me
        by: dict = {}
        get = self.ids.own
        for k in mids:
            a = get(k)
            if a is not None:
                by.setdefault(a, []).append(k)
        self.stats["msgids_shared"] += len(mids)
        return msgpack.packb(by), keep, self.me

    def lost(self, taken: tuple | None = None) -> None:
        """The server could not take them (away, or backing off): they wait for the next script call, the
        newest MAX_UNSHARED at most (older ones are known in this process only: `msgids_not_shared`)."""
        if taken is not None and taken[0]:
            mids, self._taken = self._taken, []        # (what take() packed: not unpacked again)
            self.stats["msgids_shared"] -= len(mids)
            self.ids.out[:0] = mids                     # older than what came since: first again
        over = len(self.ids.out) - MAX_UNSHARED
        if over > 0:
            del self.ids.out[:over]
            self.stats["msgids_not_shared"] += over

    def _apply(self, entries, skip_own: bool = True) -> None:
        learn, early, proxy = self.ids.learned.add, self.proxy.early_receipts, self.proxy
        recent = proxy.recent_resps.add     # their resps went out in another process just now: a receipt waits
        for eid, f in entries:
            self.last_id = eid.decode() if isinstance(eid, bytes) else eid
            if skip_own and f.get(b"p") == self._me:
                continue
            try:
                by = msgpack.unpackb(f[b"d"])
                for acct, mids in by.items():
                    for k in mids:
                        learn(k, acct)
                        recent(k)
                        if early and k in early:        # a receipt here was waiting for this id
                            proxy._early_receipt_matched(k, acct)
                    self.stats["msgids_learned"] += len(mids)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                self._error("apply", e)

    async def catch_up(self, timeout: float = 5.0) -> int:
        """The last KEEP seconds of ids, this process's earlier incarnations' included."""
        return await read_back(self, STREAM, KEEP, timeout)

    # ------------------------------------------------------------ failures, life
    def _failed(self, what, e) -> None:
        self._down_until = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 5.0)
        self._error(what, e)

    def _error(self, what, e) -> None:
        self.stats["receipts_shared_errors"] += 1
        self._failures += 1
        now = time.monotonic()
        if now - self._last_log >= 5.0:
            self._last_log = now
            log.error("shared receipts (%s) via %s failed: %s: %s; receipts stay held here (held %d)",
                      what, self.url, type(e).__name__, e, self.proxy.held_total)

    def _answered(self) -> None:
        """A call answered after failures: said once (before, the last word in the log was the failure)."""
        if self._failures:
            log.warning("shared receipts via %s work again (%d failed calls before); held here %d", self.url,
                        self._failures, self.proxy.held_total)
            self._failures = 0

    async def close(self) -> None:
        """After the proxy stopped, before its held receipts are saved: a job under way ends first (it
        takes no new work once closing); one still running after the wait is cancelled, and this returns
        only when it has ended, so a hand-over never pops from a held queue after it was saved (what it
        had not sent is back in the queue: `_hand_over`'s finally)."""
        self._closing = True
        job = self._job
        if job is not None and not job.done():
            try:
                await wait_for(asyncio.shield(job), self.timeout * 4 + 1)
            except Exception:
                pass
            if not job.done():
                job.cancel()
                await asyncio.wait({job})   # until the cancellation has run its course (never raises its error)
        # a hand-over whose answer never came: what it put on the list is not saved in the held queue too (the next
        # start would deliver it again); asked once each, the server away: saved, delivered twice if it had run
        for acct in list(self._in_doubt):
            await self._resolve(acct)
            if acct in self._in_doubt:
                break
