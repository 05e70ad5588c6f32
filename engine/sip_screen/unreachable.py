"""ICMP errors about what the screen sent over UDP: an INVITE whose next hop cannot be reached is answered 503.

Theory of operation. The screen's UDP socket is unconnected, and Linux reports an ICMP error (port, host or network
unreachable) about a datagram sent on such a socket only when IP_RECVERR is set (ip(7), udp(7)): it then queues the
error in the socket's error queue, with the destination and the start of the datagram it was about, and the next
call on the socket (a read or a send, whatever it is about) fails once with its errno. Without it a call to a next
hop with nothing listening got no answer at all: the caller retransmitted for its Timer B (32 s) and gave up with
its own 408, where a softswitch told 503 at once tries its next route (RFC 3261 §16.9, §21.5.4). So:
- `recv_errors(sock)` sets IP_RECVERR (and IPV6_RECVERR on an IPv6 socket) when the socket is bound;
- the readers (the C pump, transport.UdpEndpoint.readable) call `UdpEndpoint.drain_errors` when a read finds no
  datagram: the queue is read with recvmsg(MSG_ERRQUEUE), at most ERRQUEUE_BATCH errors a call (a queue left unread
  keeps the socket readable, and level-triggered polling would spin on it);
- a send that fails with one of STALE_SEND_ERRORS is made again, once: the error was an earlier datagram's
  (forwarding._send; _sipaddr.h pump_send);
- an error about an INVITE the screen forwarded over UDP in the last WATCH_S seconds (our Via on top, its branch in
  `unreachable_watch`, at most WATCH entries) answers it 503 (forwarding._forward_failed: the call's counts given
  back, as for a send that fails at once). Other requests (BYE, CANCEL, OPTIONS ...) and responses are left to their
  senders' timers; every error is counted (`icmp_errors`, `next_hop_unreachable`).
Cost: nothing per datagram received; per INVITE forwarded over UDP one dict entry (the bytes sent, kept WATCH_S
seconds); per ICMP error one recvmsg, a regex over the quoted start of the datagram and, for one of ours, a parse.
"""
from __future__ import annotations

import errno
import os
import re
import socket
import struct
import time

from ..listen import addr_text
from .codec import parse_datagram
from .settings import BRANCH_PREFIX

WATCH = 2048            # INVITEs forwarded over UDP an ICMP error may be about, at most (the oldest forgotten first)
WATCH_S = 4.0           # seconds one is: an ICMP error comes back within a round trip
ERRQUEUE_BATCH = 64     # errors read from the queue per call
QUOTE_MAX = 2048        # bytes of the quoted datagram read (IPv4 quotes ~550, IPv6 ~1,230)
# a send failing with these may be reporting an earlier datagram's ICMP error (IP_RECVERR): sent again once
STALE_SEND_ERRORS = frozenset((errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN,
                               errno.EPROTO))
_ANSWERED = frozenset((errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN))
_SOL_IP, _IP_RECVERR, _SOL_IPV6, _IPV6_RECVERR = 0, 11, 41, 25     # <linux/in.h>, <linux/in6.h>
_ORIGIN_ICMP = (2, 3)   # sock_extended_err.ee_origin: SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 (not a local error)
_EE = struct.Struct("=IB")                              # ee_errno, ee_origin: the start of sock_extended_err
# our Via is the first: the branch of the first Via of the quoted request, when it is one of ours
_FIRST_BRANCH = re.compile(rb"\r\n(?:[Vv][Ii][Aa]|[Vv])[ \t]*:[^\r\n]*?;[ \t]*branch=("
                           + re.escape(BRANCH_PREFIX.encode()) + rb"[^;,\s]*)")


def recv_errors(sock: socket.socket) -> bool:
    """IP_RECVERR on `sock` (both options on an IPv6 socket: a dual-stack one sends to IPv4 peers too); False
    where the system has neither (no ICMP error is seen there, as before)."""
    opts = [(_SOL_IP, _IP_RECVERR)] + ([(_SOL_IPV6, _IPV6_RECVERR)] if sock.family == socket.AF_INET6 else [])
    done = False
    for level, opt in opts:
        try:
            sock.setsockopt(level, opt, 1)
            done = True
        except OSError:
            pass
    return done


def icmp_errno(ancdata) -> int:
    """The errno of an ICMP error read from the error queue (recvmsg's ancillary data), 0 for a local one."""
    for level, kind, data in ancdata:
        if (level, kind) in ((_SOL_IP, _IP_RECVERR), (_SOL_IPV6, _IPV6_RECVERR)) and len(data) >= _EE.size:
            err, origin = _EE.unpack_from(data)
            return err if origin in _ORIGIN_ICMP else 0
    return 0


def read_errors(sock: socket.socket, on_error) -> int:
    """Up to ERRQUEUE_BATCH errors read from `sock`'s error queue, each ICMP one given to on_error(quoted datagram,
    its destination, errno). How many were read."""
    n = 0
    for n in range(1, ERRQUEUE_BATCH + 1):
        try:
            data, anc, _flags, addr = sock.recvmsg(QUOTE_MAX, 512, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return n - 1
        except OSError:                 # (no error queue on this socket, this system)
            return n - 1
        err = icmp_errno(anc)
        if err:
            on_error(data, addr, err)
    return n


class Unreachable:
    """Mixin of `SipScreen`: the INVITEs forwarded over UDP an ICMP error may be about, and the 503 it makes."""

    def _watch_unreachable(self, branch: str, data: bytes, msg, back) -> None:
        """An INVITE (`msg`) forwarded over UDP as `data` under our `branch`, from `back` (transport, source,
        connection). Kept as the bytes sent and what a failed forward needs (its counts, a retry's verdict): not the
        parsed message, whose lists the collector would walk for WATCH_S seconds (2,048 of them at ~500 calls/s)."""
        w = self.unreachable_watch
        now = time.monotonic()
        while w:
            k = next(iter(w))
            if len(w) < WATCH and w[k][4] > now:
                break
            del w[k]
        charge, replay_of = msg.charge, msg.replay_of
        was = w.pop(branch, None)
        if was is not None and charge is None:
            # a copy (the caller's retransmission, forwarded on the same branch, counts nothing): the call's counts
            # stay with it, for an ICMP error about the first copy that comes after it (an ARP failure: ~3 s)
            charge, replay_of = was[2], was[3] if replay_of is None else replay_of
        w[branch] = (data, back, charge, replay_of, now + WATCH_S)     # (re-put last: the order stays by expiry)

    def on_icmp_error(self, quoted: bytes, dest, err: int) -> None:
        """An ICMP error (`err`) came back about a datagram we sent to `dest`, of which `quoted` is the start."""
        self.stats["icmp_errors"] += 1
        if err not in _ANSWERED or not quoted.startswith(b"INVITE "):
            return
        m = _FIRST_BRANCH.search(quoted)
        ent = self.unreachable_watch.pop(m.group(1).decode("latin-1"), None) if m else None
        if ent is None or ent[4] < time.monotonic():
            return
        data, back, charge, replay_of, _ = ent
        msg = parse_datagram(data)
        msg.our_via, msg.charge, msg.replay_of = True, charge, replay_of
        self.stats["next_hop_unreachable"] += 1
        self._forward_failed(msg, back, f"next hop {addr_text(*dest[:2])} unreachable: {os.strerror(err)}")
