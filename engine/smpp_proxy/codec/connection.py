"""An SMPP byte stream as a state machine you feed bytes to (after h11): no socket, no clock.

    conn = SmppConnection(max_pdu=65536)
    conn.receive_data(chunk)
    while (ev := conn.next_event()) is not NEED_DATA: ...

`next_event()` returns a PDU, `NEED_DATA`, or raises `RemoteProtocolError`. A PDU whose
header is sound but whose body is bad raises with `fatal=False`: its bytes are consumed and
the stream continues (answer with generic_nack or the command's resp carrying `status`).
A bad command_length loses framing (`fatal=True`): the connection must close. A PDU over
`max_pdu` raises `PduTooLarge` (fatal). With `lean=True`, submit_sm and deliver_sm come out as
`lean.SmView` (the fields a relay reads, checked exactly as the full decoder checks them, and
the offsets for raw edits) instead of frozen dataclasses; `SmView.pdu()` gives the dataclass.

`BindState` is the SMPP 3.4 §2.3 session state: which PDUs an ESME may send in which state.
`Window` tracks outstanding requests by sequence number with an expiry each.
"""
from __future__ import annotations

import struct

from . import constants as C
from .lean import view_sm
from .pdu import RemoteProtocolError, decode_body, encode

NEED_DATA = type("NeedData", (), {"__repr__": lambda s: "NEED_DATA"})()
MIN_LEN = 16


class PduTooLarge(RemoteProtocolError):
    pass


class SmppConnection:
    def __init__(self, max_pdu: int = 65536, lean: bool = False):
        self.max_pdu, self.lean = max_pdu, lean
        self._buf = bytearray()
        self._seq = 0
        self.closed = False

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_event(self):
        buf = self._buf
        if len(buf) < 16:
            return NEED_DATA
        length, cid, status, seq = struct.unpack_from(">IIII", buf)
        if length < MIN_LEN:
            self.closed = True
            raise RemoteProtocolError(f"command_length {length} < 16: framing lost", C.ESME_RINVCMDLEN, cid, seq, fatal=True)
        if length > self.max_pdu:
            self.closed = True
            raise PduTooLarge(f"command_length {length} over the {self.max_pdu}-byte limit", C.ESME_RINVCMDLEN, cid, seq, fatal=True)
        if len(buf) < length:
            return NEED_DATA
        raw = bytes(buf[:length])
        del buf[:length]
        if self.lean and (cid == C.SUBMIT_SM or cid == C.DELIVER_SM):
            return view_sm(raw, cid, seq, status)
        return decode_body(cid, seq, status, raw[16:], raw)

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._buf)

    def next_sequence(self) -> int:
        # SMPP 3.4 §5.1.4: 0x00000001 to 0x7FFFFFFF
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    @staticmethod
    def send(pdu) -> bytes:
        return encode(pdu)


# ---------------------------------------------------------------- session state (SMPP 3.4 §2.3)
OPEN, BOUND_TX, BOUND_RX, BOUND_TRX, UNBOUND = "OPEN", "BOUND_TX", "BOUND_RX", "BOUND_TRX", "UNBOUND"
BIND_STATE = {C.BIND_TRANSMITTER: BOUND_TX, C.BIND_RECEIVER: BOUND_RX, C.BIND_TRANSCEIVER: BOUND_TRX}
_ANY_BOUND = {C.ENQUIRE_LINK, C.ENQUIRE_LINK_RESP, C.UNBIND, C.UNBIND_RESP, C.GENERIC_NACK}
_TX = {C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM, C.DATA_SM_RESP}
_RX = {C.DELIVER_SM_RESP, C.DATA_SM_RESP}
# what an SMSC (us, towards ESMEs) accepts from an ESME in each state
FROM_ESME = {
    OPEN: set(BIND_STATE) | {C.GENERIC_NACK, C.ENQUIRE_LINK},
    BOUND_TX: _ANY_BOUND | _TX,
    BOUND_RX: _ANY_BOUND | _RX,
    BOUND_TRX: _ANY_BOUND | _TX | _RX,
    UNBOUND: {C.UNBIND_RESP, C.GENERIC_NACK},
}


class BindState:
    def __init__(self):
        self.state = OPEN

    def allowed_from_esme(self, command_id: int) -> bool:
        return command_id in FROM_ESME[self.state]

    def bound(self, bind_command_id: int) -> None:
        self.state = BIND_STATE[bind_command_id]

    @property
    def can_receive(self) -> bool:
        return self.state in (BOUND_RX, BOUND_TRX)

    @property
    def can_transmit(self) -> bool:
        return self.state in (BOUND_TX, BOUND_TRX)


# ---------------------------------------------------------------- window (after cloudhopper-smpp)
ENTRY_CTX = 1       # where an entry of Window.pending, (deadline, ctx), holds its ctx: `complete`, and the SMSC link's
# lean path, which takes an answered request out of the window itself (smsc_link.py: a call less a resp)


class Window:
    """Outstanding requests by sequence number; a timed-out request is an event, not a hang.

    Every entry gets the same timeout, so insertion order is expiry order: `expired` walks from
    the oldest and stops at the first one still running (cost = the number that expired)."""

    def __init__(self, size: int, timeout: float):
        self.size, self.timeout = size, timeout
        self.pending: dict[int, tuple[float, object]] = {}

    @property
    def full(self) -> bool:
        return len(self.pending) >= self.size

    def add(self, seq: int, now: float, ctx) -> None:
        self.pending.pop(seq, None)            # a reused number goes to the back, keeping the order
        self.pending[seq] = (now + self.timeout, ctx)

    def complete(self, seq: int):
        ent = self.pending.pop(seq, None)
        return ent[ENTRY_CTX] if ent else None

    def expired(self, now: float) -> list:
        out = []
        for s, (t, c) in self.pending.items():
            if t > now:
                break
            out.append((s, c))
        for s, _ in out:
            del self.pending[s]
        return out
