"""SMSC side: `SmscLink` is one bind to an SMSC with its own window; `UpstreamMixin` keeps
the links bound (reconnecting with back-off) and picks one for each request."""
from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from .codec import RemoteProtocolError, SmppConnection, Window, as_request, encode
from .codec import constants as C
from .codec import pdu as P
from .stream import CoalescedStream
from .tls import smsc_start_tls

if TYPE_CHECKING:
    from .server import SmppProxy

log = logging.getLogger("telfilter.smpp")


_SUBMIT_SM_RESP, _DATA_SM_RESP = C.SUBMIT_SM_RESP, C.DATA_SM_RESP     # read on the lean path
_FAST_MAX = 4096
_HEADER = struct.Struct(">IIII").unpack_from          # command_length, command_id, command_status, sequence_number
_monotonic = time.monotonic


class _RawResp:
    """A submit_sm_resp / data_sm_resp read from its bytes: the fields the proxy uses."""

    __slots__ = ("command_id", "command_status", "sequence_number", "message_id", "raw")

    def __init__(self, command_id, command_status, sequence_number, message_id, raw):
        self.command_id, self.command_status, self.sequence_number = command_id, command_status, sequence_number
        self.message_id, self.raw = message_id, raw


LATE = -1               # on_resp(resp, LATE): the answer came after we gave up on it
MAX_LATE = 4096         # timed-out requests remembered per link, to recognise late answers
TIMEOUTS_TO_REBIND = 3  # requests timed out in a row, no answer in between: the link is closed and bound again
# a link bound this long (or at most reconnect_max) that answered nothing still starts the reconnect back-off again
STABLE_LINK = 10.0
UNPROVEN_WINDOW = 8    # requests a link bound after a half-hung one takes at once until it answers one
# The last 1/RESERVE_SHARE of a link's window is kept for light accounts while another account is bound: an
# account holding that many requests in the SMSC windows (`upstream_held`) takes a slot there only while more are
# free. Else one ESME at its throughput (or with a window larger than the link's) holds the whole window and every
# other account's messages get ESME_RTHROTTLED: a bank's OTP at 50/s beside an advertiser at its 2,000/s on a
# link of window 20 had 18-40% of its submits throttled (tenants probe); one that needs the link alone has it all.
# "Another account" is one that asked for a slot in the last RESERVE_ACTIVE seconds (a throttled attempt counts):
# kept for any bound account, the quarter stood idle beside a bound but quiet one (the flooding account's goodput
# on a saturated link fell 20-37%); now the first submit of an account quiet that long may be throttled once while
# the flooding one gives back the slots it holds over its share.
RESERVE_SHARE = 4
RESERVE_ACTIVE = 60.0
# What an ESME gets for an SMSC's ESME_RINVBNDSTS (the SMSC lost our session's bind): the SMSC did not take
# the message, so the outcome is known (ESME_RSYSERR here means "unknown": a resubmit may duplicate) and a
# retry succeeds once the link is bound again; never 0x04 itself, which would tell the ESME its own bind is wrong
BIND_LOST_STATUS = C.ESME_RTHROTTLED
_RINVBNDSTS = C.ESME_RINVBNDSTS
_BIND_LOST_BYTES = BIND_LOST_STATUS.to_bytes(4, "big")


def _keepalive(resp, status) -> None:
    """on_resp of an enquire_link: its answer says the session is up, not that messages are taken."""


class SmscLink(CoalescedStream):
    """One bind to an SMSC, with its own window.

    Liveness: `last_rx` is when the SMSC last sent anything (an enquire_link_resp too);
    `last_answer` when a request other than enquire_link last got its answer (in time or late).
    A link is `stalled`, and takes no new submits (they get a retryable status at once instead
    of waiting out the response timeout), while its last timeout is newer than its last answer,
    or while it owes answers and has answered none for `stall_after`: an SMSC that answers
    enquire_link and nothing else is not re-admitted by its keepalive. It is closed and bound
    again when it has heard nothing for enquire_link_interval + response_timeout (hung), after
    TIMEOUTS_TO_REBIND timeouts in a row, or once everything it was sent timed out and
    `stall_after` passed without a late answer (half-hung). An SMSC's unbind, or an
    ESME_RINVBNDSTS from it (it lost our bind), `retire`s the link: no new traffic, the answers
    still owed are read (and relayed) until the window is empty or `response_timeout` passed,
    then it is closed and bound again (see `UpstreamMixin._link_housekeeping`)."""

    def __init__(self, proxy: "SmppProxy", addr, kind="transceiver", name: str = ""):
        s = proxy.settings
        over = s.smsc_links.get(name, {})
        self.proxy, self.addr, self.kind = proxy, addr, kind
        self.batch = getattr(proxy, "batch", None)      # None: flushed per loop iteration (stream.py)
        # a 64 KB message_payload and its header at least, whatever max_pdu the ESME side has
        self.conn = SmppConnection(max(proxy.settings.max_pdu, 65536) + 4096)
        self.transport = None
        self.bound = False
        self.response_timeout = over.get("response_timeout", s.smsc_response_timeout)
        self.window = Window(over.get("window", s.smsc_window), self.response_timeout)
        self.id_space = over.get("id_space", "")      # message_ids unique within (msgids.py)
        self.bind_waiter: asyncio.Future | None = None
        self.lost = asyncio.get_event_loop().create_future()
        self.last_rx = self.last_probe = self.last_answer = time.monotonic()
        self.stalled = False
        self.proven = False                                # a request other than enquire_link answered yet
        self.suspect = False                               # the link before it timed out and answered nothing
        self._rx = b""                                     # a partial frame (lean path)
        self.last_timeout = 0.0                            # of a request other than enquire_link
        self.timeouts_in_row = 0                           # such timeouts since the last answer
        self.probes: set = set()                           # enquire_link seqs outstanding
        self.retire_by = 0.0                               # retiring (unbound, draining) until then
        self.timed_out: OrderedDict = OrderedDict()        # seq -> on_resp, for late answers

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        batch = self.batch
        if batch is None:
            return self._read(data)
        batch.scope += 1
        try:
            self._read(data)
        finally:
            batch.scope -= 1
            batch.flush_point()             # the answers relayed from this read leave now (inbox.py)

    def _read(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        if self.conn.trailing_data:
            return super().data_received(data)         # the codec holds part of a frame: its path
        if self._rx:
            data = self._rx + data
            self._rx = b""
        # Lean path: most of what an SMSC sends is submit_sm_resp, and all the proxy needs
        # from one is its sequence_number, status and message_id. Whole frames of that shape
        # are handled here; anything else (and anything odd) goes through the codec, which
        # is fed whole frames only, so the two never split a frame between them.
        off, n = 0, len(data)
        pending = self.window.pending
        answered = False
        while n - off >= 16:
            length, cid, status, seq = _HEADER(data, off)
            if length < 16 or length > _FAST_MAX:
                return super().data_received(data[off:])    # large, or bad: the codec's path
            if n - off < length:
                break
            end = off + length
            frame = data[off:end]
            if (cid == _SUBMIT_SM_RESP or cid == _DATA_SM_RESP) and seq in pending:
                # rawpdu.resp_message_id, inline: the body is exactly one C-Octet String
                if length == 16:
                    mid = ""
                elif data[end - 1] == 0 and data.find(0, off + 16) == end - 1:
                    mid = data[off + 16:end - 1].decode("latin-1")
                else:
                    mid = None              # anything else: the codec's path
                if mid is not None:
                    off = end
                    answered = True
                    if status == _RINVBNDSTS:
                        self.bind_lost()
                        status, frame = BIND_LOST_STATUS, frame[:8] + _BIND_LOST_BYTES + frame[12:]
                    self.window.complete(seq)(_RawResp(cid, status, seq, mid, frame), status)
                    continue
            off = end
            super().data_received(frame)
        if off < n:
            self._rx = data[off:]
        if answered:
            self.answered()

    def answered(self) -> None:
        """A request other than enquire_link got its answer (read at `last_rx`): the SMSC takes traffic."""
        self.last_answer = self.last_rx
        self.timeouts_in_row = 0
        self.stalled = False
        self.proven = True
        if self.retire_by and not self.window.pending:
            self.close()                    # the last answer a retiring link owed

    def retire(self, why: str) -> None:
        """Take no new traffic, keep reading the answers still owed; closed (and bound again) once the
        window is empty or `response_timeout` has passed (`UpstreamMixin._link_housekeeping`)."""
        if self.retire_by:
            return
        self.bound = False                  # (no enquire_link either: what is waited for is the answers owed)
        self.retire_by = time.monotonic() + self.response_timeout
        for q in self.probes:
            self.window.pending.pop(q, None)
        self.probes.clear()
        log.warning("SMSC %s:%d %s: no new traffic on the link; %d answer(s) owed are read for up to %.1fs, "
                    "then it is closed and bound again", *self.addr, why, len(self.window.pending),
                    self.response_timeout)
        if not self.window.pending:
            self.close()

    def bind_lost(self) -> None:
        """The SMSC answered ESME_RINVBNDSTS: it no longer holds our bind. Bound again; the ESMEs get
        BIND_LOST_STATUS for what it refuses so."""
        if not self.retire_by:
            self.proxy.stats["smsc_bind_lost"] += 1
            self.retire(f"answered ESME_RINVBNDSTS (it lost the bind; the ESMEs get 0x{BIND_LOST_STATUS:02x})")

    def connection_lost(self, exc):
        self.bound = False
        self.probes.clear()
        for seq, (_, on_resp) in list(self.window.pending.items()):
            self.window.pending.pop(seq, None)
            on_resp(None, C.ESME_RSYSERR)
        if self.bind_waiter and not self.bind_waiter.done():
            self.bind_waiter.set_exception(ConnectionError("connection lost during bind"))
        if not self.lost.done():
            self.lost.set_result(None)

    @property
    def available(self) -> bool:
        # (a link bound after one that answered nothing takes at most UNPROVEN_WINDOW requests at once until it has
        # answered one: a half-hung SMSC, bound again and again, black-holes that many a time, not a whole window)
        return self.bound and self.kind != "receiver" and not self.window.full and not self.stalled \
            and (self.proven or not self.suspect or len(self.window.pending) - len(self.probes) < UNPROVEN_WINDOW) \
            and self.transport is not None and not self.transport.is_closing()

    def request(self, raw_or_pdu, on_resp) -> None:
        seq = self.conn.next_sequence()
        raw = encode(P.replace(raw_or_pdu, sequence_number=seq)) if not isinstance(raw_or_pdu, (bytes, bytearray)) \
            else as_request(bytes(raw_or_pdu), seq)
        self.window.add(seq, time.monotonic(), on_resp)      # on_resp(resp | None, status)
        self._queue(raw)

    def probe(self, now: float) -> None:
        """enquire_link (SMPP 3.4 §4.11): is the session up?"""
        self.last_probe = now
        seq = self.conn.next_sequence()
        self.probes.add(seq)
        self.window.add(seq, now, _keepalive)
        self._queue(encode(P.EnquireLink(sequence_number=seq)))

    def forward(self, raw: bytes, on_resp) -> None:
        """`request` for a PDU's own bytes on the submit path: only the sequence_number is put
        in (SMPP 3.4 §3.2: header octets 12-15), and command_status is NULL as in any request."""
        seq = self.conn.next_sequence()
        self.window.add(seq, _monotonic(), on_resp)          # on_resp(resp | None, status)
        self._queue(as_request(raw, seq))

    def malformed(self, e: RemoteProtocolError) -> None:
        # a request is answered with its resp and an error status by the stream (a malformed response is
        # not answered); the link stays up
        log.warning("malformed PDU from SMSC %s: %s", self.addr, e)
        if e.command_id in (C.DELIVER_SM, C.DATA_SM):
            self.proxy.vlog.write_refusal(self.proxy.clock(), P.name_of(e.command_id) + " MO", "", "", "",
                                          e.status, str(e))

    def pdu_received(self, ev) -> None:
        cid = ev.command_id
        if cid in (C.BIND_TRANSCEIVER_RESP, C.BIND_TRANSMITTER_RESP, C.BIND_RECEIVER_RESP) or (
                cid == C.GENERIC_NACK and self.bind_waiter and not self.bind_waiter.done()):
            if self.bind_waiter and not self.bind_waiter.done():
                self.bind_waiter.set_result(ev)
        elif P.is_response(cid) or cid == C.GENERIC_NACK:
            seq = ev.sequence_number
            if ev.command_status == _RINVBNDSTS:
                self.bind_lost()
                ev = P.replace(ev, command_status=BIND_LOST_STATUS,
                               raw=ev.raw[:8] + _BIND_LOST_BYTES + ev.raw[12:] if ev.raw else b"")
            on_resp = self.window.complete(seq)
            if on_resp is _keepalive:
                self.probes.discard(seq)
            elif on_resp is not None:
                on_resp(ev, ev.command_status)
                self.answered()
            else:
                on_resp = self.timed_out.pop(seq, None)
                if on_resp is not None:
                    on_resp(ev, LATE)
                    self.answered()         # a slow SMSC, not a hung one
                elif cid != C.ENQUIRE_LINK_RESP:  # a sequence never sent, answered twice, or forgotten (MAX_LATE)
                    # (an enquire_link's answer after it timed out or the link retired is a late one, not a stray)
                    self.proxy.stats["smsc_unmatched_responses"] += 1
        elif cid == C.ENQUIRE_LINK:
            self.send_pdu(P.EnquireLinkResp(sequence_number=ev.sequence_number))
        elif cid == C.UNBIND:
            # SMPP 3.4 §4.2: unbind ends the session; the responses the SMSC owes for requests made before
            # it may still follow (and their message_ids route receipts): read until they are in
            self.send_pdu(P.UnbindResp(sequence_number=ev.sequence_number))
            self.proxy.stats["smsc_unbinds"] += 1
            self.retire("sent unbind")
        elif cid in (C.DELIVER_SM, C.DATA_SM):
            try:
                self.proxy.handle_smsc_deliver(self, ev)
            except Exception:
                # a PDU we cannot handle is refused, permanently so the SMSC does not redeliver
                # it in a loop; it never takes the link (and every other message on it) down
                log.exception("internal error handling %s from SMSC %s", type(ev).__name__, self.addr)
                self.proxy.stats["smsc_pdu_errors"] += 1
                self.send_pdu(P.response_class(cid)(sequence_number=ev.sequence_number,
                                                    command_status=C.ESME_RX_P_APPN))
        else:
            self.send_pdu(P.GenericNack(sequence_number=ev.sequence_number, command_status=C.ESME_RINVCMDID))


class UpstreamMixin:
    """Mixin of `SmppProxy`: the pool of SMSC links."""

    async def wait_upstream(self, timeout=5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(l.bound for l in self.links):
                return True
            await asyncio.sleep(0.02)
        return False

    async def _link_loop(self, name: str, kind="transceiver"):
        """One SMSC connection (`name` is its "host:port"), kept bound. An SMSC that does not
        know bind_transceiver (generic_nack or ESME_RINVCMDID) is used through a transmitter link
        plus a receiver link (SMPP 3.3-style)."""
        addr = parse_addr(name)
        delay = self.settings.reconnect_min
        suspect = False                     # the last link bound timed out and answered nothing (SmscLink.suspect)
        loop = asyncio.get_running_loop()
        bind_cls = {"transceiver": P.BindTransceiver, "transmitter": P.BindTransmitter, "receiver": P.BindReceiver}
        while not self.stopping:
            link = SmscLink(self, addr, kind, name)
            link.suspect = suspect
            try:
                await loop.create_connection(lambda: link, addr[0], addr[1])
                if name in self.link_tls:           # SMPP over TLS to this SMSC (tls.py)
                    await smsc_start_tls(loop, link, *self.link_tls[name])
                link.bind_waiter = loop.create_future()
                link.transport.write(encode(bind_cls[kind](
                    sequence_number=link.conn.next_sequence(), system_id=self.settings.smsc_system_id,
                    password=self.settings.smsc_password, interface_version=0x34)))
                resp = await asyncio.wait_for(link.bind_waiter, 10)
                if resp.command_status != 0:
                    # only "unknown command" says the SMSC has no transceiver binds; ESME_RBINDFAIL (its
                    # maintenance, a session limit) or another refusal is retried as a transceiver, with back-off
                    if kind == "transceiver" and (resp.command_id == C.GENERIC_NACK
                                                  or resp.command_status == C.ESME_RINVCMDID):
                        log.warning("SMSC %s:%d refuses transceiver binds (0x%02x): using transmitter + receiver",
                                    addr[0], addr[1], resp.command_status)
                        kind = "transmitter"
                        if not self.stopping:
                            self.tasks.append(asyncio.create_task(self._link_loop(name, "receiver")))
                        delay = 0
                    raise ConnectionError(f"bind refused with status 0x{resp.command_status:02x}")
                link.bound = True
                self.links.append(link)
                log.info("bound to SMSC %s:%d as %s", addr[0], addr[1], kind)
                bound_at = time.monotonic()
                await link.lost
                up = time.monotonic() - bound_at
                # the back-off starts again for a link that worked: it answered traffic, or stayed bound STABLE_LINK
                # (an idle one dropped by the SMSC's idle timer). A link whose requests timed out and that answered
                # none (a half-hung SMSC), or one dropped as soon as it was bound (an SMSC that accepts every bind,
                # then unbinds or closes: before, bound again every reconnect_min for ever), keeps it growing
                suspect = not link.proven and bool(link.last_timeout)
                if not suspect and (link.proven or up >= min(STABLE_LINK, self.settings.reconnect_max)):
                    delay = self.settings.reconnect_min
                if not self.stopping:
                    log.warning("SMSC %s:%d: link lost after %.1fs bound; binding again in %.1fs", addr[0], addr[1],
                                up, delay)
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                log.warning("SMSC %s:%d: %s; retrying in %.1fs", addr[0], addr[1], e, delay)
            finally:
                if link in self.links:
                    self.links.remove(link)
                if link.transport:
                    link.transport.abort()         # a hung peer may never take the buffered bytes
            await asyncio.sleep(delay)
            # (the immediate retry after a fall-back to transmitter + receiver is 0: the back-off starts again
            # from reconnect_min, else a refused transmitter bind was retried at once, for ever)
            delay = min(self.settings.reconnect_max, max(self.settings.reconnect_min, delay * 2))

    def _pick_link(self, room: int = 1, space: str | None = None, account: str | None = None):
        """The next link (round robin) that can take `room` requests now (of id space `space` when
        given; for `account`, within its share: RESERVE_SHARE), or None."""
        n = len(self.links)
        if account is not None:
            held = self.upstream_held.get(account, 0)
            self.upstream_seen[account] = self.coarse_now       # (a dict of the accounts: bounded by the config)
        else:
            held = 0
        kept = False
        for i in range(n):
            link = self.links[(next(self._rr)) % n]
            # a message of more parts than a window holds needs an empty window, not an impossible one
            if link.available and (room == 1 or len(link.window.pending) + min(room, link.window.size)
                                   <= link.window.size) and (space is None or link.id_space == space):
                if held and self._in_reserve(link, room, held, account):
                    kept = True
                    continue
                return link
        if kept:
            self.stats["upstream_reserve_kept"] += 1
        return None

    def _in_reserve(self, link, room: int, held: int, account: str) -> bool:
        """True when `room` more requests of `account` (holding `held` in the SMSC windows) would go into the part
        of `link`'s window kept for the other accounts (RESERVE_SHARE) and another account holding less than the
        reserve asked for a slot in the last RESERVE_ACTIVE seconds."""
        w = link.window
        reserve = w.size // RESERVE_SHARE
        if held < reserve or w.size - len(w.pending) - min(room, w.size) >= reserve:
            return False
        since, held_by = self.coarse_now - RESERVE_ACTIVE, self.upstream_held
        # (kept for a light account only: another holding its share or more cannot use the reserve either, and two
        # flooding accounts left it idle for ever)
        return any(a != account and t >= since and held_by.get(a, 0) < reserve
                   for a, t in self.upstream_seen.items())

    def _link_housekeeping(self, now: float) -> None:
        """Expire requests, probe every link on schedule (window full or not: a full window
        is exactly when we need to know), and replace a link that answers nothing (SmscLink)."""
        s = self.settings
        for link in list(self.links):
            probes = link.probes
            for seq, on_resp in link.window.expired(now):
                log.warning("SMSC %s:%d did not answer seq %d within %.1fs", *link.addr, seq, link.response_timeout)
                self.stats["smsc_timeouts"] += 1
                if on_resp is _keepalive:
                    probes.discard(seq)
                    continue
                link.timed_out[seq] = on_resp
                if len(link.timed_out) > MAX_LATE:
                    link.timed_out.popitem(last=False)
                link.last_timeout = now
                link.timeouts_in_row += 1
                on_resp(None, C.ESME_RSYSERR)
            if link.retire_by:
                if not link.window.pending or now >= link.retire_by:
                    link.transport.abort()          # what is still owed: ESME_RSYSERR (connection_lost)
                continue
            silent = now - link.last_rx
            if silent > s.enquire_link_interval + link.response_timeout:
                log.warning("SMSC %s:%d answered nothing for %.0fs: closing the link and binding again",
                            *link.addr, silent)
                self.stats["smsc_hung"] += 1
                link.bound = False
                link.transport.abort()
                continue
            pending = link.window.pending
            owed = len(pending) - sum(1 for q in probes if q in pending)      # not counting enquire_links
            timed_out = link.last_timeout > link.last_answer
            if link.timeouts_in_row >= TIMEOUTS_TO_REBIND or (
                    timed_out and not owed and now - link.last_timeout >= s.smsc_stall_after):
                log.warning("SMSC %s:%d let %d request(s) in a row time out and answered none since (whatever it "
                            "answers to enquire_link): closing the link and binding again", *link.addr,
                            link.timeouts_in_row)
                self.stats["smsc_half_hung"] += 1
                link.bound = False
                link.transport.abort()
                continue
            # stalled: its last timeout newer than its last answer, or owing answers (the oldest sent over
            # stall_after ago) with none for stall_after; the first entry of a window is its oldest
            link.stalled = timed_out or (bool(pending) and now - max(
                link.last_answer, next(iter(pending.values()))[0] - link.window.timeout) > s.smsc_stall_after)
            if link.bound and now - max(link.last_rx, link.last_probe) >= s.enquire_link_interval:
                link.probe(now)


def parse_addr(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
