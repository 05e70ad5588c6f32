"""Message text: GSM 03.38, Latin-1, UCS2/UTF-16BE, binary; UDH and concatenation info.

data_coding (SMPP 3.4 §5.2.19): 0 = SMSC default alphabet (GSM 03.38 here, one septet per
octet as SMPP carries it), 1 = IA5/ASCII, 3 = Latin-1, 8 = UCS2 (decoded as UTF-16BE so
surrogate pairs survive), 2/4 = 8-bit binary (not text). GSM 7-bit *packed* is used when
the DCS general-coding group says 7-bit and the caller asks for it (some SMSCs send packed).
"""
from __future__ import annotations

from .errors import TextError
from .udh import concat_info, split_udh, udh_elements  # noqa: F401  (re-exported: the old home)

# GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), index = septet value
GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
             "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]",
           0x40: "|", 0x65: "€"}
assert len(GSM_BASIC) == 128
_GSM_ENC = {ch: i for i, ch in enumerate(GSM_BASIC) if ch != "\x1b"}
_GSM_EXT_ENC = {ch: i for i, ch in GSM_EXT.items()}


def gsm_decode(septets: bytes) -> str:
    out, esc = [], False
    for b in septets:
        b &= 0x7F
        if esc:
            out.append(GSM_EXT.get(b, GSM_BASIC[b] if b != 0x1B else " "))
            esc = False
        elif b == 0x1B:
            esc = True
        else:
            out.append(GSM_BASIC[b])
    return "".join(out)


def gsm_encode(text: str) -> bytes:
    out = bytearray()
    for ch in text:
        i = _GSM_ENC.get(ch)
        if i is not None:
            out.append(i)
            continue
        j = _GSM_EXT_ENC.get(ch)
        if j is None:
            raise TextError(f"{ch!r} is not in the GSM 03.38 alphabet")
        out += bytes((0x1B, j))
    return bytes(out)


def gsm_pack(septets: bytes, fill_bits: int = 0) -> bytes:
    acc, nbits, out = 0, fill_bits, bytearray()
    for s in septets:
        acc |= (s & 0x7F) << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def gsm_unpack(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    acc, nbits, out = 0, 0, bytearray()
    for b in data:
        acc |= b << nbits
        nbits += 8
        if fill_bits:
            acc >>= fill_bits
            nbits -= fill_bits
            fill_bits = 0
        while nbits >= 7:
            out.append(acc & 0x7F)
            acc >>= 7
            nbits -= 7
    if count is not None:
        out = out[:count]
    elif out and len(data) * 8 % 7 == 0 and out[-1] == 0x0D and len(out) % 8 == 0:
        out = out[:-1]               # 3GPP TS 23.038 §6.1.2.3.1: CR padding of a full last octet
    return bytes(out)


def is_binary(data_coding: int) -> bool:
    if data_coding in (0x02, 0x04):
        return True
    if data_coding & 0xC0 == 0x00 and data_coding & 0x0C == 0x04 and data_coding & 0xF0 in (0x00, 0x10):
        return data_coding & 0x20 == 0 and data_coding >= 0x10     # general group, 8-bit class
    if data_coding & 0xF0 == 0xF0:
        return bool(data_coding & 0x04)
    return False


def decode_text(data_coding: int, payload: bytes, packed: bool = False) -> str | None:
    """Text of a message body (UDH already removed), or None for binary content."""
    dc = data_coding
    if is_binary(dc):
        return None
    if dc == 0x08 or (dc & 0xC0 == 0x00 and dc >= 0x10 and dc & 0x0C == 0x08) or dc & 0xF0 == 0xE0:
        if len(payload) % 2 == 0:
            t = payload.decode("utf-16-be", errors="replace")
            # carrier quirk: DCS 8 declared but Latin-1 bytes sent (private-use or broken
            # surrogate code units are the tell); read them as Latin-1 instead
            if not any("\ue000" <= ch <= "\uf8ff" or ch == "\ufffd" for ch in t):
                return t
        return payload.decode("latin-1")
    if dc == 0x03:
        return payload.decode("latin-1")
    if dc == 0x01:
        return payload.decode("ascii", errors="replace")
    if dc in (0x05, 0x06, 0x07, 0x0A, 0x0D, 0x0E):      # JIS, Cyrillic, Hebrew, ISO-2022-JP, ... best effort
        return payload.decode({0x06: "iso8859_5", 0x07: "iso8859_8"}.get(dc, "latin-1"), errors="replace")
    # 0x00 and GSM 7-bit DCS groups
    return gsm_decode(gsm_unpack(payload) if packed else payload)


def encode_text(text: str, prefer: str = "gsm") -> tuple[int, bytes]:
    """(data_coding, bytes): GSM 03.38 unpacked when the text fits the alphabet, else UCS2."""
    if prefer == "gsm":
        try:
            return 0x00, gsm_encode(text)
        except TextError:
            pass
    return 0x08, text.encode("utf-16-be")


def pdu_text(pdu, packed: bool = False) -> str | None:
    """Text of a submit_sm / deliver_sm / data_sm: message_payload TLV if present, else
    short_message with its UDH removed. None for binary content."""
    payload = None
    for t in pdu.tlvs:
        if t.tag == 0x0424:
            payload = t.value
    esm = getattr(pdu, "esm_class", 0)
    if payload is None:
        payload = getattr(pdu, "short_message", b"")
    _, body = split_udh(esm, payload)
    return decode_text(getattr(pdu, "data_coding", 0), body, packed)
