"""ESME side: one `EsmeSession` per TCP connection from an ESME (bind state, account, the
window of deliver_sm we sent it). It only moves bytes into the codec and PDUs to the proxy."""
from __future__ import annotations

import logging
import struct
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from ..listen import addr_text, peer_of
from .codec import BindState, PduTooLarge, RemoteProtocolError, SmppConnection, view_sm
from .codec import constants as C
from .codec import pdu as P
from .codec.v33 import for_v33
from .inbox import MAX_QUEUED
from .stream import CoalescedStream

_MESSAGE_COMMANDS = frozenset((C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM))
_SUBMIT_SM = C.SUBMIT_SM
_HEADER = struct.Struct(">IIII").unpack_from          # command_length, command_id, command_status, sequence_number
_monotonic = time.monotonic
LATE_SEQS = 4096       # timed-out requests of ours whose late answer is no stray (dispatch.handle_esme_pdu)
WRITE_STALL = 30.0      # seconds a peer may leave our answers unread (write buffer over its high-water mark)

if TYPE_CHECKING:
    from .server import SmppProxy

log = logging.getLogger("telfilter.smpp")


class EsmeSession(CoalescedStream):
    """A read only decodes: the PDUs wait in `inq` for the proxy's inbox (inbox.py), which
    hands them to `handle` in turn with the other sessions'."""

    def __init__(self, proxy: "SmppProxy"):
        self.proxy = proxy
        self.batch = proxy.batch
        self.inq: deque = deque()
        self.reading_paused = False        # by the inbox: too many of its PDUs waiting to be handled
        self.backlog = False               # bytes read and not decoded yet: the bound of one turn was reached
        self.write_paused_at = None        # since when the peer has not read what we sent (transport buffer full)
        # lean: a submit_sm comes out as a codec SmView (checked as fully as a decoded PDU, no
        # dataclass or TLV objects built); its raw bytes are what is forwarded
        self.conn = SmppConnection(proxy.settings.max_pdu, lean=True)
        self.state = BindState()
        self.account = None
        self.transport = None
        self.peer = ("?", 0)
        self.window: dict[int, tuple] = {}          # our deliver_sm seq -> (on_resp, expiry, its resp's command_id)
        # seqs of ours that timed out, the last LATE_SEQS (insertion order) -> None, or a receipt's held copy (held.py)
        self.timed_out: OrderedDict = OrderedDict()     # (its oldest O(1): a plain dict's first key is no queue)
        # ... and those pushed out of it whose receipt is still held, waiting for that late answer (note_timed_out)
        self.late_held: dict = {}
        self._late_held_prune = LATE_SEQS
        self.last_rx = self.connected_at = time.monotonic()
        self.probed_at = self.connected_at  # when we last sent it an enquire_link (housekeeping)
        # when a request of ours to it last timed out (housekeeping; 0: never). Later than last_rx: it stalled
        # (sent nothing since), and is offered one deliver_sm at a time (routing._receiving) until it sends anything
        self.last_timeout = 0.0
        self.answered_seq = 0           # the highest sequence number of ours it answered (late or not: dispatch.py)
        self.closed = False
        self.admitted = False          # counted by the connection caps
        self.bind_pending = False      # a bind is waiting for its password check
        self.in_flight = 0             # its messages forwarded to an SMSC and not answered yet
        self.unbind_seq = None         # its unbind, answered once in_flight is back to 0
        self.eof = False               # half-closed, or our unbind answered: closed once in_flight is back to 0
        self.other_bucket = None       # its PDUs other than messages (dispatch.over_other_rate)
        self.other_refused = 0         # ... refused since that bucket was last full
        self.interface_version = 0x34  # its bind's (SMPP 3.4 §5.2.4); below 0x34 it is sent no TLV (speak_v33)

    def note_timed_out(self, seq: int) -> None:
        """A request of ours (a receipt, an MO, an enquire_link) `seq` timed out: its answer, if it comes late, is
        taken as one (free), not as a stray answer that costs a token of the bucket for other requests.
        The newest LATE_SEQS are kept, and older ones whose receipt is still held (`late_held`): one dropped at the
        4,097th timeout after it (a long stall's probes and enquire_links) made its late answer a stray, and the
        receipt, still held, went out again: delivered twice. `late_held` is bounded by the receipts held (each is
        one receipt's copy that last timed out, and `_held_gone` ends that): pruned when it doubles, O(1) amortised."""
        t = self.timed_out
        t[seq] = None
        if len(t) > LATE_SEQS:
            old, entry = t.popitem(last=False)
            if entry is not None and entry.awaits_late_answer(self, old):
                kept = self.late_held
                kept[old] = entry
                if len(kept) > self._late_held_prune:
                    for s, e in list(kept.items()):
                        if not e.awaits_late_answer(self, s):
                            del kept[s]
                    self._late_held_prune = max(LATE_SEQS, 2 * len(kept))

    def late_answer(self, seq: int):
        """An answer to `seq`, none of the window's: 0 when it is to no request of ours that timed out (a stray),
        else what it answers (None, or a receipt's held copy: held.late_receipt_answer), forgotten."""
        late = self.timed_out.pop(seq, 0)
        return late if late != 0 or not self.late_held else self.late_held.pop(seq, 0)

    # transport callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.peer = peer_of(transport.get_extra_info("peername"))     # an IPv4 peer of `[::]` as IPv4 (listen.py)
        if not self.proxy.caps.admit(self):
            # every connection under the cap is bound: refuse this one before it costs more
            log.warning("connection from %s refused: connection cap reached", self.peer[0])
            self.closed = True
            transport.abort()
            return
        self.proxy.sessions.add(self)

    def connection_lost(self, exc):
        self.closed = True
        self.proxy.session_gone(self)

    def eof_received(self):
        # a half-close (shutdown(SHUT_WR) after the last request) is no abort: the peer still reads, and is
        # owed the answers to what it sent; the write side stays open until they are given (server.py)
        self.proxy.esme_eof(self)
        return True

    # A read is decoded up to MAX_QUEUED PDUs waiting for the inbox (refused ones count too), no further: a
    # peer that sends without waiting for answers hands us up to 256 KB a read (16,384 enquire_link, 23.6 ms of
    # decoding in one go). The rest stays in the codec's buffer and the socket is not read meanwhile (the
    # kernel's buffer fills, then the peer's TCP window closes); it is decoded on a later loop turn: once the
    # inbox has handled half the queue (resume), or at once if the bound was spent on refused PDUs only.
    def data_received(self, data: bytes):
        self.last_rx = _monotonic()
        conn = self.conn
        if conn._buf or self.closed or self.backlog:
            conn.receive_data(data)            # the codec holds part of a frame (or a backlog): its path
            if not self.backlog:
                self._decode()
            return
        # Lean path: a read of whole submit_sm frames (a window's worth, typically) is cut into
        # frames and viewed here without going through the codec's buffer. The first frame that
        # is anything else, incomplete, or refused by the view goes to the codec with everything
        # after it, which decodes (and refuses) it exactly as view_sm did: the two paths accept
        # the same bytes, and frames keep their order.
        off, n = 0, len(data)
        put, max_pdu = self.proxy.inbox.put, conn.max_pdu
        for _ in range(MAX_QUEUED - len(self.inq)):       # (the inbox does not run meanwhile)
            if n - off < 16:
                break
            length, cid, status, seq = _HEADER(data, off)
            if cid != _SUBMIT_SM or length < 16 or length > max_pdu or n - off < length:
                break
            try:
                ev = view_sm(data[off:off + length], cid, seq, status)
            except RemoteProtocolError:
                break
            off += length
            put(self, ev)
        if off < n:
            conn.receive_data(data[off:] if off else data)
            self._decode()

    def _decode(self) -> None:
        budget = MAX_QUEUED - len(self.inq)
        if budget > 0:
            budget = self.decode(budget)
        t = self.transport
        if budget <= 0 and self.conn._buf and t is not None and not t.is_closing():
            self.backlog = True
            t.pause_reading()
            if not self.reading_paused:        # the inbox will not resume it (refused PDUs spent the bound)
                self.proxy.loop.call_soon(self._decode_backlog)

    def _decode_backlog(self) -> None:
        """A later turn: the next PDUs of the backlog; the socket is read again once it is all decoded."""
        self.backlog = False
        if self.transport is None or self.transport.is_closing():
            return
        self._decode()
        self._reading()

    def malformed(self, e: RemoteProtocolError) -> None:
        if e.fatal:                 # the connection closes: what was read before it is answered first
            self.proxy.inbox.drain_session(self)
        elif not (e.command_id in _MESSAGE_COMMANDS and self.account is not None
                  and self.state.allowed_from_esme(e.command_id)):
            # answered (stream.py) at the rate of the other requests, or the bind closes; a bound ESME's invalid
            # message is a message (a bulk sender's dirty list: its enquire_links were throttled, its bind closed)
            self.proxy.over_other_rate(self)
        if isinstance(e, PduTooLarge):
            log.warning("closing bind %s from %s: %s", self.account and self.account.system_id, addr_text(*self.peer[:2]), e)
        else:
            log.info("malformed PDU from %s: %s (status 0x%02x)", addr_text(*self.peer[:2]), e, e.status)
        # a message refused before it could be judged is logged, when it came on a bind that may send
        # messages: a connection that never bound cannot fill the verdict log with junk
        if (e.command_id in _MESSAGE_COMMANDS and self.account is not None
                and self.state.allowed_from_esme(e.command_id)):
            self.proxy.vlog.write_refusal(self.proxy.clock(), P.name_of(e.command_id),
                                          self.account.system_id if self.account else "", "", "", e.status, str(e))

    def pdu_received(self, ev) -> None:
        self.proxy.inbox.put(self, ev)

    def pause(self) -> None:
        self.reading_paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self) -> None:
        self.reading_paused = False
        if self.backlog:                      # (called inside the inbox's slice: decoded on a turn of its own)
            self.proxy.loop.call_soon(self._decode_backlog)
        else:
            self._reading()

    def _reading(self) -> None:
        """Read the socket again, unless the inbox, the peer's unread answers or a backlog still hold it."""
        if (not self.reading_paused and self.write_paused_at is None and not self.backlog
                and self.transport is not None and not self.transport.is_closing()):
            self.transport.resume_reading()

    # Flow control (asyncio calls these at the transport's write-buffer water marks): a peer that does
    # not read our answers is not read either, so it cannot make us queue answers without bound; it
    # is closed if it stays so for WRITE_STALL seconds (proxy housekeeping).
    def pause_writing(self) -> None:
        self.write_paused_at = _monotonic()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused_at = None
        self._reading()

    def handle(self, ev) -> None:
        try:
            self.proxy.handle_esme_pdu(self, ev)
        except Exception:                      # a bug must not take the bind down silently
            log.exception("internal error handling %s from %s", type(ev).__name__, addr_text(*self.peer[:2]))
            if ev.command_id in _MESSAGE_COMMANDS:     # a message that could not be judged: logged too
                self.proxy.vlog.write_refusal(self.proxy.clock(), P.name_of(ev.command_id),
                                              self.account.system_id if self.account else "",
                                              getattr(ev, "source_addr", ""), getattr(ev, "destination_addr", ""),
                                              C.ESME_RSYSERR, "internal error")
            if not P.is_response(ev.command_id):
                self.send_pdu(P.answer(ev.command_id, ev.sequence_number, C.ESME_RSYSERR))

    send_raw = CoalescedStream._queue       # (raw: bytes) -> None: queued for the next flush point

    def speak_v33(self) -> None:
        """Bound with interface_version below 0x34 (SMPP 3.3 or earlier): every PDU sent as raw bytes goes as
        codec/v33.py makes it (no TLV, no data_sm); a 3.4 bind's send_raw stays the plain queue."""
        self.send_raw = self._send_raw_v33

    def _send_raw_v33(self, raw: bytes) -> None:
        try:
            out = for_v33(raw, self.proxy._schedule_now)      # (a receipt text it writes: the SMSC's dates)
        except RemoteProtocolError:         # (bytes of ours or the SMSC's, read before: sent as they are)
            out = raw
        if out is None:
            # routing.py offers such a bind only what fits: not sent, its window entry times out (as unanswered)
            log.warning("a PDU too long for SMPP 3.3 bind %s from %s not sent", self.account and
                        self.account.system_id, addr_text(*self.peer[:2]))
            return
        self._queue(out)

    def close(self) -> None:
        self.proxy.inbox.drain_session(self)     # what was read is answered before the close
        super().close()

    def abort(self) -> None:
        """Close at once, without flushing (evicted or timed out before it bound)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
