"""What the SIP screen holds of what its TCP peers sent and it has not handled yet, all connections together
(framing.py bounds one message; tcpwrites.py is the same for what it holds for writing).

Theory of operation: a connection's bytes wait in its parser until the scheduler (tcprounds.py TcpRounds) handles them,
and one whose messages wait is not read meanwhile, so what it holds is what it sent before it was paused: one read
and an unfinished message. asyncio's reads are of 256 KB, so with the connection caps (over a thousand in, as many
out) that was hundreds of megabytes a set of peers streaming requests could make the element hold. So a
connection reads at most READ_CHUNK at a time (about a round's messages of it, `batch_messages`), into one buffer
of the screen's (asyncio's BufferedProtocol: the bytes are copied once, into the parser), and the total is bounded
by `max_tcp_read_buffered` (sip.toml), kept as it goes (O(1) per read and per message handled): a read is no
larger than the room left, READ_LEAST at least (asyncio needs a buffer to read into), and a connection that reads
while the total is over the bound is not read again (`held_back`, counted as `tcp_read_held`) until the screen has
handled enough for a READ_CHUNK: then those held back are read again, the first held first. What they sent is
handled all the same, in turn. The total is over the bound by READ_LEAST a connection at most. A connection held
back keeps its clocks (tcp.py expired): an unfinished message it holds is closed after `tcp_incomplete_timeout` as
any, so unfinished messages cannot keep the total over the bound and every reader held back for ever.
"""
from __future__ import annotations

READ_CHUNK = 32 * 1024          # bytes read from one TCP connection at a time
READ_LEAST = 2048               # a read while the total is at the bound (then the connection is held back)


class ReadBudget:
    """The bytes read from every TCP connection of a screen and not handled yet (`total`), within
    max_tcp_read_buffered; the buffer every read goes into first."""

    def __init__(self, screen):
        self.screen = screen
        self.total = 0                      # sum of `unread` over the connections
        self.scratch = memoryview(bytearray(READ_CHUNK))    # one loop, one read at a time: one buffer
        # connections not read until there is room, the first held first (a dict: one that closes leaves it at once,
        # so connections that come, read while the total is over and go cannot make it grow)
        self.held_back: dict = {}

    def buffer(self) -> memoryview:
        """Where the next read goes: READ_CHUNK, or the room left under the bound (READ_LEAST at least)."""
        room = self.screen.s.max_tcp_read_buffered - self.total
        return self.scratch if room >= READ_CHUNK else self.scratch[:max(room, READ_LEAST)]

    def seen(self, conn) -> None:
        """`conn`'s parser holds what it holds now (after a read, after messages handled, at its end)."""
        n = len(conn.parser.buf) if conn.transport is not None and not conn.lost else 0
        self.total += n - conn.unread
        conn.unread = n

    def read(self, conn) -> None:
        """`conn` has just read: held back if that took the total over the bound."""
        self.seen(conn)
        if self.total > self.screen.s.max_tcp_read_buffered and not conn.held_back:
            conn.held_back = True
            self.held_back[conn] = None
            self.screen.stats["tcp_read_held"] += 1
            conn.update_reading()

    def release(self) -> None:
        """The connections held back read again, the first held first, one for each READ_CHUNK of room."""
        q = self.held_back
        room = self.screen.s.max_tcp_read_buffered - self.total
        while q and room >= READ_CHUNK:
            c = next(iter(q))
            del q[c]
            c.held_back = False
            c.update_reading()
            room -= READ_CHUNK

    def lost(self, conn) -> None:
        """`conn` has closed: what it held is room, it is no longer held back."""
        self.seen(conn)
        self.held_back.pop(conn, None)
        conn.held_back = False
        if self.held_back:
            self.release()
