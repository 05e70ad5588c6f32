"""The SMPP ceiling: a lean responder (SMSC) and a raw forwarder, each a few lines of uvloop.

    python -m benchmarks.smpp_peers responder PORT            answers every request at once
    python -m benchmarks.smpp_peers forwarder PORT UPSTREAM   relays PDUs between an ESME and the SMSC

Theory of operation: both only frame the TCP stream by command_length (SMPP 3.4 §3.2: the
first 4 octets of every PDU) and read command_id and sequence_number; neither decodes a body.
The responder answers bind_* with *_resp, submit_sm/data_sm with a message_id, enquire_link and
unbind, all the answers to one read in one write. The forwarder opens one upstream connection
per ESME connection and moves whole PDUs both ways (sequence numbers unchanged, since the pairing
is one to one); it is what any Python proxy with SMPP framing must at least spend, so telfilter's
CPU per submit_sm is read against it. Both bind 127.0.0.1 only and run until SIGTERM.
"""
from __future__ import annotations

import asyncio
import signal
import socket
import struct
import sys

_HDR = struct.Struct(">IIII")
_RESP_BIT = 0x80000000
SUBMIT_SM, DATA_SM, DELIVER_SM = 0x00000004, 0x00000103, 0x00000005
BIND = {0x00000001, 0x00000002, 0x00000009}
ENQUIRE_LINK, UNBIND = 0x00000015, 0x00000006


def frames(buf: bytearray):
    """Yield (offset, length, command_id, sequence_number) of every complete PDU in buf;
    the caller drops the consumed prefix (returned last as an int)."""
    off, n = 0, len(buf)
    while n - off >= 16:
        length, cid, _, seq = _HDR.unpack_from(buf, off)
        if length < 16:
            raise ValueError(f"command_length {length} < 16")
        if n - off < length:
            break
        yield off, length, cid, seq
        off += length
    yield off


class Responder(asyncio.Protocol):
    count = 0

    def connection_made(self, t):
        self.t, self.buf = t, bytearray()
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        buf = self.buf
        buf += data
        out = []
        it = frames(buf)
        for f in it:
            if type(f) is int:
                del buf[:f]
                break
            _, _, cid, seq = f
            if cid in (SUBMIT_SM, DATA_SM):
                Responder.count += 1
                mid = b"%x\0" % Responder.count
                out.append(_HDR.pack(16 + len(mid), cid | _RESP_BIT, 0, seq) + mid)
            elif cid in BIND:
                out.append(_HDR.pack(16 + 5, cid | _RESP_BIT, 0, seq) + b"SIMS\0")
            elif cid in (ENQUIRE_LINK, UNBIND):
                out.append(_HDR.pack(16, cid | _RESP_BIT, 0, seq))
            elif not cid & _RESP_BIT:
                out.append(_HDR.pack(16, 0x80000000, 0x00000003, seq))       # generic_nack, ESME_RINVCMDID
        if out:
            self.t.write(b"".join(out))


class _Half(asyncio.Protocol):
    """One direction's socket of a forwarded pair; complete PDUs go to `peer`."""

    def __init__(self, pair=None):
        self.peer, self.buf, self.pending, self.t = None, bytearray(), [], None
        self.pair = pair

    def connection_made(self, t):
        self.t = t
        t.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.pair is not None:
            asyncio.get_running_loop().create_task(self.pair(self))

    def data_received(self, data):
        buf = self.buf
        buf += data
        end = 0
        for f in frames(buf):
            if type(f) is int:
                end = f
        if end:
            chunk = bytes(buf[:end])
            del buf[:end]
            if self.peer is not None and self.peer.t is not None:
                self.peer.t.write(chunk)
            else:
                self.pending.append(chunk)

    def connection_lost(self, exc):
        if self.peer is not None and self.peer.t is not None:
            self.peer.t.close()


def _forwarder_factory(upstream_port):
    async def pair(down: _Half):
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(_Half, "127.0.0.1", upstream_port)
        except OSError:
            down.t.close()
            return
        up.peer, down.peer = down, up
        for chunk in down.pending:
            up.t.write(chunk)
        down.pending.clear()
    return lambda: _Half(pair)


def main(argv) -> None:
    import uvloop
    mode, port = argv[0], int(argv[1])

    async def serve():
        loop = asyncio.get_running_loop()
        factory = Responder if mode == "responder" else _forwarder_factory(int(argv[2]))
        srv = await loop.create_server(factory, "127.0.0.1", port)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        srv.close()
    uvloop.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
