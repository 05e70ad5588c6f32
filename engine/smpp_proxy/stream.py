"""The asyncio side of one SMPP byte stream, shared by the proxy's ESME sessions, its SMSC
links and the SMSC simulator: bytes go into the codec, decoded PDUs to `pdu_received`; a request
the codec refuses is answered (its own response or a generic_nack carrying the status; a malformed
response is not answered), and the connection closes only when framing is lost."""
from __future__ import annotations

import asyncio
from time import perf_counter as _now

from .codec import NEED_DATA, RemoteProtocolError, encode
from .codec import constants as C
from .codec import pdu as P


class SmppStream(asyncio.Protocol):
    conn = None          # an SmppConnection, set by the subclass
    transport = None

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.decode(-1)

    def decode(self, budget: int) -> int:
        """Decode the PDUs buffered, at most `budget` of them (refused ones count; a negative budget: all), and
        return what is left of it: 0 when it ran out (bytes may remain in the codec's buffer)."""
        conn = self.conn
        while budget:
            budget -= 1
            try:
                ev = conn.next_event()
            except RemoteProtocolError as e:
                self.malformed(e)
                # SMPP 3.4 §4.3: the command's own resp when the header named a known request (a
                # deliver_sm refused by us gets a deliver_sm_resp, which an SMSC matches by command),
                # else generic_nack; either carries the precise status (ESME_RINVMSGLEN, ...).
                # When framing is lost the header itself is suspect: generic_nack, then close.
                # A malformed response (or generic_nack) is not answered: a response is never
                # acknowledged (§2.3), and answering one invites a nack loop between two peers.
                if e.fatal:
                    self.send_pdu(P.GenericNack(sequence_number=e.sequence_number or 0, command_status=e.status))
                    self.close()
                    return budget
                cid = e.command_id
                if cid is None or not (P.is_response(cid) or cid == C.GENERIC_NACK):
                    self.send_pdu(P.answer_for(e))
                continue
            if ev is NEED_DATA:
                return budget + 1
            self.pdu_received(ev)
        return 0

    def malformed(self, e: RemoteProtocolError) -> None:
        """Hook: log a refused PDU."""

    def pdu_received(self, ev) -> None:
        raise NotImplementedError

    def send_pdu(self, pdu) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode(pdu))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# A stream without a WriteBatch (the simulator's) flushes at the end of the loop iteration; one
# read can bring many PDUs, each handled before the next, so a queue older than this goes out
# with the next write rather than wait for all the work after it. The proxy's streams have a
# batch and are flushed at its own flush points (inbox.py).
FLUSH_AFTER = 0.0002        # seconds


class CoalescedStream(SmppStream):
    """Coalesce the PDUs written between two flush points into one transport.write: a peer
    that sends ten PDUs in one segment gets ten answers in one segment, and we pay one
    syscall instead of ten. With a `batch` (inbox.WriteBatch) the flush points are the
    batch's; without one, the end of the loop iteration, or the next write once the queue
    is older than FLUSH_AFTER."""

    _outq = None
    _since = 0.0
    batch = None

    def _queue(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        out = self._outq
        if out is None:
            out = self._outq = []
        out.append(data)
        if len(out) == 1:
            if self.batch is not None:
                self.batch.add(self)
                return
            self._since = _now()
            asyncio.get_running_loop().call_soon(self._flush)
        elif self.batch is None and _now() - self._since > FLUSH_AFTER:
            t.write(b"".join(out))
            out.clear()                     # the flush already scheduled finds nothing to do

    def _flush(self) -> None:
        out = self._outq
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        if out:
            out.clear()

    def send_pdu(self, pdu) -> None:
        self._queue(encode(pdu))

    def close(self) -> None:
        if self.transport is not None:
            if self._outq:
                self._flush()                 # answers already queued go out first
            self.transport.close()
