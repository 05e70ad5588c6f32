"""PDUs as an ESME bound with interface_version below 0x34 (SMPP 3.3 or earlier) reads them.

SMPP 3.4 §5.2.4: interface_version 0x00-0x33 says the ESME supports version 3.3 or earlier, which has
no optional parameters (TLVs) and no data_sm; an SMSC tells such a peer nothing in TLVs, not even its own
version (§5.3.2.25 sc_interface_version: returned in a 3.4 bind's response). So what such a bind is sent
carries no TLV, and what a TLV carried that the message needs moves into the mandatory fields:

- message_payload becomes short_message (it holds the message when short_message is empty: §5.3.2.32);
- SAR TLVs (sar_msg_ref_num / sar_total_segments / sar_segment_seqnum, §5.3.2.22-24) become a UDH
  concatenation element (3GPP TS 23.040 §9.2.3.24.8, IEI 0x08: a 16-bit reference), esm_class UDHI set,
  unless the message's UDH names its part already (the codec refused one naming another);
- a data_sm becomes a deliver_sm (the fields they share, §4.7.1 / §4.6.1; the others at their defaults);
- a receipt with no text (a data_sm's, typically: its message and state in TLVs only) gets SMPP 3.4 appendix B
  text written from receipted_message_id, message_state and network_error_code (its dates: now on the clock the
  caller gives, the proxy's in `[engine] timezone`, as the SMSC dates its own; UTC without one);
- every other TLV is dropped: a receipt's receipted_message_id and message_state (its text says them,
  SMPP 3.4 appendix B), network_error_code, ports, user_message_reference, vendor tags.

A message whose user data is then longer than short_message holds (254 octets, §5.2.21), or a data_sm whose
address is longer than a deliver_sm's (20 octets, §4.6.1; a data_sm's may be 64), cannot reach such an ESME
whole: `for_v33` gives None and the proxy does not offer it to that bind (routing.py).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from . import constants as C
from .pdu import DeliverSm, decode, encode, tlv
from .errors import UdhError
from .fields import cstring_limit
from .udh import parse_udh, sar_info

MAX_SHORT_MESSAGE = 254
MAX_UDHL = 255
# a data_sm's addresses may be 64 octets (§4.7.1), a deliver_sm's 20: a longer one cannot go as a deliver_sm
_DELIVER_ADDR_MAX = {name: cstring_limit(C.DELIVER_SM, name)[0] - 1 for name in ("source_addr", "destination_addr")}
_CONCAT16 = 0x08            # 3GPP TS 23.040 §9.2.3.24.8: concatenated short messages, 16-bit reference
_MESSAGES = (C.DELIVER_SM, C.DATA_SM)
_DELIVER_FIELDS = tuple(name for name, _ in DeliverSm.spec)
_ID_ONLY = (C.SUBMIT_SM_RESP, C.DATA_SM_RESP, C.DELIVER_SM_RESP)      # a body of one C-Octet String, message_id
_RECEIPTS = (C.ESM_TYPE_DELIVERY_RECEIPT, C.ESM_TYPE_INTERMEDIATE)
# SMPP 3.4 §5.3.2.35 message_state -> appendix B's stat: word
_STAT = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}


def downgrade(pdu, local_now=None):
    """The PDU a 3.3 peer reads for `pdu` (a decoded PDU), or None when its message does not fit short_message.
    `local_now()`: the clock a receipt text written here is dated by (None: UTC)."""
    if not pdu.tlvs and pdu.command_id != C.DATA_SM:
        return pdu                          # nothing a 3.3 peer lacks (a deliver_sm's short_message fits by its spec)
    if pdu.command_id not in _MESSAGES:
        return replace(pdu, tlvs=(), raw=b"")
    ud = tlv(pdu, C.TAG_MESSAGE_PAYLOAD)
    if ud is None:
        ud = getattr(pdu, "short_message", b"")
    esm_class, data_coding = pdu.esm_class, pdu.data_coding
    if not ud and esm_class & C.ESM_TYPE_MASK in _RECEIPTS:
        # a receipt that says its message and state in TLVs only (a data_sm's, typically): the text a 3.3 ESME
        # matches receipts by, else it acknowledges one it cannot read (the SMSC is told it was delivered)
        ud = _receipt_text(pdu, local_now)
        data_coding = 0
    if any(len(getattr(pdu, name)) > n for name, n in _DELIVER_ADDR_MAX.items()):     # (latin-1: octets)
        return None                         # (a data_sm's address longer than a deliver_sm holds)
    try:
        sar = sar_info(pdu.tlvs)
        if sar is not None:
            ud, esm_class = _with_concat(ud, esm_class, sar)
    except UdhError:
        pass                                # SAR TLVs or a UDH that say no part (routed unread): dropped as sent
    if ud is None or len(ud) > MAX_SHORT_MESSAGE:
        return None
    fields = {name: getattr(pdu, name) for name in _DELIVER_FIELDS if hasattr(pdu, name)}
    fields.update(esm_class=esm_class, data_coding=data_coding, short_message=ud)
    return DeliverSm(sequence_number=pdu.sequence_number, command_status=pdu.command_status, **fields)


def _receipt_text(pdu, local_now=None) -> bytes:
    """SMPP 3.4 appendix B text for a receipt from its receipted_message_id, message_state and network_error_code
    (its error code, 3 digits); its dates are unknown: now on `local_now()` (the proxy's clock in `[engine]
    timezone`, as our own receipts and the SMSC's say them: submit.py), UTC without one."""
    mid = (tlv(pdu, C.TAG_RECEIPTED_MESSAGE_ID) or b"").rstrip(b"\0").decode("latin-1")
    if not mid:
        return b""
    state = tlv(pdu, C.TAG_MESSAGE_STATE) or b"\x07"
    stat = _STAT.get(state[0], "UNKNOWN")
    nec = tlv(pdu, C.TAG_NETWORK_ERROR_CODE) or b""
    err = int.from_bytes(nec[1:3], "big") % 1000 if len(nec) == 3 else 0
    now = (local_now() if local_now is not None else datetime.now(timezone.utc)).strftime("%y%m%d%H%M")
    return (f"id:{mid} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{now} done date:{now} "
            f"stat:{stat} err:{err:03d} text:").encode("latin-1")


def _with_concat(ud: bytes, esm_class: int, sar: tuple) -> tuple[bytes | None, int]:
    """`ud` with the SAR TLVs' (ref, total, seq) as a UDH element (in the UDH it has, else in a new one); None
    when its UDH has no room for it (a UDHL over 255: then over short_message's 254 octets too)."""
    ref, total, seq = sar
    ie = bytes((_CONCAT16, 4)) + (ref & 0xFFFF).to_bytes(2, "big") + bytes((total, seq))
    if esm_class & C.ESM_UDHI and ud:
        n, concat = parse_udh(ud)
        if concat is not None:              # its UDH names the part already (the same one: udh.concat_conflict)
            return ud, esm_class
        if ud[0] + len(ie) > MAX_UDHL:
            return None, esm_class
        return bytes((ud[0] + len(ie),)) + ud[1:n] + ie + ud[n:], esm_class
    return bytes((len(ie),)) + ie + ud, esm_class | C.ESM_UDHI


def for_v33(raw: bytes, local_now=None) -> bytes | None:
    """`raw` (one whole PDU) as a 3.3 peer is sent it: the same bytes when they hold nothing 3.3 lacks.
    `local_now`: as downgrade's."""
    if len(raw) == 16 or (int.from_bytes(raw[4:8], "big") in _ID_ONLY and raw.find(b"\0", 16) == len(raw) - 1):
        return raw                          # (a submit_sm_resp's message_id and nothing after it: not decoded)
    pdu = decode(raw)
    out = downgrade(pdu, local_now)
    if out is None:
        return None
    return raw if out is pdu else encode(out)


def fits_v33(pdu) -> bool:
    """Whether a 3.3 peer can be sent `pdu` whole (a PDU as received, with its `raw` bytes, or one built here). A
    held receipt (held.py: a `v33_fits` slot) is read once: it keeps the answer."""
    known = getattr(pdu, "v33_fits", None)
    if known is not None:
        return known
    raw = getattr(pdu, "raw", b"")
    if raw and len(raw) <= 16 + MAX_SHORT_MESSAGE and int.from_bytes(raw[4:8], "big") != C.DATA_SM:
        # its user data is part of a body this short, and the UDH element SAR TLVs become is shorter than they
        # are (7 octets at most for 16): it fits (most receipts and MO; no decoding). A data_sm's addresses
        # may be longer than a deliver_sm's: read
        return True
    p = decode(raw) if raw else pdu         # (a lean view or a held receipt: its bytes say it all)
    fits = p.command_id not in _MESSAGES or downgrade(p) is not None
    if hasattr(pdu, "v33_fits"):
        pdu.v33_fits = fits
    return fits
