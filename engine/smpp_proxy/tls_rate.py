"""The rate of TLS handshakes on the ESME side's TLS listener, decided at accept, before any handshake work.

A full TLS handshake costs the event loop far more than anything else an ESME can ask for: ~0.45 ms of CPU
(ECDSA P-256, TLS 1.3; ~0.76 ms RSA-2048; 1.0-1.6 ms with a client certificate to verify), so ~2,000 ClientHellos
a second from anywhere took the whole loop, every SMPP session and the SIP screen with it. The connection caps
(admission.py) bound connections at once, not their rate: a peer that closes after its ClientHello is under
every cap. Two token buckets: one per source address (`tls_handshakes_per_source` a second, a burst of
`tls_handshakes_per_source_burst`, so an ESME binding all its connections after a restart is not refused) and
one for the listener (`tls_handshakes_per_second`, a burst of one second of it), which bounds what many sources
together can take. A connection over either is reset at once (no handshake, not even a TLS alert: an alert is
written after reading the ClientHello) and counted (`tls_handshakes_refused`). A refusal costs an accept, the
bucket check (~0.7 µs, timeit) and a close: 50-90 µs of the loop thread's CPU a connection measured on loopback
(most of it the kernel's accept and reset; accepting up to 16 a turn instead of one did not lower it), against
0.5-0.7 ms a handshake. So a bare connect flood of ~10,000 a second still takes most of the loop: limiting the
rate of SYNs is the firewall's job (README, Known limits). A source's token is taken only if the listener has one too, so a flood from
elsewhere does not use up an ESME's own burst.

Per-source state is bounded: at most MAX_SOURCES addresses (LRU: the least recently seen is forgotten; a source
forgotten comes back with a full burst, which only a flood from more than MAX_SOURCES addresses can use, and the
listener's bucket still bounds it). Each `serve --workers N` process has its own buckets: N times the rates.

Session resumption: Python's ssl (OpenSSL 3) issues session tickets by default (2 a handshake in TLS 1.3), and a
client that offers one skips the certificate work; measured in-process (memory BIOs,
ECDSA P-256, two runs) at 0.38-0.50 -> 0.26-0.33 ms of server CPU (TLS 1.3), 1.05-1.59 -> 0.62-0.63 ms with a
client certificate. Most ESMEs (smpplib, which wraps each new socket without a session) do not offer one. A resumed handshake takes a token like any other: the
decision is made before the ClientHello is read.
"""
from __future__ import annotations

import logging
import socket
import struct
from collections import OrderedDict

from ..servicelog import LogThrottle
from ..sourcekey import source_key

MAX_SOURCES = 4096          # per-source buckets remembered (~150 bytes each: under 1 MB)
LOG_EVERY = 10.0            # seconds: refusals are logged at most this often, with their count
_RESET = struct.pack("ii", 1, 0)    # SO_LINGER on, 0 s: close() sends a RST and leaves no TIME_WAIT here

log = logging.getLogger("telfilter.smpp")


class HandshakeRate:
    """admit(host, now) -> may a connection from `host` be handshaked now? `now`: a monotonic clock in seconds."""

    def __init__(self, per_second: float, per_source: float, per_source_burst: int, max_sources: int = MAX_SOURCES):
        self.rate, self.burst = per_second, max(1.0, per_second)
        self.tokens, self.t = self.burst, None
        self.source_rate, self.source_burst = per_source, float(max(1, per_source_burst))
        self.sources: OrderedDict[str, list] = OrderedDict()      # host -> [tokens, when], least recently seen first
        self.max_sources = max_sources

    def admit(self, host: str, now: float) -> bool:
        host = source_key(host)             # an IPv6 peer by its /64 (engine/sourcekey.py)
        if self.t is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        b = self.sources.get(host)
        if b is None:
            b = self.sources[host] = [self.source_burst, now]
            if len(self.sources) > self.max_sources:
                self.sources.popitem(last=False)
        else:
            self.sources.move_to_end(host)
            b[0] = min(self.source_burst, b[0] + (now - b[1]) * self.source_rate)
            b[1] = now
        if b[0] < 1 or self.tokens < 1:
            return False
        b[0] -= 1
        self.tokens -= 1
        return True


class Refusals:
    """Connections refused by the rate: reset at once, counted in `stats`, logged at most every LOG_EVERY s."""

    def __init__(self, stats):
        self.stats, self.lines = stats, LogThrottle(LOG_EVERY)

    def refuse(self, conn: socket.socket, host: str, now: float) -> None:
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        except OSError:                 # the peer is gone already: a plain close
            pass
        conn.close()
        self.stats["tls_handshakes_refused"] += 1
        n = self.lines.due(now)
        if n:
            log.warning("TLS listener: %d connection(s) refused before their handshake since the last such line: "
                        "over tls_handshakes_per_source or tls_handshakes_per_second (the last from %s)", n, host)
