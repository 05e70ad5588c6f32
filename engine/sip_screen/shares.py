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
on, MESSAGEs (judged as an INVITE is, in a dialog or not: server.on_datagram) are counted, in one count, and
dropped: other in-dialog requests and responses never are. Those that come over TCP are counted in the same count by
their connection's peer address, and never dropped (TCP does not retransmit): a connection of a source over its share
is served after the others', with an eighth of a round at least, at most while the screen is behind (tcprounds.py
TcpRounds; `over` asks it). At most MAX_SOURCES addresses are counted in a window (a
flood of spoofed addresses: the addresses past that are not counted apart, and never over their share).

The counts are of cost units, not of requests: an INVITE or a plain MESSAGE is one unit (~50 µs of judging), and a
MESSAGE whose body turned out to cost more -- a gzip body inflating to 8 KiB of text (~0.9 ms), a multipart of 16
parts (~0.25 ms) -- is charged the rest once it is read (`cost`, `charge`): judging grows with the text and the parts
read, ~0.11 µs a character and ~6 µs a part. It was counted as one request whatever it cost, so a source sending
expensive MESSAGEs had up to MIN_COUNT of them judged in each window (~60 ms of judging at 8 KiB each) and its fair
share of requests, each worth ten or twenty of another source's. Its next request is dropped once its units pass
its share, so it gets fewer of them through in proportion. Whether the screen is `shedding` is still counted in
requests (it compares requests dropped unread, whose cost is unknown, with the UDP requests offered).
"""
from __future__ import annotations

from ..sourcekey import source_key

WINDOW = 1.0                    # seconds a window of counts covers
HOLD = 2.0                      # seconds the screen stays overloaded after it was last seen behind
MIN_COUNT = 64                  # units (INVITEs) a source may always offer in a window before a share applies
MAX_SOURCES = 4_096             # source addresses counted in one window (bounded memory: ~0.5 MB)
COST_CHARS = 512                # characters of text judged that cost about one INVITE more (~0.11 µs each)
PART_CHARS = 64                 # what one more body part read costs, in characters of text (~6 µs)
COST_OCTETS = 4096              # octets of body read (decoded, split) that cost about one INVITE more (~10 ns each)


def cost(chars: int, parts: int = 1, octets: int = 0) -> int:
    """The units a MESSAGE judged on `chars` characters of text read from `parts` body parts of `octets` in all
    costs: one (an INVITE's, a text up to COST_CHARS long: an SMS, a concatenated one of three parts), one more a
    COST_CHARS; and at least one more a COST_OCTETS of body read, judged or not (a body of base64 octets is read
    whole, its text found short, absent or undecodable: 0.5 ms for 61 KB, ~12 INVITEs, was charged one)."""
    return max(1 + (chars + PART_CHARS * (parts - 1)) // COST_CHARS, 1 + octets // COST_OCTETS)


class SourceShares:
    """Cost units (INVITEs, MESSAGEs by their cost) offered per source address in the current window; time is an
    argument."""

    __slots__ = ("counts", "total", "offered", "window_end", "before", "shed", "last")

    def __init__(self):
        self.counts: dict = {}          # source -> its units in this window
        self.total = 0                  # units in this window, of every source
        self.offered = 0                # UDP requests counted in this window (one each, whatever their cost)
        self.window_end = 0.0
        self.before = 0                 # sources the previous window counted: a window starts with them
        self.shed = 0                   # INVITEs of this window dropped unread (the screen counts them: `dropped`)
        self.last = (0, 0)              # the window before's (offered, shed), if it ended less than a window ago

    def dropped(self) -> None:
        """One INVITE counted in this window was dropped unread (over its share while the screen was behind)."""
        self.shed += 1

    def shedding(self) -> bool:
        """Whether the window before dropped unread at least as many INVITEs as it let be judged: the flood still
        outweighs what the screen judges (what overload.py `_behind` renews its hold on)."""
        offered, shed = self.last
        return shed > 0 and 2 * shed >= offered

    def over_share(self, source: str, now: float, offered: bool = True) -> bool:
        """Count one INVITE from `source`; whether that source is now over its fair share of the window.
        An IPv6 source is counted by its /64 (engine/sourcekey.py): one party holds all of it. `offered`: it is also
        counted among the requests `shedding` weighs the drops against -- not one that came over TCP, never dropped
        unread (a TCP trunk beside a UDP flood made the flood look small, and the hold lapsed while it was dropped)."""
        if ":" in source:                # (IPv4: no call on the per-INVITE path)
            source = source_key(source)
        if now >= self.window_end:
            # (the sources of the window before are taken as still there until this one has seen as many: a
            # flood is not a lone source, and judged in full, until the others' first INVITE of the window)
            recent = now < self.window_end + WINDOW
            self.before = len(self.counts) if recent else 0
            self.last = (self.offered, self.shed) if recent else (0, 0)
            self.counts.clear()
            self.total, self.offered, self.shed, self.window_end = 0, 0, 0, now + WINDOW
        self.total += 1
        if offered:
            self.offered += 1
        counts = self.counts
        c = counts.get(source)
        if c is None:
            if len(counts) >= MAX_SOURCES:
                return False
            c = 0
        c += 1
        counts[source] = c
        return c > MIN_COUNT and c * max(len(counts), self.before) > self.total

    def over(self, source: str, now: float) -> bool:
        """Whether `source` is over its fair share of the window, counting nothing (a TCP connection's turn asks it
        before its next message is read: tcprounds.py). A window that has ended counts nobody over."""
        if now >= self.window_end:
            return False
        if ":" in source:
            source = source_key(source)
        c = self.counts.get(source)
        return c is not None and c > MIN_COUNT and c * max(len(self.counts), self.before) > self.total

    def charge(self, source: str, units: int) -> None:
        """`units` more for `source`'s request counted last (over_share): what reading it showed it costs beyond one
        (`cost`). Nothing for a source not counted apart in this window (past MAX_SOURCES, or not counted at all:
        judge_messages off)."""
        if ":" in source:
            source = source_key(source)
        c = self.counts.get(source)
        if c is not None and units > 0:
            self.counts[source] = c + units
            self.total += units
