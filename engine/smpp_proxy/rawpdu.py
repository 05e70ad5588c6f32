"""Edits on the bytes of a PDU that was already decoded (so its layout is known to be sound):
what the proxy changes in a forwarded submit_sm, done without re-encoding the PDU.

These live beside the proxy rather than in the codec because they assume a PDU the codec has
accepted; they never validate.
"""
from __future__ import annotations

import struct

_TLV_HDR = struct.Struct(">HH")


def with_length(raw: bytes | bytearray) -> bytes:
    """`raw` with command_length set to its length."""
    return len(raw).to_bytes(4, "big") + bytes(raw[4:])


def append_tlv(raw: bytes, tag: int, value: bytes) -> bytes:
    """The PDU with one more optional parameter at its end (SMPP 3.4 §3.2: TLVs follow the
    mandatory fields in any order), command_length adjusted."""
    n = len(raw) + 4 + len(value)
    return n.to_bytes(4, "big") + raw[4:] + _TLV_HDR.pack(tag, len(value)) + value


def submit_sm_length_offset(raw: bytes) -> int:
    """Offset of sm_length in a submit_sm or deliver_sm (SMPP 3.4 §4.4.1: service_type,
    source ton/npi/addr, dest ton/npi/addr, esm_class, protocol_id, priority_flag,
    schedule_delivery_time, validity_period, then four 1-octet fields)."""
    off = raw.index(0, 16) + 1 + 2                 # service_type, source_addr_ton/npi
    off = raw.index(0, off) + 1 + 2                # source_addr, dest_addr_ton/npi
    off = raw.index(0, off) + 1 + 3                # destination_addr, esm_class..priority_flag
    off = raw.index(0, off) + 1                    # schedule_delivery_time
    off = raw.index(0, off) + 1 + 4                # validity_period, registered_delivery..sm_default_msg_id
    return off


def replace_short_message(raw: bytes, short_message: bytes) -> bytes:
    """The submit_sm with another short_message (<= 254 octets), command_length adjusted."""
    off = submit_sm_length_offset(raw)
    end = off + 1 + raw[off]
    return with_length(raw[:off] + bytes((len(short_message),)) + short_message + raw[end:])


def resp_message_id(frame: bytes) -> str | None:
    """message_id of a submit_sm_resp / data_sm_resp frame whose body is exactly that one
    C-Octet String (None if it is anything else: such a PDU takes the codec's path)."""
    if len(frame) == 16:
        return ""
    if frame[-1] != 0 or frame.find(0, 16) != len(frame) - 1:
        return None
    return frame[16:-1].decode("latin-1")
