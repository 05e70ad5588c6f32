"""A short-code reply longer than one SMS (shortcode_replies.py) as concatenated parts, and the count of one reply
sent in several submit_sm.

Theory of operation. A reply is encoded as `encode_text` does it: GSM 03.38, one septet an octet (data_coding 0 on
this SMPP link is unpacked: the SMSC packs it for the air), else UCS-2 (data_coding 8). One SMS holds 160 septets, 70
UCS-2 characters or 140 octets of other data (3GPP TS 23.040 §9.2.3.16). A longer one goes as parts, each its own
submit_sm whose short_message opens with a User Data Header (SMPP 3.4 §5.2.12: esm_class UDHI) of one concatenation
element (3GPP TS 23.040 §9.2.3.24.1: IEI 0x00, an 8-bit reference, the number of parts, this part's number); the 6
octets of UDH leave 153 septets (with the fill bit they take 7), 67 UCS-2 characters or 134 octets. A part never ends
inside an escape pair (ESC and a character of the extension table, `{` or `€`: 2 septets) or a UTF-16 surrogate pair
(an emoji): the handset would show two wrong characters at the join.

`Reply` is one reply's account: however many submit_sm carry it, it is counted once, sent, failed, unanswered or
dropped, when the last of them is settled."""
from __future__ import annotations

ONE_SMS = {0x00: 160, 0x08: 140}    # short_message octets one SMS holds, by data_coding (other data: 140)
PART = {0x00: 153, 0x08: 134}       # ... and one part with its UDH (other data: 134)
MAX_PARTS = 255                     # 3GPP TS 23.040 §9.2.3.24.1: the number of parts is one octet
_ESC = 0x1B                         # GSM 03.38: the next septet is read in the extension table


def one_sms(data_coding: int, body: bytes) -> bool:
    return len(body) <= ONE_SMS.get(data_coding, 140)


def cuts(data_coding: int, body: bytes) -> list[bytes]:
    """`body` cut into the user data of parts, no escape or surrogate pair split."""
    most = PART.get(data_coding, 134)
    out, i, n = [], 0, len(body)
    while i < n:
        end = min(i + most, n)
        if end < n:
            # gsm_encode writes ESC only to open a pair (no extension code is 0x1B): one last is a pair cut
            if data_coding == 0x00 and body[end - 1] == _ESC:
                end -= 1
            elif data_coding == 0x08 and 0xD8 <= body[end - 2] <= 0xDB:    # a high surrogate: its pair cut
                end -= 2
        out.append(body[i:end])
        i = end
    return out


def concatenated(data_coding: int, body: bytes, reference: int) -> list[bytes]:
    """The short_message of each part, UDH first; ValueError for more than MAX_PARTS parts."""
    user_data = cuts(data_coding, body)
    if len(user_data) > MAX_PARTS:
        raise ValueError(f"{len(user_data)} parts, over {MAX_PARTS}")
    return [bytes((5, 0x00, 3, reference & 0xFF, len(user_data), i)) + ud for i, ud in enumerate(user_data, 1)]


class Reply:
    """One reply's submit_sm: `left` not settled yet; `outcome` None (sent so far) or the first thing that went
    wrong ("failed", "unanswered", "dropped"); `payload` while it is whole in message_payload (a refusal of that
    TLV is retried as parts, once)."""

    __slots__ = ("destination", "left", "outcome", "payload", "late")

    def __init__(self, destination: str, parts: int, payload: bool = False):
        self.destination, self.left, self.outcome, self.payload, self.late = destination, parts, None, payload, False

    def went_wrong(self, outcome: str) -> None:
        if self.outcome is None or (self.outcome == "unanswered" and outcome != "unanswered"):
            self.outcome = outcome      # failed or dropped says more than unanswered (that part may be delivered)

    @property
    def given_up(self) -> bool:
        """Its remaining parts are not worth sending: the subscriber cannot get it whole."""
        return self.outcome in ("failed", "dropped")
