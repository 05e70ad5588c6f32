"""Held receipts handed over between processes sharing one Redis (receipts.py holds the theory of operation:
"Receipts held for an account bound elsewhere" and "Claims").

A receipt held here for an account with no receiver bind in this process goes onto the account's list
(`_hand_over`, script PUSH: at most max_held_receipts on the list; a list that took nothing is not offered
again for FULL_PAUSE s; a call whose answer never came is asked about, by its token, before its receipts are
offered again: `_resolve`); a process with a receiver bind of the account and room in its windows claims from
it (`_take_over`, script PULL) every BEAT s, again at once after a full batch, and acknowledges what it
received (`_acknowledge`, script ACK); a claim nobody acknowledged for STALE s goes back to its list. One
job at a time (`_work`), so a held queue is never handed over twice. `_HandOver` is a mixin of
`SharedReceipts`, which holds the connection, the scripts, the back-off (`_failed`) and the counters.
"""
from __future__ import annotations

import asyncio
import secrets
import time

from ..aiowait import wait_for
from ..smpp_proxy.codec import encode
from .pool import BEAT
from .receiptq import claims_key, push_token_key, queue_key

PUSH_BATCH = 500            # receipts per hand-over script call
FULL_PAUSE = 10.0           # seconds an account whose list was full is not handed over again
MAX_PAUSED = 10000          # accounts remembered as full at once (the oldest forgotten first)
STALE = 60.0                # seconds after which a claim nobody acknowledged goes back to its list


class _HandOver:
    """Held receipts to the server (accounts with no receiver bind here) and back (accounts with one)."""

    def _receiving_here(self, acct: str) -> bool:
        return any(s.state.can_receive and not s.closed for s in self.proxy.binds.get(acct, ()))

    def _room(self, acct: str) -> int:
        p = self.proxy
        return sum(s.account.window - len(s.window) for s in p._receivers(acct)) - len(p.held.get(acct, ()))

    def _paused(self, acct: str) -> bool:
        """Its list refused everything a moment ago (at max_held_receipts): not offered again for FULL_PAUSE s."""
        until = self._full.get(acct)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._full[acct]
        return False

    def _pause(self, acct: str) -> None:
        full = self._full
        full.pop(acct, None)
        if len(full) >= MAX_PAUSED:
            now = time.monotonic()
            for a in [a for a, t in full.items() if t <= now] or [next(iter(full))]:
                del full[a]
        full[acct] = time.monotonic() + FULL_PAUSE

    def held(self, acct: str) -> None:
        """routing.py: a receipt was just held for `acct`; with no receiver bind here it goes to the server."""
        if acct not in self._due and not self._receiving_here(acct) and not self._paused(acct):
            self._due.add(acct)
            self._kick()

    def slot_free(self, acct: str) -> None:
        """routing.py: an ESME acknowledged a receipt and nothing is held here for its account."""
        if acct in self._more:
            self._pull.add(acct)
            self._kick()

    def _kick(self) -> None:
        if (self._job is None or self._job.done()) and not self._closing:
            self._job = asyncio.ensure_future(self._work())

    async def _work(self) -> None:
        """One job at a time, so the held queues are never handed over twice."""
        while (self._due or self._pull or self._received or self._in_doubt) \
                and time.monotonic() >= self._down_until and not self._closing:
            try:
                if self._in_doubt:
                    await self._resolve(next(iter(self._in_doubt)))
                elif self._due:
                    await self._hand_over(self._due.pop())
                elif self._pull:
                    await self._take_over()
                else:
                    await self._acknowledge()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._error("hand-over", e)

    async def _hand_over(self, acct: str) -> None:
        p = self.proxy
        q = p.held.get(acct)
        if not q or self._receiving_here(acct) or self._paused(acct):
            return
        items = [q.popleft() for _ in range(min(len(q), PUSH_BATCH))]
        p.held_total -= len(items)
        n, answered, token, failure = 0, False, secrets.token_hex(8), None
        try:
            raws = [r.raw if getattr(r, "raw", b"") else encode(r) for r in items]
            n = int(await wait_for(
                self._push(keys=[queue_key(acct), push_token_key(acct, token)],
                           args=[p.settings.max_held_receipts, *raws]), self.timeout * 2))
            answered, self._backoff = True, 0.1
            self._answered()
            for r in items[:n]:
                p._held_gone(r)         # in the server now: not offered again by this process's next start
        except Exception as e:
            # it may have run (a timeout: the server paused, the call queued): held here again, and asked about
            # before they are offered again (_resolve), else each would be on the list and here, delivered twice
            self._in_doubt[acct] = (token, items)
            failure = e
        finally:                        # (a cancel too) what the list refused or never got: first in the queue again
            rest = items[n:]
            if rest:
                p.held[acct].extendleft(reversed(rest))
                p.held_total += len(rest)
        if failure is not None:         # (said once they are back: "held N" counts them)
            self._failed("hand-over", failure)
        self.stats["receipts_handed_over"] += n
        if answered and rest:           # the list is at max_held_receipts: held here
            self.stats["receipts_handover_full"] += len(rest)
            if not n:                   # it took nothing: offered again after FULL_PAUSE s, not each BEAT
                self._pause(acct)
        if not p.held.get(acct):
            p.held.pop(acct, None)
        elif n == len(items):
            self._due.add(acct)         # more than one batch was held

    async def _resolve(self, acct: str) -> None:
        """A hand-over whose answer never came: did it run? (The script RESOLVE marks its token so that it never
        runs after this.) The receipts it put on the list leave the held queue here, the others stay."""
        token, items = self._in_doubt[acct]
        try:
            n = int(await wait_for(self._resolve_script(keys=[push_token_key(acct, token)]), self.timeout * 2))
        except Exception as e:
            return self._failed("hand-over", e)
        self._answered()
        del self._in_doubt[acct]
        if n <= 0:
            return
        p = self.proxy
        gone = {id(r) for r in items[:n]}
        q = p.held.get(acct)
        if q:
            kept = [r for r in q if id(r) not in gone]
            p.held_total -= len(q) - len(kept)
            q.clear()
            q.extend(kept)
            if not q:
                p.held.pop(acct, None)
        for r in items[:n]:
            p._held_gone(r)
        self.stats["receipts_handed_over"] += n

    async def _take_over(self) -> None:
        want = {a: r for a in self._pull if (r := self._room(a)) > 0}
        self._pull.clear()
        while want:
            pl = self.redis.pipeline(transaction=False)
            seqs = {}
            for a, r in want.items():
                self._seq += 1
                seqs[a] = str(self._seq)
                await self._pull_script(keys=[queue_key(a), claims_key(a)],
                                  args=[self.me, self._received.get(a, ""), seqs[a], r, int(STALE * 1000)], client=pl)
            try:
                got = await wait_for(pl.execute(), self.timeout * 4)
            except Exception as e:                  # what the scripts claimed is given again at the next pull
                self.stats["receipts_pull_errors"] += 1
                return self._failed("pull", e)
            self._answered()
            full = []
            for (a, r), (again, raws) in zip(want.items(), got):
                if raws:
                    self._received[a] = seqs[a]
                    self.stats["receipts_taken_over"] += len(raws)
                    if again:
                        self.stats["receipts_reclaimed"] += len(raws)
                    if not await self.proxy.take_handed_over(a, raws):
                        self._received.pop(a, None)     # not on disk here: its claim stays, given again later
                else:
                    self._received.pop(a, None)
                if raws and len(raws) >= r and not again:
                    self._more.add(a)
                    full.append(a)
                else:
                    self._more.discard(a)
            await self._acknowledge()
            want = {a: r for a in full if (r := self._room(a)) > 0}

    async def _acknowledge(self) -> None:
        """The claims whose receipts are in this process now: deleted (one lost is deleted by the next pull)."""
        if not self._received:
            return
        done = list(self._received.items())
        pl = self.redis.pipeline(transaction=False)
        for a, seq in done:
            await self._ack(keys=[claims_key(a)], args=[self.me, seq], client=pl)
        try:
            await wait_for(pl.execute(), self.timeout * 4)
        except Exception as e:
            return self._failed("acknowledge", e)
        self._answered()
        for a, seq in done:
            if self._received.get(a) == seq:
                del self._received[a]

    async def beat(self) -> None:
        """Every BEAT s: held receipts of accounts with no receiver here go to the server; accounts with
        a receiver here pull."""
        while True:
            await asyncio.sleep(BEAT)
            p = self.proxy
            self._due.update(a for a, q in p.held.items()
                             if q and not self._receiving_here(a) and not self._paused(a))
            self._pull.update(a for a in p.binds if self._receiving_here(a))
            self._kick()

    async def run(self) -> None:
        await self.beat()
