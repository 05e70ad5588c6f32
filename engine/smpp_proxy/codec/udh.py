"""User data: the User Data Header (3GPP TS 23.040 §9.2.3.24), concatenation info, and the
checks that turn a malformed header or an ambiguous body into a client-error status instead of
an exception deep in the proxy.

Framing (`SmppConnection`, `decode`) does not apply these checks: a PDU whose user data is bad
is still a well-framed PDU with a sequence number, and the proxy answers it with its own
response and logs the refusal like a verdict. The checks run when the user data is read:
`pdu_text`, `pdu_concat`, `lean.SmView.text()` / `.concat` raise UdhError (a
RemoteProtocolError carrying the PDU's command_id and sequence_number), and
`check_user_data` / `pdu_check_user_data` / `SmView.check_user_data()` run all of them.

Checks, in this order:
  - two message_payload TLVs: ESME_ROPTPARNOTALLWD (which one is delivered is undefined);
  - short_message and message_payload both present: ESME_RINVMSGLEN (SMPP 3.4 §5.3.2.32: with
    message_payload, sm_length is 0; SMSCs differ in which one they deliver);
  - the UDH (in message_payload if present, else short_message) and the SAR TLVs, below.

Layout: UDHL (one octet: the header's length after itself), then information elements
IEI, IEDL, data. SMPP 3.4 §5.2.12: esm_class bit 6 (UDHI) says short_message (or
message_payload) starts with one. Statuses:
  - the header or one of its elements runs past the user data: ESME_RINVMSGLEN;
  - a concatenation element (IEI 0x00 8-bit ref, 0x08 16-bit ref) or a port element
    (0x04, 0x05) of the wrong length, total 0, or part 0 / part > total, or two concatenation
    elements: ESME_RINVESMCLASS (UDHI claims a header the message does not carry, or one that
    handsets read differently);
  - SAR TLVs (§5.3.2.22-24) present only in part: ESME_RMISSINGOPTPARAM; segment 0, total 0
    or segment > total: ESME_RINVOPTPARAMVAL; one of them twice: ESME_ROPTPARNOTALLWD.
"""
from __future__ import annotations

from . import constants as C
from .errors import RemoteProtocolError, UdhError

IEI_CONCAT_8, IEI_CONCAT_16, IEI_PORT_8, IEI_PORT_16 = 0x00, 0x08, 0x04, 0x05
_IE_LEN = {IEI_CONCAT_8: 3, IEI_CONCAT_16: 4, IEI_PORT_8: 2, IEI_PORT_16: 4}
_SAR_TAGS = (C.TAG_SAR_MSG_REF_NUM, C.TAG_SAR_TOTAL_SEGMENTS, C.TAG_SAR_SEGMENT_SEQNUM)


def parse_udh(ud: bytes) -> tuple[int, tuple | None]:
    """Check the UDH at the start of `ud`; (its length including UDHL, concat (ref, total, seq) or None).
    Raises UdhError (a RemoteProtocolError without command_id / sequence_number)."""
    if not ud:
        raise UdhError("UDHI set but the message has no user data", C.ESME_RINVMSGLEN)
    end = ud[0] + 1
    if end > len(ud):
        raise UdhError(f"UDH length {ud[0]} runs past the {len(ud) - 1} octets of user data", C.ESME_RINVMSGLEN)
    i, concat = 1, None
    while i < end:
        if i + 2 > end:
            raise UdhError("UDH information element header cut short", C.ESME_RINVMSGLEN)
        iei, ln = ud[i], ud[i + 1]
        if i + 2 + ln > end:
            raise UdhError(f"UDH element 0x{iei:02x} length {ln} runs past the header", C.ESME_RINVMSGLEN)
        want = _IE_LEN.get(iei)
        if want is not None and ln != want:
            raise UdhError(f"UDH element 0x{iei:02x} must be {want} octets, got {ln}", C.ESME_RINVESMCLASS)
        if iei == IEI_CONCAT_8 or iei == IEI_CONCAT_16:
            if concat is not None:
                # 3GPP TS 23.040 §9.2.3.24: the last one counts, but handsets differ; a message would be put
                # together with parts we did not judge it with
                raise UdhError("two concatenation elements in one UDH", C.ESME_RINVESMCLASS)
            v = ud[i + 2:i + 2 + ln]
            ref = v[0] if iei == IEI_CONCAT_8 else (v[0] << 8) | v[1]
            total, seq = v[-2], v[-1]
            if total == 0 or seq == 0 or seq > total:
                raise UdhError(f"concatenation part {seq} of {total}", C.ESME_RINVESMCLASS)
            concat = (ref, total, seq)
        i += 2 + ln
    return end, concat


def concat_conflict(sar: tuple | None, udh: tuple | None) -> UdhError | None:
    """SAR TLVs and a UDH concatenation element that name different parts: an SMSC or handset going by
    one would put together another message than we judged going by the other."""
    if sar is not None and udh is not None and sar != udh:
        return UdhError(f"the SAR TLVs (ref {sar[0]}, part {sar[2]}/{sar[1]}) and the UDH (ref {udh[0]}, part "
                        f"{udh[2]}/{udh[1]}) name different parts", C.ESME_RINVOPTPARAMVAL)
    return None


def sar_info(tlvs) -> tuple | None:
    """(ref, total, seq) from the SAR TLVs, None when there are none; raises UdhError when they are
    incomplete, out of range or one of them is given twice."""
    found = {}
    for t in tlvs:
        if t.tag in _SAR_TAGS:
            if t.tag in found:
                raise sar_twice(t.tag)
            found[t.tag] = t.value
    return sar_from_values(found)


def sar_twice(tag: int) -> UdhError:
    # which copy an SMSC reads is undefined, as for two message_payloads: going by another one than
    # ours, it would put together parts we judged apart (a link split over two "messages")
    return UdhError(f"SAR TLV 0x{tag:04x} given twice: which one an SMSC reads is undefined", C.ESME_ROPTPARNOTALLWD)


def sar_from_values(found: dict) -> tuple | None:
    """sar_info on {tag: value} of the SAR TLVs present (each once: sar_twice)."""
    if not found:
        return None
    if len(found) < 3:
        raise UdhError("sar_msg_ref_num, sar_total_segments and sar_segment_seqnum go together",
                       C.ESME_RMISSINGOPTPARAM)
    total, seq = found[C.TAG_SAR_TOTAL_SEGMENTS][0], found[C.TAG_SAR_SEGMENT_SEQNUM][0]
    if total == 0 or seq == 0 or seq > total:
        raise UdhError(f"SAR segment {seq} of {total}", C.ESME_RINVOPTPARAMVAL)
    return int.from_bytes(found[C.TAG_SAR_MSG_REF_NUM], "big"), total, seq


def split_udh(esm_class: int, sm: bytes) -> tuple[bytes, bytes]:
    """(udh including its length octet, rest). SMPP 3.4 §5.2.12: esm_class bit 6 = UDHI.
    An empty message with UDHI set has no header (nothing to split)."""
    if esm_class & C.ESM_UDHI and sm:
        n = sm[0] + 1
        if n > len(sm):
            raise UdhError("UDH length runs past short_message", C.ESME_RINVMSGLEN)
        return sm[:n], sm[n:]
    return b"", sm


def udh_elements(udh: bytes):
    i, out = 1, []
    while i + 1 < len(udh):
        iei, ln = udh[i], udh[i + 1]
        out.append((iei, udh[i + 2:i + 2 + ln]))
        i += 2 + ln
    return out


def concat_info(esm_class: int, sm: bytes, tlvs) -> tuple[int, int, int] | None:
    """(reference, total, seq) from SAR TLVs or a UDH (IEI 0x00 8-bit ref, 0x08 16-bit ref).
    Raises UdhError on a malformed header (a decoded PDU has already passed these checks)."""
    sar = sar_info(tlvs)
    if sar is not None:
        return sar
    if esm_class & C.ESM_UDHI and sm:
        return parse_udh(sm)[1]
    return None


def check_user_data(esm_class: int, short_message: bytes, tlvs, cid=None, seq=None) -> None:
    """Every user-data check (see the module text); raises RemoteProtocolError with cid / seq."""
    try:
        payload, count = None, 0
        for t in tlvs:
            if t.tag == C.TAG_MESSAGE_PAYLOAD:
                count += 1
                if payload is None:
                    payload = t.value
        if count > 1:
            raise RemoteProtocolError("two message_payload TLVs: which one is delivered is undefined",
                                      C.ESME_ROPTPARNOTALLWD)
        if payload is not None and short_message:
            raise RemoteProtocolError("short_message and message_payload both present: SMSCs differ in which "
                                      "one they deliver", C.ESME_RINVMSGLEN)
        udh = parse_udh(short_message if payload is None else payload)[1] if esm_class & C.ESM_UDHI else None
        if tlvs:
            err = concat_conflict(sar_info(tlvs), udh)
            if err is not None:
                raise err
    except RemoteProtocolError as e:
        e.command_id, e.sequence_number = cid, seq
        raise


def pdu_check_user_data(pdu) -> None:
    check_user_data(getattr(pdu, "esm_class", 0), getattr(pdu, "short_message", b""), pdu.tlvs,
                    pdu.command_id, pdu.sequence_number)


def _payload(pdu) -> bytes:
    for t in pdu.tlvs:
        if t.tag == C.TAG_MESSAGE_PAYLOAD:
            return t.value
    return getattr(pdu, "short_message", b"")


def pdu_user_data(pdu) -> bytes:
    """The message body without its UDH: the (first) message_payload if present, else short_message.
    Raises UdhError, with the PDU's identity, when UDHI is set and the header does not parse."""
    ud = _payload(pdu)
    if getattr(pdu, "esm_class", 0) & C.ESM_UDHI:
        try:
            return ud[parse_udh(ud)[0]:]
        except UdhError as e:
            e.command_id, e.sequence_number = pdu.command_id, pdu.sequence_number
            raise
    return ud


def pdu_concat(pdu) -> tuple[int, int, int] | None:
    """(reference, total, seq) of a PDU from its SAR TLVs or its UDH (in message_payload or
    short_message); raises UdhError with the PDU's identity when they are malformed."""
    try:
        sar = sar_info(pdu.tlvs)
        udh = parse_udh(_payload(pdu))[1] if getattr(pdu, "esm_class", 0) & C.ESM_UDHI else None
        err = concat_conflict(sar, udh)
        if err is not None:
            raise err
        return sar if sar is not None else udh
    except UdhError as e:
        e.command_id, e.sequence_number = pdu.command_id, pdu.sequence_number
        raise
