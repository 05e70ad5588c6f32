"""The SIP floor: a trivial uvloop UDP relay, `python -m benchmarks.sip_relay PORT UAS_PORT`.

Every datagram from the UAS goes to the last client that sent one; every other datagram goes to
the UAS. No parsing, no header edits: the least any UDP SIP element written in Python spends per
message (one recvfrom, one sendto, the event loop), read next to the screen's CPU per call.
Binds 127.0.0.1 only and runs until SIGTERM.
"""
from __future__ import annotations

import asyncio
import signal
import sys


class Relay(asyncio.DatagramProtocol):
    def __init__(self, uas):
        self.uas, self.client, self.t = uas, None, None

    def connection_made(self, t):
        self.t = t

    def datagram_received(self, data, addr):
        if addr == self.uas:
            if self.client is not None:
                self.t.sendto(data, self.client)
        else:
            self.client = addr
            self.t.sendto(data, self.uas)


def main(argv) -> None:
    import uvloop
    port, uas = int(argv[0]), ("127.0.0.1", int(argv[1]))

    async def serve():
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(lambda: Relay(uas), local_addr=("127.0.0.1", port))
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        t.close()
    uvloop.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
