"""Fair shares of the SIP screen's time between the sources of new calls, under overload. No I/O.

Theory of operation: over UDP the kernel's receive buffer is the screen's only queue, and it drops what
does not fit whoever sent it: one peer flooding INVITEs (a misbehaving softswitch, a dialler, an attack)
takes the screen's whole capacity, and the other peers' calls are dropped in proportion to their share of
the traffic -- a peer sending 1 call in 1,000 gets about 1 in 1,000 of its calls judged. So the screen counts
the INVITEs each source (address; an IPv6 one by its /64, engine/sourcekey.py) offers in a window of WINDOW seconds (`SourceShares`), and while it is
behind (the socket has not been found empty for `overload_after` seconds: transport.UdpEndpoint.behind_since;
and for HOLD seconds after that was last seen, while a round finds it not empty: dropping the flood soon empties
the socket, and while it is found empty the screen has time for every INVITE; the hold is renewed while the window
before dropped unread at least as many INVITEs as it let be judged, `shedding`: lapsed under a flood, the screen
judged it again and the kernel dropped everyone's INVITEs until it was behind for `overload_after` once more),
an INVITE from a source over its fair share -- more than the window's INVITEs divided by the sources that
sent them (or that sent INVITEs in the window before, if more), and more than MIN_COUNT -- is dropped before it is parsed (a few microseconds where parsing and
judging it costs a hundred or more), counted as `overload_source_dropped` and said in the service log at most
once a second. Its sender retransmits it (RFC 3261 Timer A) as it would after a kernel drop. The other
sources' INVITEs are read and judged, so a flood from one address no longer decides who else gets through.
A single source is never over its share (one softswitch carrying all the traffic is overloaded as before);
among several, the largest are cut back first (max-min fairness). Only new INVITEs and, while `judge_messages` is
on, MESSAGEs (judged at an INVITE's cost, in a dialog or not: server.on_datagram) are counted, in one count, and
dropped: other in-dialog requests and responses never are. At most MAX_SOURCES addresses are counted in a window (a
flood of spoofed addresses: the addresses past that are not counted apart, and never over their share).
"""
from __future__ import annotations

from ..sourcekey import source_key

WINDOW = 1.0                    # seconds a window of counts covers
HOLD = 2.0                      # seconds the screen stays overloaded after it was last seen behind
MIN_COUNT = 64                  # INVITEs a source may always offer in a window before a share applies
MAX_SOURCES = 4_096             # source addresses counted in one window (bounded memory: ~0.5 MB)


class SourceShares:
    """INVITEs offered per source address in the current window; time is an argument."""

    __slots__ = ("counts", "total", "window_end", "before", "shed", "last")

    def __init__(self):
        self.counts: dict = {}
        self.total = 0
        self.window_end = 0.0
        self.before = 0                 # sources the previous window counted: a window starts with them
        self.shed = 0                   # INVITEs of this window dropped unread (the screen counts them: `dropped`)
        self.last = (0, 0)              # the window before's (total, shed), if it ended less than a window ago

    def dropped(self) -> None:
        """One INVITE counted in this window was dropped unread (over its share while the screen was behind)."""
        self.shed += 1

    def shedding(self) -> bool:
        """Whether the window before dropped unread at least as many INVITEs as it let be judged: the flood still
        outweighs what the screen judges (what overload.py `_behind` renews its hold on)."""
        total, shed = self.last
        return shed > 0 and 2 * shed >= total

    def over_share(self, source: str, now: float) -> bool:
        """Count one INVITE from `source`; whether that source is now over its fair share of the window.
        An IPv6 source is counted by its /64 (engine/sourcekey.py): one party holds all of it."""
        if ":" in source:                # (IPv4: no call on the per-INVITE path)
            source = source_key(source)
        if now >= self.window_end:
            # (the sources of the window before are taken as still there until this one has seen as many: a
            # flood is not a lone source, and judged in full, until the others' first INVITE of the window)
            recent = now < self.window_end + WINDOW
            self.before = len(self.counts) if recent else 0
            self.last = (self.total, self.shed) if recent else (0, 0)
            self.counts.clear()
            self.total, self.shed, self.window_end = 0, 0, now + WINDOW
        self.total += 1
        counts = self.counts
        c = counts.get(source)
        if c is None:
            if len(counts) >= MAX_SOURCES:
                return False
            c = 0
        c += 1
        counts[source] = c
        return c > MIN_COUNT and c * max(len(counts), self.before) > self.total
