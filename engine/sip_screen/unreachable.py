"""ICMP errors about what the screen sent over UDP: a request whose next hop cannot be reached is answered 503.

Theory of operation. The screen's UDP socket is unconnected, and Linux reports an ICMP error (port, host or network
unreachable) about a datagram sent on such a socket only when IP_RECVERR is set (ip(7), udp(7)): it then queues the
error in the socket's error queue, with the destination and the start of the datagram it was about, and the next
call on the socket (a read or a send, whatever it is about) fails once with its errno. Without it a call to a next
hop with nothing listening got no answer at all: the caller retransmitted for its Timer B (32 s) and gave up with
its own 408, where a softswitch told 503 at once tries its next route (RFC 3261 §16.9, §21.5.4). So:
- `recv_errors(sock)` sets IP_RECVERR (and IPV6_RECVERR on an IPv6 socket) when the socket is bound;
- the readers (the C pump, transport.UdpEndpoint.readable) call `UdpEndpoint.drain_errors` when a read finds no
  datagram, and, reads finding datagrams (a busy screen's always do), at the first round ERRQUEUE_BUSY_S or more
  after the queue was last looked at (the pump first asks poll(2) whether an error waits: one syscall, no Python
  call). So an error is acted on within ERRQUEUE_BUSY_S and one round (at most PUMP_BATCH datagrams, and what else
  the loop runs before the next), whatever the load. Before, a busy screen read the queue at its first idle moment
  only: the errno that an error also reports to the next call on the socket was taken by a send (made again,
  below), so no read ever failed, and an INVITE forwarded more than WATCH_S before that moment was never answered.
  The queue is read with recvmsg(MSG_ERRQUEUE), at most ERRQUEUE_BATCH errors a call (a queue left unread keeps
  the socket readable, and level-triggered polling would spin on it);
- a send that fails with one of STALE_SEND_ERRORS is made again, once: the error was an earlier datagram's
  (forwarding._send; _sipaddr.h pump_send);
- an error about a request the screen forwarded over UDP in the last WATCH_S seconds answers it 503, once: an
  INVITE (forwarding._forward_failed: the call's counts given back and its call_unsent line written, as for a send
  that fails at once) or any other
  request but an ACK, which is never answered (BYE, CANCEL, OPTIONS ...: RFC 3261 §16.7 step 10 and §16.9 treat a
  transport error on forwarding as a 503; before, they were left to their senders' Timer F, 32 s). What the
  Python paths forward is kept in `unreachable_watch` (a Watch, at most WATCH entries: its method and our branch
  -> the bytes sent); what the C pump relays itself (in-dialog requests) in its own ring of as many (_sipwatch.h:
  the datagram as received and its source), asked by `Pump.unreachable(branch)`. A retransmission, forwarded on
  the same branch, takes the place of the copy before it (the pump: all copies answer once), so an error about
  each copy still answers once; a copy forwarded after the 503 may get the same 503 again (our To tag is a
  function of the request: the same answer, as a stateful proxy's to a retransmission) -- an INVITE's copy is not
  forwarded after it: that 503 is its transaction's, given again (forwarding.UNSENT). Responses are left alone;
  every error is counted (`icmp_errors`, and those answered `next_hop_unreachable`).
Cost: nothing per datagram received; per request forwarded over UDP one entry (Python: a dict entry and a deque
item; the pump: two references and 20 bytes in a ring slot), O(1), kept WATCH_S seconds; per ICMP error one
recvmsg, a regex over the quoted start of the datagram and, for one of ours, a parse (the pump's ring: a scan of
its WATCH slots).
"""
from __future__ import annotations

import errno
import os
import re
import socket
import struct
import time
from collections import deque

from ..listen import addr_text
from ..verdict import Call
from .codec import parse_datagram
from .settings import BRANCH_PREFIX

WATCH = 2048            # requests forwarded over UDP an ICMP error may be about, at most (the oldest forgotten first;
                        # as many again in the C pump's ring: PUMP_WATCH, _sipwatch.h)
WATCH_S = 4.0           # seconds one is: an ICMP error comes back within a round trip
ERRQUEUE_BATCH = 64     # errors read from the queue per call
ERRQUEUE_BUSY_S = 0.01  # seconds at most between two looks at the queue while every read finds datagrams (the C
                        # pump's PUMP_ERRQ_BUSY_S): a look that finds nothing costs one syscall
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


class Watch(dict):
    """method + " " + our branch -> (bytes sent, back, charge, replay_of, until, key, logged: an INVITE's verdict-line
    time, caller, callee and ingress, for its call_unsent line, tx: its transaction key) of the requests forwarded over
    UDP in the last WATCH_S seconds, at most WATCH. `order` holds the entries as put, the oldest first: a put forgets
    from its front what has expired or is over WATCH -- an entry whose key was put again since (a copy) is passed
    over --, O(1) a put (the dict's own first key is no queue: each deleted one leaves a hole that next(iter())
    steps over, until the next resize). No object of its own per entry: the collector walks what it holds."""
    __slots__ = ("order",)

    def __init__(self):
        super().__init__()
        self.order = deque()

    def put(self, ent, now: float) -> None:
        order = self.order
        while order and (len(order) >= WATCH or order[0][4] <= now):
            old = order.popleft()
            if self.get(old[5]) is old:
                del self[old[5]]
        self[ent[5]] = ent
        order.append(ent)


class Unreachable:
    """Mixin of `SipScreen`: the requests forwarded over UDP an ICMP error may be about, and the 503 it makes."""

    def _watch_unreachable(self, branch: str, data: bytes, msg, back, now=None) -> None:
        """A request (`msg`, not an ACK) forwarded over UDP as `data` under our `branch`, from `back` (transport,
        source, connection). Kept as the bytes sent and what a failed forward needs (an INVITE's counts, a retry's
        verdict): not the parsed message, whose lists the collector would walk for WATCH_S seconds (2,048 of them at
        ~500 calls/s). Keyed by method too: a CANCEL has its INVITE's branch (§9.1). A str key, no tuple of its own:
        each tracked object the watch holds is walked by every full collection (a key tuple and an order tuple a
        request cost each INVITE ~4,500 instructions more, instrbench). `now`: the monotonic clock, when the caller
        read it."""
        w = self.unreachable_watch
        if now is None:
            now = time.monotonic()
        key = msg.method + " " + branch
        charge, replay_of, call = msg.charge, msg.replay_of, msg.logged
        # its verdict line's call as atomic values, which the collector stops tracking (the Call, held WATCH_S seconds,
        # was walked by every collection: ~2,000 instructions an INVITE, instrbench)
        logged = (call.time, call.caller, call.callee, call.ingress) if call is not None and call is not True else None
        was = w.pop(key, None)
        if was is not None and charge is None:
            # a copy (the caller's retransmission, forwarded on the same branch, counts nothing): the call's counts
            # stay with it, for an ICMP error about the first copy that comes after it (an ARP failure: ~3 s)
            charge, replay_of = was[2], was[3] if replay_of is None else replay_of
        if was is not None and logged is None:          # (and its verdict line's Call: calllog._unsent_logged)
            logged = was[6]
        w.put((data, back, charge, replay_of, now + WATCH_S, key, logged, msg.tx), now)

    def _watch_sent(self, method: str, branch: str, data: bytes, back) -> None:
        """An in-dialog request the Python fast path forwarded over UDP (proxying._in_dialog): as _watch_unreachable,
        with no counts."""
        now = time.monotonic()
        self.unreachable_watch.put((data, back, None, None, now + WATCH_S, method + " " + branch, None, None), now)

    def on_icmp_error(self, quoted: bytes, dest, err: int) -> None:
        """An ICMP error (`err`) came back about a datagram we sent to `dest`, of which `quoted` is the start."""
        self.stats["icmp_errors"] += 1
        sp = quoted.find(b" ", 0, 32)
        if err not in _ANSWERED or sp < 1 or quoted[:4] == b"SIP/" or quoted[:sp] == b"ACK":
            return                                      # (a response, an ACK: never answered)
        m = _FIRST_BRANCH.search(quoted)
        if m is None:
            return
        method, branch = quoted[:sp].decode("latin-1"), m.group(1).decode("latin-1")
        why = f"next hop {addr_text(*dest[:2])} unreachable: {os.strerror(err)}"
        ent = self.unreachable_watch.pop(method + " " + branch, None)
        if ent is not None and ent[4] >= time.monotonic():
            data, back, charge, replay_of = ent[:4]
            msg = parse_datagram(data)
            msg.our_via, msg.charge, msg.replay_of, msg.tx = True, charge, replay_of, ent[7]
            if ent[6] is not None:                      # (its verdict line's call: calllog._unsent_logged)
                t, caller, callee, ingress = ent[6]
                msg.logged = Call(caller, callee, t, ingress)
            self.stats["next_hop_unreachable"] += 1
            return self._forward_failed(msg, back, why)
        pump = getattr(self.udp, "pump", None)
        if pump is None or method in ("INVITE", "CANCEL"):      # (the pump relays neither)
            return
        got = pump.unreachable(branch[len(BRANCH_PREFIX):])    # an in-dialog request the pump relayed (_sipwatch.h)
        if got is not None:
            self.stats["next_hop_unreachable"] += 1
            self._fail(parse_datagram(got[0]), "UDP", got[1], None, why)    # (as received: no Via of ours)
