"""What the SIP screen holds for writing to its TCP peers, all connections together (tcp.py: one connection's
bounds, WRITE_HIGH and WRITE_MAX).

Theory of operation: one connection may hold WRITE_MAX bytes its peer has not read, and with the connection caps
(bounds.py: inbound and outbound, over a thousand each) that is gigabytes a set of peers that never read could make
the element hold -- the SMPP proxy in the same process. So what is held for writing is bounded in all too, by
`max_tcp_write_buffered` (sip.toml). What a connection holds is what its peer has not acknowledged of what we wrote
(tcp.py `unacked`): asyncio's buffer, and the kernel's send queue (TIOCOUTQ), which Linux grows to 4 MB a socket
(tcp_wmem) for a peer that reads nothing -- four times WRITE_MAX, in the host's memory. The total is kept as it
goes, O(1) per write (an ioctl): each connection's as last seen (`TcpConnection.held`: after each write of ours, at
its water marks, at each sweep), summed in `total`. It grows by our writes only and drains unannounced, so `total`
may be above the truth, never below it; it is made exact -- the connections holding bytes looked at again -- only
when a write would take it over the bound. If it is over still, a connection whose peer is not reading what we
send is closed: of those holding half the average or more (the one written to counting its write), the one whose
peer has taken nothing of what it holds for the longest (`progress_at`: a trunk with megabytes in flight takes
them all the time, a peer that never reads never does; of equals, the one written to). It is reset, so the kernel
lets go of its queue too (TcpConnection.abort; when asyncio closes the socket, at the end of the loop's turn),
counted as `tcp_write_evicted` and said in the service log at most once a second with its peer, until the write
fits. When that is the connection written to, the message is not written and the caller handles it as a write
over WRITE_MAX (a forwarded request's sender gets 503, a response is lost as on a connection that closes). Each
eviction lets go of at least half the average of what the connections hold, so the look at every connection
holding bytes (O(those)) is paid once per that many bytes written, at the bound only.
"""
from __future__ import annotations

import time

from ..listen import addr_text


class WriteBudget:
    """The bytes queued for writing to every TCP connection of a screen (`total`), within max_tcp_write_buffered."""

    def __init__(self, screen):
        self.screen = screen
        self.total = 0                      # sum of `held` over the connections (what each held when last seen)
        self.holding: dict = {}             # the connections with `held` > 0, in the order they began to hold
        # bytes of the messages waiting for outbound connects (forwarding.Waiting), all destinations together: within
        # max_tcp_write_buffered too, apart from `total` (a connect in flight has no connection to close for room)
        self.waiting = 0

    def seen(self, conn, size: int, wrote: int = 0) -> None:
        """`conn` holds `size` bytes now, having been written `wrote` since it was last seen: whatever is less than
        both was taken by its peer (its `progress_at`, as when it begins to hold)."""
        if size < conn.held + wrote or not conn.held:
            conn.progress_at = time.monotonic()
        self.total += size - conn.held
        conn.held = size
        if size:
            if conn not in self.holding:
                self.holding[conn] = None
        else:
            self.holding.pop(conn, None)

    def look(self, conn, wrote: int = 0) -> int:
        """What `conn` holds for writing looked at now, and returned (tcp.py unacked: asyncio's buffer and the
        kernel's send queue; 0 once an abort let go of it); `wrote`: as seen()'s."""
        n = conn.unacked()
        self.seen(conn, n, wrote)
        return n

    def refresh(self) -> None:
        """`total` made exact: each connection holding bytes looked at again (the sweeper, and at the bound)."""
        for c in list(self.holding):
            self.look(c)

    def room(self, conn, n: int) -> bool:
        """Whether `n` more bytes may be queued to `conn`. At the bound the connections holding most are closed
        until they fit (theory of operation above); False when `conn` itself is."""
        bound = self.screen.s.max_tcp_write_buffered
        if self.total + n <= bound:
            return True
        self.refresh()
        while self.total + n > bound and self.holding:
            # of those holding half the average or more (`conn` with the write), the one whose peer has taken
            # nothing for the longest: a trunk with megabytes in flight is taking them, one that never reads is not.
            # `conn` is one only while it holds bytes already: one that holds nothing has taken all it was given
            # (its progress_at is when it last drained, maybe long ago: a healthy trunk was closed for stuck peers)
            least = (self.total + n) / (len(self.holding) + (conn not in self.holding)) / 2
            victim = conn if conn.held and conn.held + n >= least else None
            for c in self.holding:
                if c.held >= least and (victim is None or c.progress_at < victim.progress_at):
                    victim = c
            if victim is None:              # (a write larger than all of them together: the oldest holder goes)
                victim = min(self.holding, key=lambda c: c.progress_at)
            self.evict(victim)
            if victim is conn:
                return False
        return self.total + n <= bound

    def evict(self, conn) -> None:
        s = self.screen
        s.stats["tcp_write_evicted"] += 1
        s._warn("tcp_write", "closing TCP connection with %s: it leaves %d bytes of ours unread and the SIP TCP "
                "connections hold max_tcp_write_buffered (%d bytes) for writing (so far: tcp_write_evicted %d)",
                addr_text(*conn.peer[:2]), conn.held, s.s.max_tcp_write_buffered, s.stats["tcp_write_evicted"])
        conn.abort()                        # its buffer let go at once (asyncio's abort), its place in `total` too
        self.seen(conn, 0)
