"""The hot path: submit_sm / deliver_sm read in one pass over the raw bytes, and the edits a
filtering relay makes (sequence_number, a tag TLV, a text prefix) done on those bytes.

Theory of operation. A relay reads a handful of fields (addresses, esm_class, data_coding,
registered_delivery, the user data and its concatenation info) and forwards the PDU byte for
byte, so building a frozen dataclass and a Tlv object per optional parameter only to re-encode
it is wasted work. `view_sm(raw)` walks the body once, straight-line, with every check of the
full decoder (field sizes, times, sm_length, TLV framing and fixed lengths), and keeps the
offsets an edit needs: where sm_length is, where the TLVs start, where message_payload's value
is. The full decoder (`pdu.decode_body`) calls the same scan for these two commands, so both
paths accept and refuse exactly the same bytes with the same status (a property test holds
them to it). The user-data checks (udh.py) are worked out in the same pass but raised only
when the user data is read (`text()`, `user_data`, `concat`) or `check_user_data()` is called,
as they are for the full PDU.

An edit returns new bytes with command_length (and sm_length or the TLV length) patched; the
view it was taken from describes the old bytes only.
"""
from __future__ import annotations

import os

from . import constants as C
from .errors import RemoteProtocolError, UdhError
from .fields import valid_time
from .text import read_text
from .udh import concat_conflict, parse_udh, sar_from_values, sar_twice as sar_twice_error

_SAR = (C.TAG_SAR_MSG_REF_NUM, C.TAG_SAR_TOTAL_SEGMENTS, C.TAG_SAR_SEGMENT_SEQNUM)
_FIXED = C.TLV_FIXED_LEN
_PAYLOAD = C.TAG_MESSAGE_PAYLOAD


class SmView:
    """What a relay reads from a submit_sm or deliver_sm, with the offsets its raw edits need."""

    __slots__ = ("raw", "command_id", "command_status", "sequence_number", "service_type",
                 "source_addr_ton", "source_addr_npi", "source_addr", "dest_addr_ton", "dest_addr_npi",
                 "destination_addr", "esm_class", "protocol_id", "priority_flag", "schedule_delivery_time",
                 "validity_period", "registered_delivery", "replace_if_present_flag", "data_coding",
                 "sm_default_msg_id", "short_message", "sm_at", "tlv_at", "payload_at", "payload_len",
                 "payload_count", "udh_len", "udh_concat", "udh_error", "sar_concat", "sar_error", "_tlvs")

    @property
    def message_payload(self) -> bytes | None:
        if self.payload_at < 0:
            return None
        return self.raw[self.payload_at:self.payload_at + self.payload_len]

    @property
    def user_data(self) -> bytes:
        """The message body without its UDH (message_payload if present, else short_message)."""
        if self.udh_error is not None:
            raise self.udh_error
        if self.payload_at >= 0:
            return self.raw[self.payload_at + self.udh_len:self.payload_at + self.payload_len]
        return self.short_message[self.udh_len:]

    @property
    def concat(self) -> tuple | None:
        """(reference, total, seq) from the SAR TLVs or the UDH, None if not concatenated."""
        # udh.pdu_concat's order: the SAR TLVs, then the UDH (a broken one is an error even beside
        # sound SAR TLVs), then whether they agree (held in sar_error too)
        if self.sar_error is not None:
            raise self.sar_error
        if self.udh_error is not None:
            raise self.udh_error
        return self.sar_concat if self.sar_concat is not None else self.udh_concat

    def check_user_data(self) -> None:
        """Every user-data check, in udh.check_user_data's order."""
        cid, seq = self.command_id, self.sequence_number
        if self.payload_count > 1:
            raise RemoteProtocolError("two message_payload TLVs: which one is delivered is undefined",
                                      C.ESME_ROPTPARNOTALLWD, cid, seq)
        if self.payload_count and self.short_message:
            raise RemoteProtocolError("short_message and message_payload both present: SMSCs differ in which "
                                      "one they deliver", C.ESME_RINVMSGLEN, cid, seq)
        for err in (self.udh_error, self.sar_error):
            if err is not None:
                raise err

    def checked_user_data(self) -> bytes:
        """`check_user_data()`, then `user_data`: one call for the submit path, which reads both for every message."""
        if self.payload_count or self.udh_error is not None or self.sar_error is not None:
            self.check_user_data()          # (raises, but a lone message_payload: sound, read below)
        if self.payload_at >= 0:
            return self.raw[self.payload_at + self.udh_len:self.payload_at + self.payload_len]
        return self.short_message[self.udh_len:]

    @property
    def tlvs(self) -> tuple:
        """The optional parameters as Tlv objects, decoded on first use."""
        if self._tlvs is None:
            from .pdu import decode_tlvs
            self._tlvs = decode_tlvs(self.raw, self.tlv_at, self.command_id, self.sequence_number) \
                if self.tlv_at < len(self.raw) else ()
        return self._tlvs

    def text(self, reading: str = "auto", packed: bool = False) -> tuple[str | None, str]:
        """(text, reading used): see text.read_text."""
        return read_text(self.data_coding, self.user_data, reading, packed)

    def pdu(self):
        """The full frozen dataclass (what `pdu.decode` returns for the same bytes)."""
        from .pdu import CLASSES
        return CLASSES[self.command_id](*self.values(), self.tlvs, self.raw)

    def values(self) -> tuple:
        return (self.sequence_number, self.command_status, self.service_type, self.source_addr_ton,
                self.source_addr_npi, self.source_addr, self.dest_addr_ton, self.dest_addr_npi,
                self.destination_addr, self.esm_class, self.protocol_id, self.priority_flag,
                self.schedule_delivery_time, self.validity_period, self.registered_delivery,
                self.replace_if_present_flag, self.data_coding, self.sm_default_msg_id, self.short_message)


def _cstr_error(raw, o, limit, name, status, cid, seq) -> RemoteProtocolError:
    """Why there is no NUL within `limit` octets from `o` (view_sm looks for it inline)."""
    if len(raw) - o >= limit:
        return RemoteProtocolError(f"{name} longer than {limit - 1} octets", status, cid, seq)
    return RemoteProtocolError(f"{name}: C-Octet String without NUL terminator", C.ESME_RINVCMDLEN, cid, seq)


def _time_field(raw, o, e, name, status, cid, seq) -> str:
    """A non-empty time field ending at `e` (-1: no NUL within its 17 octets)."""
    if e < 0:
        raise _cstr_error(raw, o, 17, name, status, cid, seq)
    t = raw[o:e].decode("latin-1")
    if cid == C.SUBMIT_SM and not valid_time(t):      # (see pdu.PLANS on deliver_sm)
        raise RemoteProtocolError(f"{name} {t!r} is not YYMMDDhhmmsstnnp", status, cid, seq)
    return t


def _short(raw, o, names, cid, seq):
    """The error for a body that ends inside a run of 1-octet fields starting at `o`."""
    name = names[max(0, len(raw) - o)]
    return RemoteProtocolError(f"body ends before {name}", C.ESME_RINVCMDLEN, cid, seq)


_TON_NPI = ("source_addr_ton", "source_addr_npi")
_DEST_TON_NPI = ("dest_addr_ton", "dest_addr_npi")
_ESM_PID_PRIO = ("esm_class", "protocol_id", "priority_flag")
_FLAGS = ("registered_delivery", "replace_if_present_flag", "data_coding", "sm_default_msg_id", "sm_length")


def _view_sm(raw: bytes, cid: int | None = None, seq: int | None = None, status: int | None = None) -> SmView:
    """One pass over a whole submit_sm / deliver_sm (header included). Raises RemoteProtocolError
    exactly where and as `pdu.decode` does. (`view_sm`: this, or _leanview.c's, which reads the common case --
    empty times, no TLV, no UDH, nothing to refuse -- itself and calls this for anything else.)"""
    if cid is None:
        if len(raw) < 16:
            raise RemoteProtocolError("PDU shorter than its 16-byte header", C.ESME_RINVCMDLEN, fatal=True)
        length, cid = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
        status, seq = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        if length != len(raw):
            raise RemoteProtocolError(f"command_length {length} but {len(raw)} bytes", C.ESME_RINVCMDLEN, cid, seq)
    if cid != C.SUBMIT_SM and cid != C.DELIVER_SM:
        raise RemoteProtocolError(f"command_id 0x{cid:08x} is not submit_sm or deliver_sm", C.ESME_RINVCMDID, cid, seq)
    v = SmView()
    v._tlvs = None
    v.raw, v.command_id, v.command_status, v.sequence_number = raw, cid, status, seq
    n = len(raw)
    # each C-Octet String: its NUL within the field's size (SMPP 3.4 §5.2), else _cstr_error
    # says why; the search is inline, this being the per-message path. The fields most messages leave
    # empty (service_type, the two times) are told so by their first octet: a bytes.find costs ~1,000
    # instructions, most of them parsing its arguments
    e = 16 if n > 16 and raw[16] == 0 else raw.find(b"\x00", 16, 22)
    if e < 0:
        raise _cstr_error(raw, 16, 6, "service_type", C.ESME_RINVSERTYP, cid, seq)
    v.service_type = raw[16:e].decode("latin-1") if e > 16 else ""
    o = e + 1
    if o + 2 > n:
        raise _short(raw, o, _TON_NPI, cid, seq)
    v.source_addr_ton, v.source_addr_npi = raw[o], raw[o + 1]
    o += 2
    # (found from `o` and bounded after: bytes.find parses a third argument for ~430 instructions)
    e = raw.find(b"\x00", o)
    if e < 0 or e >= o + 21:
        raise _cstr_error(raw, o, 21, "source_addr", C.ESME_RINVSRCADR, cid, seq)
    v.source_addr = raw[o:e].decode("latin-1")
    o = e + 1
    if o + 2 > n:
        raise _short(raw, o, _DEST_TON_NPI, cid, seq)
    v.dest_addr_ton, v.dest_addr_npi = raw[o], raw[o + 1]
    o += 2
    e = raw.find(b"\x00", o)
    if e < 0 or e >= o + 21:
        raise _cstr_error(raw, o, 21, "destination_addr", C.ESME_RINVDSTADR, cid, seq)
    v.destination_addr = raw[o:e].decode("latin-1")
    o = e + 1
    if o + 3 > n:
        raise _short(raw, o, _ESM_PID_PRIO, cid, seq)
    v.esm_class, v.protocol_id, v.priority_flag = raw[o], raw[o + 1], raw[o + 2]
    o += 3
    e = o if o < n and raw[o] == 0 else raw.find(b"\x00", o, o + 17)
    if e == o:                                       # empty: immediate delivery, the usual case
        v.schedule_delivery_time = ""
    else:
        v.schedule_delivery_time = _time_field(raw, o, e, "schedule_delivery_time", C.ESME_RINVSCHED, cid, seq)
    o = e + 1
    e = o if o < n and raw[o] == 0 else raw.find(b"\x00", o, o + 17)
    if e == o:                                       # empty: the SMSC's default validity
        v.validity_period = ""
    else:
        v.validity_period = _time_field(raw, o, e, "validity_period", C.ESME_RINVEXPIRY, cid, seq)
    o = e + 1
    if o + 5 > n:
        raise _short(raw, o, _FLAGS, cid, seq)
    v.registered_delivery, v.replace_if_present_flag, v.data_coding, v.sm_default_msg_id, ln = raw[o:o + 5]
    o += 4
    if ln > 254:                                     # SMPP 3.4 §5.2.21: 0 to 254
        raise RemoteProtocolError(f"sm_length {ln} over 254", C.ESME_RINVMSGLEN, cid, seq)
    if o + 1 + ln > n:
        raise RemoteProtocolError(f"sm_length {ln} exceeds the {n - o - 1} bytes that follow", C.ESME_RINVMSGLEN, cid, seq)
    v.sm_at = o
    v.short_message = raw[o + 1:o + 1 + ln]
    o += 1 + ln
    v.tlv_at = o
    # TLVs: framing and fixed lengths first (as pdu.decode_tlvs), then the user-data rules
    payload_at = -1
    payload_len = payloads = 0
    sar = None
    sar_twice = 0
    while o < n:
        if o + 4 > n:
            raise RemoteProtocolError("truncated TLV header", C.ESME_RINVOPTPARSTREAM, cid, seq)
        tag, tl = (raw[o] << 8) | raw[o + 1], (raw[o + 2] << 8) | raw[o + 3]
        if o + 4 + tl > n:
            raise RemoteProtocolError(f"TLV 0x{tag:04x} length {tl} runs past the PDU", C.ESME_RINVOPTPARSTREAM, cid, seq)
        fixed = _FIXED.get(tag)
        if fixed is not None and tl != fixed:
            raise RemoteProtocolError(f"TLV 0x{tag:04x} must be {fixed} bytes, got {tl}", C.ESME_RINVPARLEN, cid, seq)
        if tag == _PAYLOAD:
            payloads += 1
            if payloads == 1:
                payload_at, payload_len = o + 4, tl
        elif tag in _SAR:
            if sar is None:
                sar = {}
            elif tag in sar:
                sar_twice = tag
            sar[tag] = raw[o + 4:o + 4 + tl]
        o += 4 + tl
    v.payload_at, v.payload_len, v.payload_count = payload_at, payload_len, payloads
    v.udh_len, v.udh_concat, v.udh_error, v.sar_concat, v.sar_error = 0, None, None, None, None
    if v.esm_class & C.ESM_UDHI:
        try:
            v.udh_len, v.udh_concat = parse_udh(v.short_message if payload_at < 0
                                                else raw[payload_at:payload_at + payload_len])
        except UdhError as err:
            err.command_id, err.sequence_number = cid, seq
            v.udh_error = err
    if sar is not None:
        try:
            if sar_twice:
                raise sar_twice_error(sar_twice)
            v.sar_concat = sar_from_values(sar)
            err = concat_conflict(v.sar_concat, v.udh_concat)
            if err is not None:
                raise err
        except UdhError as err:
            err.command_id, err.sequence_number = cid, seq
            v.sar_error = err
    return v


view_sm = _view_sm
if os.environ.get("TELFILTER_LEAN_PURE") != "1":
    try:
        from ._leanview import viewer
    except ImportError:
        pass
    else:
        # the same views, ~16,000 instructions less a submit_sm (tests/test_smpp_lean_view.py compares them)
        view_sm = viewer(SmView, SmView.__slots__, _view_sm)


# ---------------------------------------------------------------- edits on raw bytes

def _with_sequence(raw: bytes, seq: int) -> bytes:
    """The same PDU bytes with another sequence_number (SMPP 3.4 §3.2: octets 12-15 of the
    header), what a relay changes, and only that."""
    return raw[:12] + seq.to_bytes(4, "big") + raw[16:]


_NULL_STATUS = bytes(4)


def _as_request(raw: bytes, seq: int) -> bytes:
    """A request's bytes as a relay sends them on: another sequence_number and command_status NULL
    (SMPP 3.4 §3.2: command_status is relevant only in a response and NULL in a request; a peer such as
    smpplib refuses a deliver_sm that carries one)."""
    return raw[:8] + _NULL_STATUS + seq.to_bytes(4, "big") + raw[16:]


with_sequence, as_request = _with_sequence, _as_request
if view_sm is not _view_sm:         # (_leanview built and not TELFILTER_LEAN_PURE=1: its header edits too)
    from ._leanview import header_edits
    # the same bytes, ~2,000 instructions less a call, twice a forwarded message (tests/test_smpp_header_edits.py)
    with_sequence, as_request = header_edits(_with_sequence, _as_request)


def without_tlv(raw: bytes, at: int, tag: int) -> bytes:
    """The PDU without any TLV `tag` in its TLV area (from offset `at`; framed already, by view_sm or decode),
    command_length patched; `raw` itself when it has none."""
    keep, o, n, cut = [], at, len(raw), False
    while o + 4 <= n:
        end = o + 4 + ((raw[o + 2] << 8) | raw[o + 3])
        if (raw[o] << 8) | raw[o + 1] == tag:
            cut = True
        else:
            keep.append(raw[o:end])
        o = end
    if not cut:
        return raw
    body = raw[4:at] + b"".join(keep)
    return (len(body) + 4).to_bytes(4, "big") + body


def append_tlv(raw: bytes, tag: int, value: bytes) -> bytes:
    """The PDU with one more TLV at its end and command_length patched."""
    if len(value) > 0xFFFF:
        raise ValueError(f"TLV 0x{tag:04x}: {len(value)} octets, at most 65535")
    return (len(raw) + 4 + len(value)).to_bytes(4, "big") + raw[4:] + tag.to_bytes(2, "big") \
        + len(value).to_bytes(2, "big") + value


def encode_prefix(text: str, data_coding: int, reading: str) -> bytes | None:
    """`text` in the message's own encoding (the reading `SmView.text` reported), or None when it
    cannot be written there (binary, packed GSM, a character the alphabet lacks)."""
    from .text import TextError, gsm_encode
    try:
        if reading == "gsm":
            return gsm_encode(text)
        if reading == "ascii":
            return text.encode("ascii")
        if reading == "latin1" and data_coding in (0x00, 0x01, 0x03):
            return text.encode("latin-1")
        if reading == "ucs2":
            return text.encode("utf-16-be")
    except (TextError, UnicodeEncodeError):
        return None
    return None


SMS_OCTETS, SMS_SEPTETS = 140, 160        # one SMS: 140 octets of user data, 160 GSM septets (3GPP TS 23.040)


def _udh_only_concat(ud: bytes, udh_len: int) -> bool:
    """Whether a UDH holds concatenation elements only (IEI 0x00 / 0x08): a port-addressed or any other
    application message is data for a program, not text a prefix may go into."""
    i, end = 1, udh_len
    while i + 1 < end:
        if ud[i] not in (0x00, 0x08):
            return False
        i += 2 + ud[i + 1]
    return True


def prefix_user_data(v: SmView, prefix: bytes, reading: str = "") -> bytes | None:
    """`v.raw` with `prefix` inserted before the message text (after any UDH), in short_message when
    the part still fits one SMS (140 octets of UCS-2 / 8-bit user data, 160 septets of unpacked GSM-like
    text, UDH included; `reading` as read_text reported it) or in message_payload; None when it does not
    fit or the UDH is more than concatenation."""
    raw = v.raw
    if v.udh_error is not None:
        return None
    if v.udh_len:
        ud = v.short_message if v.payload_at < 0 else raw[v.payload_at:v.payload_at + v.payload_len]
        if not _udh_only_concat(ud, v.udh_len):
            return None
    if v.payload_at >= 0:
        if v.payload_len + len(prefix) > 0xFFFF:
            return None
        at = v.payload_at + v.udh_len
        tl_at = v.payload_at - 2
        out = bytearray(raw[:at])
        out[tl_at:tl_at + 2] = (v.payload_len + len(prefix)).to_bytes(2, "big")
    else:
        ln = len(v.short_message)
        if ln + len(prefix) > 254:
            return None
        septets = reading in ("gsm", "ascii") or (reading == "latin1" and v.data_coding in (0x00, 0x01))
        if not septets:              # UCS-2, 8-bit, Latin-1 (dc 3): octets on the air interface
            if ln + len(prefix) > SMS_OCTETS:
                return None
        elif (v.udh_len * 8 + 6) // 7 + (ln - v.udh_len) + len(prefix) > SMS_SEPTETS:
            return None
        at = v.sm_at + 1 + v.udh_len
        out = bytearray(raw[:at])
        out[v.sm_at] = ln + len(prefix)
    out += prefix
    out += raw[at:]
    out[0:4] = len(out).to_bytes(4, "big")
    return bytes(out)
