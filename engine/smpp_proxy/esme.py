"""ESME side: one `EsmeSession` per TCP connection from an ESME (bind state, account, the
window of deliver_sm we sent it). It only moves bytes into the codec and PDUs to the proxy."""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from .codec import BindState, PduTooLarge, RemoteProtocolError, SmppConnection
from .codec import constants as C
from .codec import pdu as P
from .stream import CoalescedStream

_MESSAGE_COMMANDS = frozenset((C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM))

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
        self.reading_paused = False
        # lean: a submit_sm comes out as a codec SmView (checked as fully as a decoded PDU, no
        # dataclass or TLV objects built); its raw bytes are what is forwarded
        self.conn = SmppConnection(proxy.settings.max_pdu, lean=True)
        self.state = BindState()
        self.account = None
        self.transport = None
        self.peer = ("?", 0)
        self.window: dict[int, tuple] = {}          # our deliver_sm seq -> (on_resp, expiry)
        self.last_rx = self.connected_at = time.monotonic()
        self.closed = False
        self.admitted = False          # counted by the connection caps
        self.bind_pending = False      # a bind is waiting for its password check

    # transport callbacks
    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername") or ("?", 0)
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

    def data_received(self, data: bytes):
        self.last_rx = time.monotonic()
        super().data_received(data)

    def malformed(self, e: RemoteProtocolError) -> None:
        if e.fatal:                 # the connection closes: what was read before it is answered first
            self.proxy.inbox.drain_session(self)
        if isinstance(e, PduTooLarge):
            log.warning("closing bind %s from %s: %s", self.account and self.account.system_id, self.peer, e)
        else:
            log.info("malformed PDU from %s: %s (status 0x%02x)", self.peer, e, e.status)
        if e.command_id in _MESSAGE_COMMANDS:        # a message refused before it could be judged: logged
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
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def handle(self, ev) -> None:
        try:
            self.proxy.handle_esme_pdu(self, ev)
        except Exception:                      # a bug must not take the bind down silently
            log.exception("internal error handling %s from %s", type(ev).__name__, self.peer)
            if not P.is_response(ev.command_id):
                self.send_pdu(P.response_class(ev.command_id)(sequence_number=ev.sequence_number,
                                                             command_status=C.ESME_RSYSERR))

    def send_raw(self, raw: bytes) -> None:
        self._queue(raw)

    def close(self) -> None:
        self.proxy.inbox.drain_session(self)     # what was read is answered before the close
        super().close()

    def abort(self) -> None:
        """Close at once, without flushing (evicted or timed out before it bound)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
