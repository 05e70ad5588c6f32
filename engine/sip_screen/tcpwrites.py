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
when a write would take it over the bound. If it is over still, the connection holding most (counting the write
for the one written to, which goes first of equals; of the others, the one holding bytes the longest) is not
reading what we send: it is closed -- reset, so the kernel lets go of its queue too (TcpConnection.abort; when
asyncio closes the socket, at the end of the loop's turn) --,
counted as `tcp_write_evicted` and said in the service log at most once a second with its peer, until the write
fits. When that is the connection written to, the message is not written and the caller handles it as a write over
WRITE_MAX (a forwarded request's sender gets 503, a response is lost as on a connection that closes). Each eviction
lets go of at least the average of what the connections hold, so the look at every connection holding bytes
(O(those)) is paid once per that many bytes written, at the bound only.
"""
from __future__ import annotations

from ..listen import addr_text


class WriteBudget:
    """The bytes queued for writing to every TCP connection of a screen (`total`), within max_tcp_write_buffered."""

    def __init__(self, screen):
        self.screen = screen
        self.total = 0                      # sum of `held` over the connections (what each held when last seen)
        self.holding: dict = {}             # the connections with `held` > 0, in the order they began to hold

    def seen(self, conn, size: int) -> None:
        """`conn`'s write buffer is `size` bytes now."""
        self.total += size - conn.held
        conn.held = size
        if size:
            if conn not in self.holding:
                self.holding[conn] = None
        else:
            self.holding.pop(conn, None)

    def look(self, conn) -> int:
        """What `conn` holds for writing looked at now, and returned (tcp.py unacked: asyncio's buffer and the
        kernel's send queue; 0 once an abort let go of it)."""
        n = conn.unacked()
        self.seen(conn, n)
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
            victim = max(self.holding, key=lambda c: c.held + (n if c is conn else 0))
            if conn.held + n >= victim.held:
                victim = conn               # (of equals, the one written to: its write is the one over)
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
