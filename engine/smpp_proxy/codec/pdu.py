"""SMPP 3.4 PDUs as frozen dataclasses with the spec's field names, and their byte layout.

Each PDU type is declared once as a list of (field, kind) pairs in spec order; `decode_body`
and `encode` walk that list. Kinds: `c` C-Octet String (kept as latin-1 `str`, so every byte
round-trips), `B` 1-octet integer, `I` 4-octet integer, `sm` sm_length + short_message
(bytes), `dests` / `unsucc` the submit_multi lists. Whatever follows the mandatory fields
is optional parameters (TLVs), kept in order, byte for byte, known or not.

Decoding checks what SMPP 3.4 fixes (fields.py: C-Octet String sizes, time format, sm_length,
TLV framing and fixed lengths) and raises RemoteProtocolError with the status to answer with.
What the message body says (UDH, SAR, message_payload vs short_message) is checked when it is
read (udh.py), so such a PDU still reaches the proxy, which answers and logs the refusal.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, make_dataclass, replace

from . import constants as C
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError, UdhError
from .fields import TIME_FIELDS, cstring_limit, valid_time
from .lean import as_request, view_sm, with_sequence  # noqa: F401  (exported)
from .udh import check_user_data, pdu_check_user_data  # noqa: F401  (exported)

_HDR = struct.Struct(">IIII")


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes


SUBMIT_FIELDS = [("service_type", "c"), ("source_addr_ton", "B"), ("source_addr_npi", "B"), ("source_addr", "c"),
                 ("dest_addr_ton", "B"), ("dest_addr_npi", "B"), ("destination_addr", "c"), ("esm_class", "B"),
                 ("protocol_id", "B"), ("priority_flag", "B"), ("schedule_delivery_time", "c"),
                 ("validity_period", "c"), ("registered_delivery", "B"), ("replace_if_present_flag", "B"),
                 ("data_coding", "B"), ("sm_default_msg_id", "B"), ("short_message", "sm")]
BIND_FIELDS = [("system_id", "c"), ("password", "c"), ("system_type", "c"), ("interface_version", "B"),
               ("addr_ton", "B"), ("addr_npi", "B"), ("address_range", "c")]

SPECS = {
    C.GENERIC_NACK: ("GenericNack", []),
    C.BIND_RECEIVER: ("BindReceiver", BIND_FIELDS),
    C.BIND_TRANSMITTER: ("BindTransmitter", BIND_FIELDS),
    C.BIND_TRANSCEIVER: ("BindTransceiver", BIND_FIELDS),
    C.BIND_RECEIVER_RESP: ("BindReceiverResp", [("system_id", "c")]),
    C.BIND_TRANSMITTER_RESP: ("BindTransmitterResp", [("system_id", "c")]),
    C.BIND_TRANSCEIVER_RESP: ("BindTransceiverResp", [("system_id", "c")]),
    C.OUTBIND: ("Outbind", [("system_id", "c"), ("password", "c")]),
    C.UNBIND: ("Unbind", []),
    C.UNBIND_RESP: ("UnbindResp", []),
    C.ENQUIRE_LINK: ("EnquireLink", []),
    C.ENQUIRE_LINK_RESP: ("EnquireLinkResp", []),
    C.SUBMIT_SM: ("SubmitSm", SUBMIT_FIELDS),
    C.SUBMIT_SM_RESP: ("SubmitSmResp", [("message_id", "c")]),
    C.DELIVER_SM: ("DeliverSm", SUBMIT_FIELDS),
    C.DELIVER_SM_RESP: ("DeliverSmResp", [("message_id", "c")]),
    C.DATA_SM: ("DataSm", [("service_type", "c"), ("source_addr_ton", "B"), ("source_addr_npi", "B"),
                           ("source_addr", "c"), ("dest_addr_ton", "B"), ("dest_addr_npi", "B"),
                           ("destination_addr", "c"), ("esm_class", "B"), ("registered_delivery", "B"),
                           ("data_coding", "B")]),
    C.DATA_SM_RESP: ("DataSmResp", [("message_id", "c")]),
    C.SUBMIT_MULTI: ("SubmitMulti", [("service_type", "c"), ("source_addr_ton", "B"), ("source_addr_npi", "B"),
                                     ("source_addr", "c"), ("dest_addresses", "dests")] + SUBMIT_FIELDS[7:]),
    C.SUBMIT_MULTI_RESP: ("SubmitMultiResp", [("message_id", "c"), ("unsuccess_smes", "unsucc")]),
    C.QUERY_SM: ("QuerySm", [("message_id", "c"), ("source_addr_ton", "B"), ("source_addr_npi", "B"), ("source_addr", "c")]),
    C.QUERY_SM_RESP: ("QuerySmResp", [("message_id", "c"), ("final_date", "c"), ("message_state", "B"), ("error_code", "B")]),
    C.CANCEL_SM: ("CancelSm", [("service_type", "c"), ("message_id", "c"), ("source_addr_ton", "B"),
                               ("source_addr_npi", "B"), ("source_addr", "c"), ("dest_addr_ton", "B"),
                               ("dest_addr_npi", "B"), ("destination_addr", "c")]),
    C.CANCEL_SM_RESP: ("CancelSmResp", []),
    C.REPLACE_SM: ("ReplaceSm", [("message_id", "c"), ("source_addr_ton", "B"), ("source_addr_npi", "B"),
                                 ("source_addr", "c"), ("schedule_delivery_time", "c"), ("validity_period", "c"),
                                 ("registered_delivery", "B"), ("sm_default_msg_id", "B"), ("short_message", "sm")]),
    C.REPLACE_SM_RESP: ("ReplaceSmResp", []),
    C.ALERT_NOTIFICATION: ("AlertNotification", [("source_addr_ton", "B"), ("source_addr_npi", "B"),
                                                 ("source_addr", "c"), ("esme_addr_ton", "B"), ("esme_addr_npi", "B"),
                                                 ("esme_addr", "c")]),
}
# PDUs that carry no optional parameters in SMPP 3.4 (anything after their body is an error)
NO_TLVS = {C.GENERIC_NACK, C.UNBIND, C.UNBIND_RESP, C.ENQUIRE_LINK, C.ENQUIRE_LINK_RESP, C.SUBMIT_SM_RESP,
           C.DELIVER_SM_RESP, C.QUERY_SM, C.QUERY_SM_RESP, C.CANCEL_SM, C.CANCEL_SM_RESP, C.REPLACE_SM,
           C.REPLACE_SM_RESP, C.OUTBIND, C.BIND_RECEIVER, C.BIND_TRANSMITTER, C.BIND_TRANSCEIVER, C.SUBMIT_MULTI_RESP}
# replace_sm and query_sm may not carry TLVs in 3.4 but real peers add some; be lenient on input. So do
# submit_sm_resp and deliver_sm_resp (SMPP 5.0's message submission / delivery response TLVs): refused, an SMSC's
# answer to a submit it took was lost (ESME_RSYSERR, the link closed as half-hung), an ESME's receipt ack ignored;
# and an SMSC's query_sm_resp, cancel_sm_resp and replace_sm_resp (a vendor tag: the same loss and rebind)
NO_TLVS -= {C.REPLACE_SM, C.QUERY_SM, C.SUBMIT_MULTI_RESP, C.SUBMIT_SM_RESP, C.DELIVER_SM_RESP,
            C.QUERY_SM_RESP, C.CANCEL_SM_RESP, C.REPLACE_SM_RESP}

_DEFAULT = {"c": "", "B": 0, "I": 0, "sm": b"", "dests": (), "unsucc": ()}
CLASSES = {}
BY_NAME = {}
for _cid, (_name, _spec) in SPECS.items():
    _cls = make_dataclass(
        _name,
        [("sequence_number", int, field(default=0)), ("command_status", int, field(default=0))]
        + [(f, object, field(default=_DEFAULT[k])) for f, k in _spec]
        + [("tlvs", tuple, field(default=())), ("raw", bytes, field(default=b"", compare=False, repr=False))],
        frozen=True, slots=True)
    _cls.command_id = _cid
    _cls.spec = _spec
    _cls.__module__ = __name__
    CLASSES[_cid] = _cls
    BY_NAME[_name] = _cls
    globals()[_name] = _cls


def tlv(pdu, tag) -> bytes | None:
    for t in pdu.tlvs:
        if t.tag == tag:
            return t.value
    return None


def is_response(command_id: int) -> bool:
    return bool(command_id & C.RESP_BIT)


def response_class(command_id: int):
    return CLASSES.get(command_id | C.RESP_BIT)


# ---------------------------------------------------------------- decoding
# Each command's fields compiled once into (name, kind, max octets incl. NUL, status, is_time):
# the per-PDU loop does no dictionary look-ups for limits. deliver_sm's times are unused (SMPP 3.4
# §4.6.1: NULL) and only their size is checked: refusing an SMSC's odd value would protect nothing
# and make it redeliver.
PLANS = {cid: tuple((name, kind, *(cstring_limit(cid, name) or (0, 0)), name in TIME_FIELDS and cid != C.DELIVER_SM)
                    for name, kind in spec)
         for cid, (_, spec) in SPECS.items()}


def _cstr(body, off, cid, seq, name, limit=0, status=0):
    """A C-Octet String at `off`: (latin-1 text, offset after the NUL). The NUL is looked for only
    within the field's maximum size (SMPP 3.4 sizes count the NUL)."""
    if limit:
        end = body.find(b"\x00", off, off + limit)
        if end < 0:
            if len(body) - off >= limit:
                raise RemoteProtocolError(f"{name} longer than {limit - 1} octets", status, cid, seq)
            raise RemoteProtocolError(f"{name}: C-Octet String without NUL terminator", C.ESME_RINVCMDLEN, cid, seq)
    else:
        end = body.find(b"\x00", off)
        if end < 0:
            raise RemoteProtocolError(f"{name}: C-Octet String without NUL terminator", C.ESME_RINVCMDLEN, cid, seq)
    return body[off:end].decode("latin-1"), end + 1


def decode_body(cid: int, seq: int, status: int, body: bytes, raw: bytes = b""):
    plan = PLANS.get(cid)
    if plan is None:
        raise RemoteProtocolError(f"unknown command_id 0x{cid:08x}", C.ESME_RINVCMDID, cid, seq)
    cls = CLASSES[cid]
    if cid == C.SUBMIT_SM or cid == C.DELIVER_SM:
        # one scan shared with the hot path (lean.view_sm), so both refuse the same bytes alike
        v = view_sm(raw or _HDR.pack(16 + len(body), cid, status, seq) + body, cid, seq, status)
        return cls(*v.values(), v.tlvs, raw)
    vals = {"sequence_number": seq, "command_status": status}
    off, n = 0, len(body)
    # SMPP 3.4: a response with a non-zero status may omit its body
    if is_response(cid) and status != 0 and n == 0:
        return cls(sequence_number=seq, command_status=status, raw=raw)
    for name, kind, limit, fstatus, is_time in plan:
        if kind == "c":
            v, off = _cstr(body, off, cid, seq, name, limit, fstatus)
            if is_time and not valid_time(v):
                raise RemoteProtocolError(f"{name} {v!r} is not YYMMDDhhmmsstnnp", fstatus, cid, seq)
            vals[name] = v
        elif kind == "B":
            if off >= n:
                raise RemoteProtocolError(f"body ends before {name}", C.ESME_RINVCMDLEN, cid, seq)
            vals[name] = body[off]
            off += 1
        elif kind == "sm":
            if off >= n:
                raise RemoteProtocolError("body ends before sm_length", C.ESME_RINVCMDLEN, cid, seq)
            ln = body[off]
            if ln > 254:                  # SMPP 3.4 §5.2.21: 0 to 254
                raise RemoteProtocolError(f"sm_length {ln} over 254", C.ESME_RINVMSGLEN, cid, seq)
            if off + 1 + ln > n:
                raise RemoteProtocolError(f"sm_length {ln} exceeds the {n - off - 1} bytes that follow",
                                          C.ESME_RINVMSGLEN, cid, seq)
            vals[name] = body[off + 1: off + 1 + ln]
            off += 1 + ln
        elif kind == "dests":
            vals[name], off = _dests(body, off, cid, seq)
        elif kind == "unsucc":
            vals[name], off = _unsucc(body, off, cid, seq)
    if off < n:
        if cid in NO_TLVS:
            raise RemoteProtocolError(f"{n - off} unexpected bytes after the body", C.ESME_RINVCMDLEN, cid, seq)
        vals["tlvs"] = decode_tlvs(body, off, cid, seq)
    vals["raw"] = raw
    return cls(**vals)


def decode_tlvs(body, off, cid, seq) -> tuple:
    n, tl = len(body), []
    while off < n:
        if off + 4 > n:
            raise RemoteProtocolError("truncated TLV header", C.ESME_RINVOPTPARSTREAM, cid, seq)
        tag, ln = struct.unpack_from(">HH", body, off)
        if off + 4 + ln > n:
            raise RemoteProtocolError(f"TLV 0x{tag:04x} length {ln} runs past the PDU", C.ESME_RINVOPTPARSTREAM, cid, seq)
        fixed = C.TLV_FIXED_LEN.get(tag)
        if fixed is not None and ln != fixed:
            raise RemoteProtocolError(f"TLV 0x{tag:04x} must be {fixed} bytes, got {ln}", C.ESME_RINVPARLEN, cid, seq)
        tl.append(Tlv(tag, body[off + 4: off + 4 + ln]))
        off += 4 + ln
    return tuple(tl)


def _dests(body, off, cid, seq):
    n = len(body)
    if off >= n:
        raise RemoteProtocolError("body ends before number_of_dests", C.ESME_RINVCMDLEN, cid, seq)
    cnt = body[off]
    off += 1
    if cnt == 0 or cnt > 254:
        raise RemoteProtocolError(f"number_of_dests {cnt}", C.ESME_RINVNUMDESTS, cid, seq)
    dests = []
    for _ in range(cnt):
        if off >= n:
            raise RemoteProtocolError("body ends inside dest_address", C.ESME_RINVCMDLEN, cid, seq)
        flag = body[off]
        off += 1
        if flag == 1:
            if off + 2 > n:
                raise RemoteProtocolError("body ends inside dest_address", C.ESME_RINVCMDLEN, cid, seq)
            ton, npi = body[off], body[off + 1]
            addr, off = _cstr(body, off + 2, cid, seq, "destination_addr", 21, C.ESME_RINVDSTADR)
            dests.append((1, ton, npi, addr))
        elif flag == 2:
            name_, off = _cstr(body, off, cid, seq, "dl_name", 21, C.ESME_RINVDLNAME)
            dests.append((2, name_))
        else:
            raise RemoteProtocolError(f"dest_flag {flag}", C.ESME_RINVDESTFLAG, cid, seq)
    return tuple(dests), off


def _unsucc(body, off, cid, seq):
    n = len(body)
    if off >= n:
        raise RemoteProtocolError("body ends before no_unsuccess", C.ESME_RINVCMDLEN, cid, seq)
    cnt = body[off]
    off += 1
    out = []
    for _ in range(cnt):
        if off + 2 > n:
            raise RemoteProtocolError("body ends inside unsuccess_sme", C.ESME_RINVCMDLEN, cid, seq)
        ton, npi = body[off], body[off + 1]
        addr, off = _cstr(body, off + 2, cid, seq, "unsuccess_sme")
        if off + 4 > n:
            raise RemoteProtocolError("body ends inside unsuccess_sme", C.ESME_RINVCMDLEN, cid, seq)
        out.append((ton, npi, addr, int.from_bytes(body[off:off + 4], "big")))
        off += 4
    return tuple(out), off


def decode(data: bytes):
    """Decode exactly one whole PDU (command_length must equal len(data))."""
    if len(data) < 16:
        raise RemoteProtocolError("PDU shorter than its 16-byte header", C.ESME_RINVCMDLEN, fatal=True)
    length, cid, status, seq = _HDR.unpack_from(data)
    if length != len(data):
        raise RemoteProtocolError(f"command_length {length} but {len(data)} bytes", C.ESME_RINVCMDLEN, cid, seq)
    return decode_body(cid, seq, status, bytes(data[16:]), bytes(data))


# ---------------------------------------------------------------- encoding

def _enc_c(v, name, limit=0):
    if isinstance(v, bytes):
        b = v
    else:
        try:
            b = str(v).encode("latin-1")
        except UnicodeEncodeError:
            raise LocalProtocolError(f"{name}: C-Octet Strings carry bytes 0-255 only") from None
    if b"\x00" in b:
        raise LocalProtocolError(f"{name}: NUL inside a C-Octet String")
    if limit and len(b) >= limit:
        raise LocalProtocolError(f"{name}: {len(b)} octets, SMPP 3.4 allows {limit - 1}")
    return b + b"\x00"


def encode(pdu) -> bytes:
    cid = pdu.command_id
    parts = []
    if not (is_response(cid) and pdu.command_status != 0 and _empty_body(pdu)):
        for name, kind, limit, _, _ in PLANS[cid]:
            v = getattr(pdu, name)
            if kind == "c":
                parts.append(_enc_c(v, name, limit))
            elif kind == "B":
                if not 0 <= v <= 255:
                    raise LocalProtocolError(f"{name}={v} does not fit one octet")
                parts.append(bytes((v,)))
            elif kind == "sm":
                if len(v) > 254:
                    raise LocalProtocolError("short_message longer than 254 octets: use message_payload")
                parts.append(bytes((len(v),)) + bytes(v))
            elif kind == "dests":
                parts.append(bytes((len(v),)))
                for d in v:
                    parts.append(bytes((1, d[1], d[2])) + _enc_c(d[3], "destination_addr", 21) if d[0] == 1
                                 else b"\x02" + _enc_c(d[1], "dl_name", 21))
            elif kind == "unsucc":
                parts.append(bytes((len(v),)))
                for ton, npi, addr, err in v:
                    parts.append(bytes((ton, npi)) + _enc_c(addr, "unsuccess_sme") + err.to_bytes(4, "big"))
        for t in pdu.tlvs:
            if len(t.value) > 0xFFFF:
                raise LocalProtocolError(f"TLV 0x{t.tag:04x} value too long")
            parts.append(struct.pack(">HH", t.tag, len(t.value)) + bytes(t.value))
    body = b"".join(parts)
    return _HDR.pack(16 + len(body), cid, pdu.command_status, pdu.sequence_number) + body


def _empty_body(pdu) -> bool:
    return all(getattr(pdu, n) == _DEFAULT[k] for n, k in pdu.spec) and not pdu.tlvs


def answer_for(e: RemoteProtocolError):
    """The PDU that answers a refused one: the command's own response carrying `e.status` when the
    header named a known request (a deliver_sm gets a deliver_sm_resp, so an SMSC that matches
    answers by command sees one), else generic_nack (SMPP 3.4 §4.3). Sequence 0 if none was read."""
    cid = e.command_id
    cls = CLASSES.get(cid | C.RESP_BIT) if cid is not None and not is_response(cid) else None
    if cls is None or cid == C.GENERIC_NACK:
        cls = CLASSES[C.GENERIC_NACK]
    return cls(sequence_number=e.sequence_number or 0, command_status=e.status)


def answer(command_id: int, sequence_number: int, status: int):
    """The response to request `command_id` carrying `status`: its own *_resp, or generic_nack for a
    request that has none (outbind, alert_notification)."""
    cls = CLASSES.get(command_id | C.RESP_BIT)
    if cls is None or command_id == C.GENERIC_NACK:
        cls = CLASSES[C.GENERIC_NACK]
    return cls(sequence_number=sequence_number, command_status=status)


def name_of(command_id: int) -> str:
    s = SPECS.get(command_id)
    return s[0] if s else f"0x{command_id:08x}"


__all__ = ["Tlv", "decode", "decode_body", "encode", "tlv", "with_sequence", "as_request", "RemoteProtocolError",
           "LocalProtocolError", "ProtocolError", "CLASSES", "BY_NAME", "replace", "is_response",
           "response_class", "name_of", "answer_for", "check_user_data", "pdu_check_user_data",
           "UdhError"] + [n for n, _ in SPECS.values()]
