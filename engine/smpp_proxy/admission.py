"""Who may hold a connection and how fast a source may try passwords.

Theory of operation. File descriptors are the resource an attacker exhausts first: every
TCP connection costs one, and once the process is out of them even the real ESMEs cannot
bind. So connections are capped in total and per source address, and a connection that is
not bound yet is worth less than one that is: when a cap is reached, the oldest *unbound*
connection (of that source, or overall; a source is an IPv4 address or an IPv6 /64,
engine/sourcekey.py) is closed to make room for the new one, and only
when every connection under the cap is bound is the new one refused. An unbound connection
is also closed after `bind_timeout` seconds. Together these keep fds for real binds: a bind
arrives right after its connect, so it is never the oldest unbound connection for long. The
total cap is one share of the process's fd budget (engine/fdbudget.py), which the SIP screen's TCP caps
share: together, and with a reserve, they fit RLIMIT_NOFILE.

Binds are throttled per source and paced per (source, system_id). Each source has one password
check in flight at a time (PBKDF2 runs in a thread, off the event loop: one source cannot take
the hashing threads from the others). The first `bind_failures_free` failures of a system_id
from a source are answered as soon as their check ends; after that that pair's next check waits
`bind_backoff` seconds, doubling with each further failure up to `bind_backoff_max`. Keyed by the
system_id as well, so wrong passwords for one account (a misconfigured or hostile ESME) do not
delay another account's binds from the same address (ESMEs behind one NAT); a success clears its
pair's record. A bind closed for a flood of other requests (dispatch.over_other_rate) is a strike on its
pair's record too, the first one included (`bind_failures_free` forgives mistyped passwords, not a
flood): the pair's next bind waits `bind_backoff`, doubling with each further strike, failed bind or
close, and a success does not clear the closes (a flooder that rebinds, floods and is closed again
waits longer each time), which are forgotten with the record once its back-off has long passed. Keyed by
(source, system_id) as failures are: credentials, not a NAT's neighbours, pay for a flood, and the same
account's other sources are not slowed (binds of one account from many sources are bounded by its
`max_binds`). Waiting binds queue per source (one per connection, so the queue is bounded by the
per-source cap); the oldest whose pair's back-off has passed goes next, chosen on system_ids and
the clock only (a right password never jumps the queue: no timing oracle). The records are
bounded (`MAX_KEYS`, least recently failed dropped first, and `MAX_KEYS_PER_SOURCE` a source:
past that a source's other system_ids share one record, so trying many names is paced as one,
except the system_ids that bound from it since the start, `bound`: an account that binds from
behind a NAT is not paced by a neighbour failing with many names) and forgotten once their
back-off has long passed. A connection whose bind waits here is not
closed at `bind_timeout` (it waits on us, not the peer) but at `bind_timeout` + `bind_backoff_max`
(`ConnectionCaps.expired_unbound`); it stays the oldest unbound one to close at a connection cap.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

from ..fdbudget import FD_BUDGET
from ..sourcekey import source_key

MAX_KEYS = 65536                # (source, system_id) failure records kept, least recently failed dropped first
MAX_KEYS_PER_SOURCE = 64        # ... of one source; its other system_ids share one record
MAX_BOUND = 65_536              # (source, system_id) pairs that bound since the start, paced by their own record


class ConnectionCaps:
    """Connections by source; unbound ones in arrival order so the oldest is found in O(1)."""

    def __init__(self, total: int, per_source: int):
        # within the process's one fd budget, shared with the SIP screen's caps (FdBudget): a later claim
        # (the SIP screen starting) may lower `total` through _fd_granted
        self.total = FD_BUDGET.claim("smpp", {"SMPP max_connections": total}, self._fd_granted)["SMPP max_connections"]
        self.per_source = per_source
        self.count = 0
        self.by_source: dict[str, int] = {}
        self.unbound: OrderedDict = OrderedDict()          # session -> None, oldest first
        self.unbound_by_source: dict[str, OrderedDict] = {}
        self.stats = {"evicted": 0, "refused": 0}

    def _fd_granted(self, granted: dict) -> None:
        self.total = granted["SMPP max_connections"]

    def close(self) -> None:
        """The proxy stopped: its cap leaves the fd budget, so a proxy or SIP screen started later in this
        process (tests, harnesses) gets what it took."""
        FD_BUDGET.release("smpp", self._fd_granted)

    def admit(self, sess) -> bool:
        """Register a new connection, closing an older unbound one if a cap is reached.
        False: refuse it (every connection under the cap is bound)."""
        src = source_key(sess.peer[0])         # an IPv6 peer by its /64 (engine/sourcekey.py)
        if self.by_source.get(src, 0) >= self.per_source:
            q = self.unbound_by_source.get(src)
            if not q:
                self.stats["refused"] += 1
                return False
            self._evict(next(iter(q)))
        if self.count >= self.total:
            if not self.unbound:
                self.stats["refused"] += 1
                return False
            self._evict(next(iter(self.unbound)))
        self.count += 1
        self.by_source[src] = self.by_source.get(src, 0) + 1
        self.unbound[sess] = None
        self.unbound_by_source.setdefault(src, OrderedDict())[sess] = None
        sess.admitted = True
        return True

    def bound(self, sess) -> None:
        self._forget_unbound(sess)

    def release(self, sess) -> None:
        if not getattr(sess, "admitted", False):
            return
        sess.admitted = False
        src = source_key(sess.peer[0])
        self.count -= 1
        n = self.by_source.get(src, 1) - 1
        if n:
            self.by_source[src] = n
        else:
            self.by_source.pop(src, None)
        self._forget_unbound(sess)

    def expired_unbound(self, deadline: float, pending_deadline: float | None = None) -> list:
        """Unbound sessions that connected before `deadline` (oldest first; stops at the first
        younger one, so the cost is the number expired and the binds waiting), except one whose bind
        waits for its check (BindThrottle) and connected after `pending_deadline`."""
        out = []
        for sess in self.unbound:
            if sess.connected_at > deadline:
                break
            if pending_deadline is not None and sess.bind_pending and sess.connected_at > pending_deadline:
                continue
            out.append(sess)
        return out

    def _forget_unbound(self, sess) -> None:
        if self.unbound.pop(sess, 0) is None:
            src = source_key(sess.peer[0])
            q = self.unbound_by_source.get(src)
            if q is not None:
                q.pop(sess, None)
                if not q:
                    del self.unbound_by_source[src]

    def _evict(self, sess) -> None:
        self.stats["evicted"] += 1
        self.release(sess)
        sess.abort()


MAX_DOUBLINGS = 60              # 2 ** this times bind_backoff: past any bind_backoff_max (and a float still)


class _Record:
    """Failed binds as one system_id from one source address, and its binds closed for a flood."""
    __slots__ = ("failures", "closes", "next_at", "last_failure")

    def __init__(self):
        self.failures, self.closes, self.next_at, self.last_failure = 0, 0, 0.0, 0.0


class _Source:
    """A source address's binds waiting for their password check, oldest first: (system_id, job)."""
    __slots__ = ("busy", "queue", "timer")

    def __init__(self):
        self.busy, self.queue, self.timer = False, deque(), None


class BindThrottle:
    """Serialises password checks per source and paces them per (source, system_id) (see the module
    docstring).

    `submit(src, system_id, job)` runs `job(done)` when no other check of `src` is running and the
    back-off of `system_id` from `src` has passed; the job calls `done(ok)` when its check is over."""

    def __init__(self, free: int, backoff: float, backoff_max: float, clock=None):
        self.free, self.backoff, self.backoff_max = free, backoff, backoff_max
        # (source, system_id) -> _Record of a pair whose last bind failed, least recently failed first: at most
        # MAX_KEYS, and MAX_KEYS_PER_SOURCE a source (its other system_ids share the record (source, None))
        self.records: OrderedDict[tuple, _Record] = OrderedDict()
        self.keys_by_source: dict[str, int] = {}
        self.sources: dict[str, _Source] = {}         # sources with a bind waiting or being checked
        # pairs that bound (the right password) since the start, most recent last: always paced by their own
        # record, never the shared one (a neighbour behind the same NAT failing with many names cannot make an
        # account that binds from there wait); getting in needs the password, so it tells nothing
        self.bound: OrderedDict[tuple, None] = OrderedDict()
        self._clock = clock

    def _now(self) -> float:
        return (self._clock or asyncio.get_running_loop().time)()

    def key(self, src: str, system_id: str) -> tuple:
        """The record a bind as `system_id` from `src` is paced by. The system_id is taken as written, known
        or not: the pacing tells nothing of which accounts exist."""
        key = (src, system_id)
        if key in self.records or key in self.bound or self.keys_by_source.get(src, 0) < MAX_KEYS_PER_SOURCE:
            return key
        return (src, None)

    def _forget(self, key) -> None:
        del self.records[key]
        src = key[0]
        n = self.keys_by_source[src] - 1
        if n:
            self.keys_by_source[src] = n
        else:
            del self.keys_by_source[src]

    def submit(self, src: str, system_id: str, job) -> None:
        src = source_key(src)                   # an IPv6 peer by its /64 (engine/sourcekey.py)
        st = self.sources.get(src)
        if st is None:
            st = self.sources[src] = _Source()
        st.queue.append((system_id, job))
        if not st.busy:
            self._next(src, st)

    def _next(self, src: str, st: _Source) -> None:
        """Check the oldest waiting bind whose back-off has passed, else wake up when the first may go. A
        system_id in its back-off does not hold up another's bind behind it (wrong passwords for one account
        do not lock another out of the same address), and which one goes depends on the system_ids and the
        clock only, never on a password. O(binds waiting from the source): one a connection, at most
        max_connections_per_source."""
        if st.timer is not None:
            st.timer.cancel()
            st.timer = None
        q = st.queue
        if not all(job.alive() for _, job in q):
            q = st.queue = deque(e for e in q if e[1].alive())
        now, first, records = self._now(), None, self.records
        for i, (sid, job) in enumerate(q):
            rec = records.get(self.key(src, sid))
            if rec is None or rec.next_at <= now:
                del q[i]
                return self._run(src, st, sid, job)
            if first is None or rec.next_at < first:
                first = rec.next_at
        if first is None:
            del self.sources[src]
        else:
            st.timer = asyncio.get_running_loop().call_later(first - now, self._wake, src, st)

    def _wake(self, src: str, st: _Source) -> None:
        st.timer = None
        if not st.busy and self.sources.get(src) is st:
            self._next(src, st)

    def _run(self, src: str, st: _Source, sid: str, job) -> None:
        st.busy = True

        def done(ok: bool) -> None:
            st.busy = False
            key = self.key(src, sid)
            if ok:
                rec = self.records.get(key) if key[1] is not None else None
                if rec is not None:                     # a success clears its own record, not a shared one,
                    if rec.closes:                      # ... but for its closes (module text)
                        rec.failures = 0
                    else:
                        self._forget(key)
                pair = (src, sid)
                self.bound[pair] = None
                self.bound.move_to_end(pair)
                if len(self.bound) > MAX_BOUND:
                    self.bound.popitem(last=False)
            else:
                self._strike(key).failures += 1
                self._pace(key)
            self._next(src, st)
        job(done)

    def closed_for_flood(self, src: str, system_id: str) -> None:
        """A bind as `system_id` from `src` was closed for a flood of other requests: a strike on its pair's
        record (module text), so its next bind from there waits the back-off. O(1); bounded as failures are."""
        src = source_key(src)
        key = self.key(src, system_id)
        self._strike(key).closes += 1
        self._pace(key)

    def _strike(self, key) -> _Record:
        """The record of `key`, made (within MAX_KEYS) or moved to the most recently failed end."""
        rec = self.records.get(key)
        if rec is None:
            rec = self.records[key] = _Record()
            src = key[0]
            self.keys_by_source[src] = self.keys_by_source.get(src, 0) + 1
            if len(self.records) > MAX_KEYS:
                self._forget(next(iter(self.records)))
        else:
            self.records.move_to_end(key)
        return rec

    def _pace(self, key) -> None:
        """Its next check waits bind_backoff, doubling per strike: each close, and each failure from the
        `free`-th on."""
        rec = self.records.get(key)
        if rec is None:                                 # (pushed out at MAX_KEYS by itself: MAX_KEYS 0)
            return
        now = self._now()
        rec.last_failure = now
        strikes = rec.closes + (max(0, rec.failures - self.free + 1) if rec.failures else 0)
        if strikes:
            rec.next_at = now + min(self.backoff_max, self.backoff * 2 ** min(strikes - 1, MAX_DOUBLINGS))

    def prune(self) -> None:
        """Forget records that last failed more than `backoff_max` ago and whose back-off has ended (called
        from housekeeping). Records are kept in order of their last failure, so this stops at the first one
        to keep."""
        now = self._now()
        while self.records:
            key, rec = next(iter(self.records.items()))
            if now - rec.last_failure <= self.backoff_max or rec.next_at > now:
                break
            self._forget(key)
