"""SMS over IMS bodies (`application/vnd.3gpp.sms`, 3GPP TS 24.341 §7.3): RP messages (3GPP TS 24.011 §7.3) and the
TPDU an RP-DATA carries (3GPP TS 23.040 §9.2), bytes -> frozen events. No I/O.

Theory of operation: a SIP MESSAGE carrying SMS has one RP message as its body. Only an RP-DATA carries a text:
MS -> network (RP-MTI 0) it has an empty RP-Originator Address, the SMSC as RP-Destination Address and an SMS-SUBMIT
(or SMS-COMMAND) as RP-User Data; network -> MS (RP-MTI 1) the SMSC as RP-Originator Address, an empty
RP-Destination Address and an SMS-DELIVER (or SMS-STATUS-REPORT). RP-ACK, RP-ERROR and RP-SMMA carry no text to
judge: `decode_rp` returns them as `RpOther`. `decode_tpdu` reads the TPDU an RP-DATA carries in its direction (the
TP-MTI values mean different PDUs in the two directions, §9.2.3.1) and gives the text as a handset shows it: GSM 7-bit
default alphabet (packed, after the UDH and its fill bits, §9.2.3.24), UCS2 (UTF-16BE, as the SMPP codec reads it),
or 8-bit data (not text: judged on the URLs readable in it, as the SMPP proxy judges a binary payload). Anything that
does not parse -- a length past the end, a reserved message type, a UDH that runs past the user data -- is
`Sms3gppError`, whose text says what, for the answer's reason phrase. The GSM 03.38 tables, the UCS2 reading and the
UDH check are the SMPP codec's (engine/smpp_proxy/codec): one reading of a TPDU's user data in the engine.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..smpp_proxy.codec.binary import readable_text
from ..smpp_proxy.codec.errors import UdhError
from ..smpp_proxy.codec.text import gsm_decode, gsm_unpack, read_text
from ..smpp_proxy.codec.udh import parse_udh

CONTENT_TYPE = "application/vnd.3gpp.sms"       # 3GPP TS 24.341 §7.3.1

# RP-MTI, 3GPP TS 24.011 §8.2.2 (bits 3-1 of the first octet)
RP_DATA_MS_N, RP_DATA_N_MS, RP_ACK_MS_N, RP_ACK_N_MS, RP_ERROR_MS_N, RP_ERROR_N_MS, RP_SMMA = range(7)
RP_NAMES = ("RP-DATA", "RP-DATA", "RP-ACK", "RP-ACK", "RP-ERROR", "RP-ERROR", "RP-SMMA")
# TP-MTI, 3GPP TS 23.040 §9.2.3.1, by direction
SMS_DELIVER, SMS_SUBMIT, SMS_COMMAND_OR_STATUS = 0, 1, 2
TON_ALPHANUMERIC = 5                            # 3GPP TS 23.040 §9.1.2.5: type of number 101
MAX_SEPTETS, MAX_OCTETS = 160, 140              # TP-UDL at most (§9.2.3.16)
_BCD = "0123456789*#abc"                        # TS 24.008 §10.5.4.7 semi-octets 0-E (F: filler)


class Sms3gppError(ValueError):
    """The body is no RP message or TPDU this decoder can read (the peer sent something wrong): its text is the reason
    answered with (400) and logged."""


@dataclass(frozen=True, slots=True)
class Address:
    """An RP or TP address: `digits` as written (an alphanumeric TP-OA decoded to its text), its type of number
    (0 unknown, 1 international, 2 national, 5 alphanumeric: SMPP's TON values are these) and numbering plan."""
    digits: str
    ton: int = 0
    npi: int = 1


@dataclass(frozen=True, slots=True)
class RpData:
    """RP-DATA, 3GPP TS 24.011 §7.3.1: `rp_oa` empty (None) MS -> network, `rp_da` empty network -> MS."""
    rp_mti: int
    rp_mr: int
    rp_oa: Address | None
    rp_da: Address | None
    rp_ud: bytes                                # the TPDU

    @property
    def to_network(self) -> bool:
        return self.rp_mti == RP_DATA_MS_N


@dataclass(frozen=True, slots=True)
class RpOther:
    """RP-ACK, RP-ERROR or RP-SMMA (§7.3.2-7.3.4): an answer or a notice, no text."""
    rp_mti: int
    rp_mr: int

    @property
    def name(self) -> str:
        return RP_NAMES[self.rp_mti]


@dataclass(frozen=True, slots=True)
class SmsTpdu:
    """An SMS-SUBMIT (`tp_da` its destination, the real recipient) or SMS-DELIVER (`tp_oa` its originator), §9.2.2.1-2:
    `text` as a handset shows it (a binary one's readable URLs, `binary` then true), `concat` (reference, total,
    part) when its UDH names it a part of a concatenated message. `tp_mti` is None for an SMS-COMMAND or
    SMS-STATUS-REPORT (no text: `text` is "")."""
    tp_mti: int | None
    tp_mr: int | None = None
    tp_da: Address | None = None
    tp_oa: Address | None = None
    tp_pid: int = 0
    tp_dcs: int = 0
    tp_udhi: bool = False
    concat: tuple | None = None
    text: str = ""
    binary: bool = False

    @property
    def name(self) -> str:
        return {SMS_SUBMIT: "SMS-SUBMIT", SMS_DELIVER: "SMS-DELIVER"}.get(self.tp_mti, "SMS-COMMAND/STATUS-REPORT")


def _need(data: bytes, end: int, what: str) -> None:
    if end > len(data):
        raise Sms3gppError(f"{what} cut short ({len(data)} octets, {end} needed)")


def _bcd(octets: bytes, count: int | None = None) -> str:
    """Semi-octets, low nibble first, up to a filler F (or `count` digits)."""
    out = []
    for b in octets:
        for nib in (b & 0x0F, b >> 4):
            if nib == 0x0F:
                return "".join(out)
            out.append(_BCD[nib])
    return "".join(out if count is None else out[:count])


def _rp_address(data: bytes, i: int, what: str) -> tuple[Address | None, int]:
    """An RP address (TS 24.011 §8.2.5.1-2: length, TON/NPI, BCD digits) at `i`: (None when empty, the next index)."""
    _need(data, i + 1, what)
    n = data[i]
    _need(data, i + 1 + n, what)
    if n == 0:
        return None, i + 1
    if n > 11:                                  # TON/NPI and at most 20 digits
        raise Sms3gppError(f"{what} of {n} octets (at most 11)")
    t = data[i + 1]
    return Address(_bcd(data[i + 2:i + 1 + n]), (t >> 4) & 0x07, t & 0x0F), i + 1 + n


def decode_rp(body: bytes) -> RpData | RpOther:
    """The RP message of a `application/vnd.3gpp.sms` body; Sms3gppError when it does not parse."""
    _need(body, 2, "RP message")
    mti, mr = body[0] & 0x07, body[1]
    if mti > RP_SMMA:
        raise Sms3gppError(f"reserved RP-MTI {mti}")
    if mti not in (RP_DATA_MS_N, RP_DATA_N_MS):
        return RpOther(mti, mr)
    oa, i = _rp_address(body, 2, "RP-Originator Address")
    da, i = _rp_address(body, i, "RP-Destination Address")
    # §7.3.1.1: MS -> network the originator is empty and the destination the SMSC; network -> MS the other way
    if mti == RP_DATA_MS_N and (oa is not None or da is None):
        raise Sms3gppError("RP-DATA (MS to network) needs an empty RP-Originator and an SMSC RP-Destination Address")
    if mti == RP_DATA_N_MS and (oa is None or da is not None):
        raise Sms3gppError("RP-DATA (network to MS) needs an SMSC RP-Originator and an empty RP-Destination Address")
    _need(body, i + 1, "RP-User Data")
    n = body[i]
    _need(body, i + 1 + n, "RP-User Data")
    if n == 0:
        raise Sms3gppError("RP-User Data is empty (RP-DATA carries a TPDU)")
    return RpData(mti, mr, oa, da, body[i + 1:i + 1 + n])


def _tp_address(data: bytes, i: int, what: str) -> tuple[Address, int]:
    """A TP address (TS 23.040 §9.1.2.5: length in useful semi-octets, type, digits) at `i`; an alphanumeric one
    (type of number 101) is GSM 7-bit packed text."""
    _need(data, i + 2, what)
    n, t = data[i], data[i + 1]
    if n > 20:
        raise Sms3gppError(f"{what} of {n} semi-octets (at most 20)")
    end = i + 2 + (n + 1) // 2
    _need(data, end, what)
    ton, raw = (t >> 4) & 0x07, data[i + 2:end]
    digits = gsm_decode(gsm_unpack(raw, n * 4 // 7)) if ton == TON_ALPHANUMERIC else _bcd(raw, n)
    return Address(digits, ton, t & 0x0F), end


def alphabet(dcs: int) -> str:
    """"gsm7", "8bit" or "ucs2": the alphabet TP-DCS `dcs` names (3GPP TS 23.038 §4). Compressed text (§3.9, which no
    one sends) is read as 8-bit data: judged on what is readable in it. §4: "Any reserved codings shall be assumed
    to be the GSM 7 bit default alphabet ... by a receiving entity": the reserved alphabet (bits 3-2 = 11) and the
    reserved groups are GSM 7-bit, as a handset reads them."""
    group = dcs >> 4
    if group <= 0x07:                           # general data coding (00xx) and automatic deletion (01xx)
        if dcs & 0x20:
            return "8bit"
        return ("gsm7", "8bit", "ucs2", "gsm7")[(dcs >> 2) & 0x03]
    if group in (0x0C, 0x0D):                   # message waiting indication, discard / store: GSM 7-bit
        return "gsm7"
    if group == 0x0E:                           # message waiting indication, store: UCS2
        return "ucs2"
    if group == 0x0F:                           # data coding / message class
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"                               # 1000-1011 reserved: §4 says read as the GSM 7-bit default alphabet


def _user_data(data: bytes, i: int, dcs: int, udhi: bool) -> tuple[str, bool, tuple | None]:
    """(text, binary, concat) of TP-UDL and TP-UD at `i` (§9.2.3.16, §9.2.3.24)."""
    _need(data, i + 1, "TP-UDL")
    udl, ud, kind = data[i], data[i + 1:], alphabet(dcs)
    if kind == "gsm7":
        if udl > MAX_SEPTETS:
            raise Sms3gppError(f"TP-UDL of {udl} septets (at most {MAX_SEPTETS})")
        octets = (udl * 7 + 7) // 8
    else:
        if udl > MAX_OCTETS:
            raise Sms3gppError(f"TP-UDL of {udl} octets (at most {MAX_OCTETS})")
        octets = udl
    if len(ud) < octets:
        raise Sms3gppError(f"TP-User-Data cut short (TP-UDL {udl}: {octets} octets, {len(ud)} there)")
    ud = ud[:octets]
    concat, hl = None, 0
    if udhi:
        try:
            hl, concat = parse_udh(ud)
        except UdhError as e:
            raise Sms3gppError(f"TP-User-Data-Header: {e}") from None
    if kind == "gsm7":
        # the text starts at the septet boundary after the header (fill bits, §9.2.3.24)
        head_septets = (hl * 8 + 6) // 7
        if head_septets > udl:
            raise Sms3gppError(f"TP-User-Data-Header of {hl} octets is longer than TP-UDL ({udl} septets)")
        text = gsm_decode(gsm_unpack(ud[hl:], udl - head_septets, head_septets * 7 - hl * 8))
        return text, False, concat
    if kind == "ucs2":
        # read as the SMPP codec reads UCS2 (codec.text.read_text): broken user data (an odd octet count, a lone
        # surrogate: where a concatenated message's part meets the next) carries its octets (Ucs2Octets), so its
        # parts are read joined by octets too (concat.joined, msgparts.py); Latin-1 sent as UCS2 is read both ways
        return read_text(0x08, ud[hl:])[0], False, concat
    return readable_text(ud[hl:]) or "", True, concat


def decode_tpdu(tpdu: bytes, to_network: bool) -> SmsTpdu:
    """The TPDU an RP-DATA carries; `to_network`: MS -> network (SMS-SUBMIT, SMS-COMMAND), else network -> MS
    (SMS-DELIVER, SMS-STATUS-REPORT). Sms3gppError when it does not parse."""
    _need(tpdu, 1, "TPDU")
    first = tpdu[0]
    mti, udhi = first & 0x03, bool(first & 0x40)
    if mti == 0x03:
        raise Sms3gppError("reserved TP-MTI 3")
    if mti == SMS_COMMAND_OR_STATUS:
        return SmsTpdu(None)
    if to_network:
        if mti != SMS_SUBMIT:                   # an SMS-DELIVER-REPORT travels in RP-ACK / RP-ERROR, never RP-DATA
            raise Sms3gppError("RP-DATA (MS to network) carries an SMS-DELIVER-REPORT, not an SMS-SUBMIT")
        _need(tpdu, 2, "TP-MR")
        mr = tpdu[1]
        da, i = _tp_address(tpdu, 2, "TP-Destination-Address")
        _need(tpdu, i + 2, "TP-PID and TP-DCS")
        pid, dcs = tpdu[i], tpdu[i + 1]
        vpf = (first >> 3) & 0x03               # §9.2.3.3: none, enhanced (7), relative (1), absolute (7)
        i += 2 + (0, 7, 1, 7)[vpf]
        text, binary, concat = _user_data(tpdu, i, dcs, udhi)
        return SmsTpdu(SMS_SUBMIT, mr, da, None, pid, dcs, udhi, concat, text, binary)
    if mti != SMS_DELIVER:
        raise Sms3gppError("RP-DATA (network to MS) carries an SMS-SUBMIT-REPORT, not an SMS-DELIVER")
    oa, i = _tp_address(tpdu, 1, "TP-Originating-Address")
    _need(tpdu, i + 2, "TP-PID and TP-DCS")
    pid, dcs = tpdu[i], tpdu[i + 1]
    i += 2 + 7                                  # TP-SCTS, §9.2.3.11
    text, binary, concat = _user_data(tpdu, i, dcs, udhi)
    return SmsTpdu(SMS_DELIVER, None, None, oa, pid, dcs, udhi, concat, text, binary)
