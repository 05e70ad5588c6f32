"""Who may hold a connection and how fast a source may try passwords.

Theory of operation. File descriptors are the resource an attacker exhausts first: every
TCP connection costs one, and once the process is out of them even the real ESMEs cannot
bind. So connections are capped in total and per source address, and a connection that is
not bound yet is worth less than one that is: when a cap is reached, the oldest *unbound*
connection (of that source, or overall) is closed to make room for the new one, and only
when every connection under the cap is bound is the new one refused. An unbound connection
is also closed after `bind_timeout` seconds. Together these keep fds for real binds: a bind
arrives right after its connect, so it is never the oldest unbound connection for long. The
total cap is one share of the process's fd budget (engine/fdbudget.py), which the SIP screen's TCP caps
share: together, and with a reserve, they fit RLIMIT_NOFILE.

Binds are throttled per source. Each source has one password check in flight at a time
(PBKDF2 runs in a thread, off the event loop); the first `bind_failures_free` failures are
answered as soon as their check ends, after that a source's next check waits `bind_backoff`
seconds, doubling with each further failure up to `bind_backoff_max`. Waiting binds queue
per source (one per connection, so the queue is bounded by the per-source cap); a success
clears the source's record. The per-source records are themselves bounded (`MAX_SOURCES`,
least recently failed dropped first) and forgotten once their back-off has long passed.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict, deque

from ..fdbudget import FD_BUDGET

MAX_SOURCES = 65536




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
        src = sess.peer[0]
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
        src = sess.peer[0]
        self.count -= 1
        n = self.by_source.get(src, 1) - 1
        if n:
            self.by_source[src] = n
        else:
            self.by_source.pop(src, None)
        self._forget_unbound(sess)

    def expired_unbound(self, deadline: float) -> list:
        """Unbound sessions that connected before `deadline` (oldest first; stops at the first
        younger one, so the cost is the number expired)."""
        out = []
        for sess in self.unbound:
            if sess.connected_at > deadline:
                break
            out.append(sess)
        return out

    def _forget_unbound(self, sess) -> None:
        if self.unbound.pop(sess, 0) is None:
            src = sess.peer[0]
            q = self.unbound_by_source.get(src)
            if q is not None:
                q.pop(sess, None)
                if not q:
                    del self.unbound_by_source[src]

    def _evict(self, sess) -> None:
        self.stats["evicted"] += 1
        self.release(sess)
        sess.abort()


class _Source:
    __slots__ = ("failures", "next_at", "last_failure", "busy", "queue")

    def __init__(self):
        self.failures, self.next_at, self.last_failure, self.busy, self.queue = 0, 0.0, 0.0, False, deque()


class BindThrottle:
    """Serialises and paces password checks per source (see the module docstring).

    `submit(src, job)` runs `job(done)` when the source may check again; the job calls
    `done(ok)` when its check is over."""

    def __init__(self, free: int, backoff: float, backoff_max: float, clock=None):
        self.free, self.backoff, self.backoff_max = free, backoff, backoff_max
        self.sources: OrderedDict[str, _Source] = OrderedDict()
        self._clock = clock

    def _now(self) -> float:
        return (self._clock or asyncio.get_running_loop().time)()

    def submit(self, src: str, job) -> None:
        st = self.sources.get(src)
        if st is None:
            st = self.sources[src] = _Source()
            if len(self.sources) > MAX_SOURCES:
                self.sources.popitem(last=False)
        st.queue.append(job)
        if not st.busy:
            self._next(src, st)

    def _next(self, src: str, st: _Source) -> None:
        if not st.queue:
            return
        wait = st.next_at - self._now()
        if wait > 0:
            st.busy = True
            asyncio.get_running_loop().call_later(wait, self._run, src, st)
        else:
            self._run(src, st)

    def _run(self, src: str, st: _Source) -> None:
        st.busy = False
        while st.queue:
            job = st.queue.popleft()
            if job.alive():
                break
        else:
            return
        st.busy = True

        def done(ok: bool) -> None:
            st.busy = False
            if ok:
                st.failures, st.next_at = 0, 0.0
            else:
                st.failures += 1
                st.last_failure = self._now()
                self.sources.move_to_end(src)
                if st.failures >= self.free:
                    st.next_at = self._now() + min(self.backoff_max,
                                                   self.backoff * 2 ** (st.failures - self.free))
            self._next(src, st)
        job(done)

    def prune(self) -> None:
        """Forget sources that last failed more than `backoff_max` ago and whose back-off has
        ended (called from housekeeping). Sources are kept in order of their last failure, so
        this stops at the first one to keep."""
        now = self._now()
        while self.sources:
            src, st = next(iter(self.sources.items()))
            if st.busy or st.queue or now - st.last_failure <= self.backoff_max or st.next_at > now:
                break
            del self.sources[src]
