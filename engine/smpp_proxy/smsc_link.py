"""One bind to an SMSC (`SmscLink`), with its own window: the bind's PDUs in and out, the answers matched to
their requests (a lean path for submit_sm_resp / data_sm_resp read straight from their bytes), and the link's
liveness (stalled, retired, bind lost). The pool of links -- binding them with back-off, picking one per
request, the housekeeping that closes a hung one -- is `UpstreamMixin`, smsc.py."""
from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..listen import addr_text
from .codec import RemoteProtocolError, SmppConnection, Window, as_request, encode
from .codec.connection import ENTRY_CTX
from .codec import constants as C
from .codec import pdu as P
from .stream import CoalescedStream

if TYPE_CHECKING:
    from .server import SmppProxy

log = logging.getLogger("telfilter.smpp")


_SUBMIT_SM_RESP, _DATA_SM_RESP = C.SUBMIT_SM_RESP, C.DATA_SM_RESP     # read on the lean path
_FAST_MAX = 4096
_HEADER = struct.Struct(">IIII").unpack_from          # command_length, command_id, command_status, sequence_number
_monotonic = time.monotonic


class _RawResp:
    """A submit_sm_resp / data_sm_resp read from its bytes: the fields the proxy uses. Made by the lean path alone
    (SmscLink._read), its five fields stored there: no __init__ frame a resp."""

    __slots__ = ("command_id", "command_status", "sequence_number", "message_id", "raw")


_new = object.__new__


LATE = -1               # on_resp(resp, LATE): the answer came after we gave up on it
UNPROVEN_WINDOW = 8    # requests a link bound after a half-hung one takes at once until it answers one
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
        self.where = addr_text(*addr)              # as logs name it ([v6]:port)
        self.batch = getattr(proxy, "batch", None)      # None: flushed per loop iteration (stream.py)
        # a 64 KB message_payload and its header at least, whatever max_pdu the ESME side has
        self.conn = SmppConnection(max(proxy.settings.max_pdu, 65536 + 4096))
        self.transport = None
        self.bound = False
        self.response_timeout = over.get("response_timeout", s.smsc_response_timeout)
        self.window = Window(over.get("window", s.smsc_window), self.response_timeout)
        self.id_space = over.get("id_space", "")      # message_ids unique within (msgids.py)
        self.bind_waiter: asyncio.Future | None = None
        self.lost = asyncio.get_event_loop().create_future()
        self.unanswered_at_loss = 0                        # requests in flight when the connection was lost
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
                if answered:            # the answers read before it count (the link's liveness)
                    self.answered()
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
                    ent = pending.pop(seq, None)        # (Window.complete, inline: a call less a resp)
                    r = _new(_RawResp)
                    r.command_id, r.command_status, r.sequence_number, r.message_id, r.raw = cid, status, seq, mid, frame
                    (ent[ENTRY_CTX] if ent else None)(r, status)
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
        log.warning("SMSC %s %s: no new traffic on the link; %d answer(s) owed are read for up to %.1fs, "
                    "then it is closed and bound again", self.where, why, len(self.window.pending),
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
            self.unanswered_at_loss += on_resp is not _keepalive      # (said in the link's "link lost" warning)
            on_resp(None, C.ESME_RSYSERR)
        if self.bind_waiter and not self.bind_waiter.done():
            self.bind_waiter.set_exception(ConnectionError("connection lost during bind"))
        if not self.lost.done():
            self.lost.set_result(None)

    @property
    def available(self) -> bool:
        # (a link bound after one that answered nothing takes at most UNPROVEN_WINDOW requests at once until it has
        # answered one: a half-hung SMSC, bound again and again, black-holes that many a time, not a whole window)
        # (Window.full read inline: its property's frame, once a message)
        w = self.window
        return self.bound and self.kind != "receiver" and len(w.pending) < w.size and not self.stalled \
            and (self.proven or not self.suspect or len(w.pending) - len(self.probes) < UNPROVEN_WINDOW) \
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
        log.warning("malformed PDU from SMSC %s: %s", self.where, e)
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
                log.exception("internal error handling %s from SMSC %s", type(ev).__name__, self.where)
                self.proxy.stats["smsc_pdu_errors"] += 1
                self.send_pdu(P.response_class(cid)(sequence_number=ev.sequence_number,
                                                    command_status=C.ESME_RX_P_APPN))
        elif cid == C.ALERT_NOTIFICATION:
            # SMPP 3.4 §4.12: no response PDU exists (a generic_nack told the SMSC its PDU was invalid); not
            # relayed either (set_dpf is not offered behind the proxy), counted
            self.proxy.stats["smsc_alert_notifications"] += 1
        else:
            self.send_pdu(P.GenericNack(sequence_number=ev.sequence_number, command_status=C.ESME_RINVCMDID))

