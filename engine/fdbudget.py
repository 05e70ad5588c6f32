"""One budget of file descriptors for every connection cap of `telfilter serve` (the SMPP proxy's and
the SIP screen's, which share one process and one RLIMIT_NOFILE); see `FdBudget`."""
from __future__ import annotations

import logging
import os
import resource
import types
import weakref

FD_RESERVE = 64        # fds kept besides the connection caps: SMSC links, log files, the listening sockets,
                       # executors, Redis, metrics and control connections (and what is open at the first claim)
MIN_CAP = 16           # a connection cap the fd limit would clamp below this: serve refuses to start

life = logging.getLogger("telfilter.service")


class FdBudgetError(OSError):
    """The fd limit leaves too few descriptors for the connection caps (serve exits 2 with this message)."""


class FdBudget:
    """One budget of file descriptors for every connection cap of the process: the SMPP proxy's
    max_connections and the SIP screen's inbound and outbound TCP caps share one event loop and one
    RLIMIT_NOFILE, so a cap that ignores the others lets one protocol's peers take the fds the other
    needs (an idle SIP connection costs an fd an ESME's bind then lacks).

    At the first claim the soft limit is raised to the hard one where allowed (as nginx, HAProxy and
    systemd services do) and a reserve is set aside: FD_RESERVE plus the descriptors already open. Each
    component claims its caps when it sets them up (`claim`); if they all fit in the limit less the
    reserve they are granted as configured, else each gets MIN_CAP and the rest is shared in
    proportion to what it asked for -- logged as a warning naming every cap, its setting and what it got,
    and components that claimed earlier are told their new caps. If the limit cannot give every cap
    MIN_CAP, the claim raises FdBudgetError: serve refuses to start rather than run caps that serve no one.
    A component claims again under the same name (a reload, a restart in the same process) and replaces its
    claim; one that stops releases it (`release`), and the others get back what it took. A claim whose `apply`
    callback is gone (its component was dropped without a stop) is released at the next claim: nothing enforces
    its caps any more."""

    def __init__(self):
        self.claims: dict = {}          # owner -> ({cap name: wanted}, weak callable taking {cap name: granted} | None)
        self.granted: dict = {}         # cap name -> granted
        self.soft = self.hard = self.reserve = None

    def _setup(self) -> None:
        if self.soft is not None:
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
            except (ValueError, OSError):   # e.g. an infinite hard limit the kernel does not take as a soft one
                pass
        try:
            open_now = len(os.listdir("/proc/self/fd"))
        except OSError:
            open_now = 0
        self.soft, self.hard, self.reserve = soft, hard, FD_RESERVE + open_now

    def _limit(self) -> str:
        hard = "unlimited" if self.hard == resource.RLIM_INFINITY else self.hard
        return f"file descriptor limit {self.soft} (RLIMIT_NOFILE, hard limit {hard})"

    def claim(self, owner: str, caps: dict, apply=None, keep_others: bool = False) -> dict:
        """Claim `caps` ({name: wanted connections}) for `owner`; returns {name: granted}. `apply({name: granted})`
        is called (weakly held) when a later claim or a release changes what this one gets. `keep_others` (a
        reload of running settings): the others keep what they were granted, this claim gets at most what they
        leave. FdBudgetError: the limit cannot give every cap MIN_CAP; the claims stay as they were."""
        self._setup()
        if apply is not None:
            apply = weakref.WeakMethod(apply) if isinstance(apply, types.MethodType) else weakref.ref(apply)
        for other, (_, ref) in list(self.claims.items()):
            if ref is not None and ref() is None:       # its component is gone: its caps hold nothing
                del self.claims[other]
        before = self.claims.get(owner)
        self.claims[owner] = (dict(caps), apply)
        wanted = {n: w for c, _ in self.claims.values() for n, w in c.items()}
        try:
            if keep_others:
                fixed = {n: self.granted.get(n, w) for o, (c, _) in self.claims.items() if o != owner
                         for n, w in c.items()}
                mine = self._share(dict(caps), sum(fixed.values()))
                # what this claim leaves goes back to the others held below what they asked for (never less)
                left = (self.soft - self.reserve - sum(fixed.values()) - sum(mine.values())
                        if self.soft != resource.RLIM_INFINITY else float("inf"))
                for n in fixed:
                    more = min(max(wanted[n] - fixed[n], 0), left)
                    fixed[n] += more
                    left -= more
                granted = {**fixed, **mine}
            else:
                granted = self._share(wanted)
        except FdBudgetError:
            if before is None:
                del self.claims[owner]
            else:
                self.claims[owner] = before
            raise
        if any(granted[n] < wanted[n] for n in wanted):
            life.warning(
                "%s leaves %d for connections after a reserve of %d, but the connection caps want %d, so they are "
                "lowered: %s. Raise the hard limit (systemd LimitNOFILE=, ulimit -Hn as root) or lower the caps "
                "(smpp.toml max_connections, sip.toml max_tcp_connections, max_tcp_out_connections)",
                self._limit(), self.soft - self.reserve, self.reserve, sum(wanted.values()),
                ", ".join(f"{n} {wanted[n]} -> {granted[n]}" for n in wanted))
        self._grant(granted, owner)
        return {n: granted[n] for n in caps}

    def release(self, owner: str, apply=None) -> None:
        """`owner` stopped: its caps leave the budget, and the claims it had lowered get their share again
        (their `apply` is called). With `apply`: only if the claim is still the one made with it (another
        component of the same name may have claimed since: two SIP screens of one test process)."""
        ent = self.claims.get(owner)
        if ent is None:
            return
        if apply is not None and (ent[1] is None or ent[1]() != apply):
            return
        del self.claims[owner]
        # fewer caps than were granted: the share cannot fail
        self._grant(self._share({n: w for c, _ in self.claims.values() for n, w in c.items()}), owner)

    def _grant(self, granted: dict, owner: str) -> None:
        """Put `granted` in force; tell every claim but `owner`'s whose caps it changes."""
        changed = {n for n in granted if self.granted.get(n) != granted[n]}
        self.granted = granted
        for other, (c, ref) in list(self.claims.items()):
            if other == owner or ref is None or not changed & c.keys():
                continue
            fn = ref()
            if fn is None:
                del self.claims[other]
            else:
                fn({n: granted[n] for n in c})

    def _share(self, wanted: dict, taken: int = 0) -> dict:
        """`wanted` within the limit less the reserve and `taken` (what other claims keep)."""
        if self.soft == resource.RLIM_INFINITY:
            return dict(wanted)
        avail = self.soft - self.reserve - taken
        if sum(wanted.values()) <= avail:
            return dict(wanted)
        floor = {n: min(w, MIN_CAP) for n, w in wanted.items()}
        if sum(floor.values()) > avail:
            kept = f" and the {taken} the other caps keep" if taken else ""
            reason = (f"{self._limit()} leaves {max(avail, 0)} for connections after a reserve of {self.reserve}"
                      f"{kept}: too few for {', '.join(wanted)} ({MIN_CAP} each at least)")
            e = FdBudgetError(f"{reason}; not starting. Raise the hard limit (systemd LimitNOFILE=, ulimit -Hn "
                              f"as root)")
            e.reason = reason           # without "not starting": a reload says it in its own words
            raise e
        rest, more = avail - sum(floor.values()), {n: wanted[n] - floor[n] for n in wanted}
        total_more = sum(more.values())
        return {n: floor[n] + more[n] * rest // total_more for n in wanted}


FD_BUDGET = FdBudget()          # the process's one budget
