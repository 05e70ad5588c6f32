"""User Data Header (3GPP TS 23.040 §9.2.3.24) and concatenation info, with the checks that
turn a malformed header into a client-error status instead of an exception deep in the proxy.

Layout: UDHL (one octet: the header's length after itself), then information elements
IEI, IEDL, data. SMPP 3.4 §5.2.12: esm_class bit 6 (UDHI) says short_message (or
message_payload) starts with one. Statuses:
  - the header or one of its elements runs past the user data: ESME_RINVMSGLEN;
  - a concatenation element (IEI 0x00 8-bit ref, 0x08 16-bit ref) or a port element
    (0x04, 0x05) of the wrong length, total 0, or part 0 / part > total: ESME_RINVESMCLASS
    (UDHI claims a header the message does not carry);
  - SAR TLVs (§5.3.2.22-24) present only in part: ESME_RMISSINGOPTPARAM; segment 0, total 0
    or segment > total: ESME_RINVOPTPARAMVAL.
"""
from __future__ import annotations

from . import constants as C
from .errors import UdhError

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
            v = ud[i + 2:i + 2 + ln]
            ref = v[0] if iei == IEI_CONCAT_8 else (v[0] << 8) | v[1]
            total, seq = v[-2], v[-1]
            if total == 0 or seq == 0 or seq > total:
                raise UdhError(f"concatenation part {seq} of {total}", C.ESME_RINVESMCLASS)
            concat = (ref, total, seq)
        i += 2 + ln
    return end, concat


def sar_info(tlvs) -> tuple | None:
    """(ref, total, seq) from the SAR TLVs, None when there are none; raises UdhError when they are
    incomplete or out of range."""
    found = {t.tag: t.value for t in tlvs if t.tag in _SAR_TAGS}
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
