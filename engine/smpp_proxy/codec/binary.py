"""What a binary payload says that a filter can judge: the URLs in it.

Binary data_coding (0x02, 0x04, 0xF4-0xF7, the 8-bit general groups) is not text, but it is
how WAP push carries a link: a WSP Push PDU (WAP-230 §8.2.4: TID, PDU type 0x06, headers)
whose body is a WBXML (WAP-192) Service Indication (WAP-167, public id 0x05) or Service
Loading (WAP-168, public id 0x06). Their href attribute is written as an attribute-start
token that carries the URL's beginning ("href=\"http://www.\""), inline strings (STR_I) or
string-table references (STR_T), and value tokens (".com/"). `binary_urls` rebuilds those
URLs and also picks plain ASCII URLs out of any other payload, so the pipeline can judge the
hosts of a binary message like those of a text one.

Cost is one pass over the payload (at most 64 KiB in a PDU), and at most MAX_URLS URLs of at
most MAX_URL characters come back; a payload that is not well-formed WBXML just ends the walk.
"""
from __future__ import annotations

import re

MAX_URLS, MAX_URL = 8, 512
PUBLIC_SI, PUBLIC_SL = 0x05, 0x06
# attribute-start tokens for href, with the URL prefix they stand for (code page 0)
_HREF_START = {
    PUBLIC_SI: {0x0B: "", 0x0C: "http://", 0x0D: "http://www.", 0x0E: "https://", 0x0F: "https://www."},
    PUBLIC_SL: {0x08: "", 0x09: "http://", 0x0A: "http://www.", 0x0B: "https://", 0x0C: "https://www."},
}
_VALUE = {0x85: ".com/", 0x86: ".edu/", 0x87: ".net/", 0x88: ".org/"}       # WAP-167 / WAP-168 §8.3.3
# a URL in plain ASCII: a scheme or "www.", or a dotted host followed by a path
_ASCII_URL = re.compile(rb"(?i)(?:https?://|www\.)[\x21-\x7e]{2,512}"
                        rb"|(?<![\x21-\x7e])[a-z0-9][a-z0-9-]{0,62}(?:\.[a-z0-9-]{1,63})*\.[a-z]{2,24}/[\x21-\x7e]{0,512}")


class _End(Exception):
    pass


class _Reader:
    __slots__ = ("data", "i")

    def __init__(self, data: bytes, i: int = 0):
        self.data, self.i = data, i

    def byte(self) -> int:
        if self.i >= len(self.data):
            raise _End
        b = self.data[self.i]
        self.i += 1
        return b

    def uintvar(self) -> int:
        """WAP-230 §8.1.2 / WBXML mb_u_int32: 7 bits per octet, high bit = more follow (≤ 5 octets)."""
        v = 0
        for _ in range(5):
            b = self.byte()
            v = (v << 7) | (b & 0x7F)
            if not b & 0x80:
                return v
        raise _End

    def cstr(self) -> bytes:
        end = self.data.find(b"\x00", self.i)
        if end < 0:
            raise _End
        s = self.data[self.i:end]
        self.i = end + 1
        return s

    def skip(self, n: int) -> None:
        if self.i + n > len(self.data):
            raise _End
        self.i += n


def _wsp_body(data: bytes) -> int:
    """Offset of a WSP Push / ConfirmedPush PDU's data, or 0 when `data` is not one."""
    if len(data) > 3 and data[1] in (0x06, 0x07):
        r = _Reader(data, 2)
        try:
            hl = r.uintvar()
            r.skip(hl)
            return r.i
        except _End:
            return 0
    return 0


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def wbxml_urls(data: bytes, off: int = 0) -> list[str]:
    """href URLs of an SI or SL document starting at `off`; [] for anything else."""
    r = _Reader(data, off)
    urls: list[str] = []
    try:
        if r.byte() > 0x03:                          # WBXML version 1.0 - 1.3
            return urls
        public = r.uintvar()
        if public == 0:
            r.uintvar()
        starts = _HREF_START.get(public)
        if starts is None:
            return urls
        r.uintvar()                                  # charset (UTF-8 or a single-byte set: read as UTF-8)
        n = r.uintvar()
        table = data[r.i:r.i + n]
        r.skip(n)

        def table_str(idx):
            end = table.find(b"\x00", idx)
            return _text(table[idx:end if end >= 0 else len(table)])

        while len(urls) < MAX_URLS:
            t = r.byte()
            if t in (0x00,):                         # SWITCH_PAGE
                r.byte()
            elif t in (0x01, 0xC0, 0xC1, 0xC2):      # END, EXT_0..2
                pass
            elif t in (0x02, 0x80, 0x81, 0x82, 0x83):
                r.uintvar()
            elif t in (0x03, 0x40, 0x41, 0x42):      # STR_I, EXT_I_0..2
                r.cstr()
            elif t == 0xC3:                          # OPAQUE
                r.skip(r.uintvar())
            else:
                if t in (0x04, 0x44, 0x84, 0xC4):    # LITERAL*: tag name from the string table
                    r.uintvar()
                if t & 0x80 or t == 0x43:            # the tag has attributes (or a PI): walk them
                    _attributes(r, starts, table_str, urls)
    except _End:
        pass
    return urls


def _attributes(r: _Reader, starts, table_str, urls: list[str]) -> None:
    cur: list[str] | None = None

    def done():
        if cur:
            urls.append("".join(cur)[:MAX_URL])

    while True:
        t = r.byte()
        if t == 0x01:                                # END of the attribute list
            done()
            return
        if t == 0x00:
            r.byte()
        elif t == 0x03:
            s = _text(r.cstr())
            if cur is not None:
                cur.append(s)
        elif t == 0x83:
            idx = r.uintvar()
            if cur is not None:
                cur.append(table_str(idx))
        elif t == 0x02:
            c = r.uintvar()
            if cur is not None and c < 0x110000:
                cur.append(chr(c))
        elif t == 0xC3:
            n = r.uintvar()
            r.skip(n)
        elif t in (0x40, 0x41, 0x42):
            r.cstr()
        elif t in (0x80, 0x81, 0x82):
            r.uintvar()
        elif t == 0x04:                              # LITERAL attribute name
            r.uintvar()
            done()
            cur = None
        elif t < 0x80:                               # attribute start
            done()
            prefix = starts.get(t)
            cur = [prefix] if prefix is not None else None
        elif cur is not None:                        # attribute value token
            cur.append(_VALUE.get(t, ""))


def binary_urls(payload: bytes) -> list[str]:
    """URLs a binary message body (UDH removed) carries: SI/SL hrefs, else plain ASCII URLs."""
    urls = wbxml_urls(payload, _wsp_body(payload))
    if not urls:
        urls = wbxml_urls(payload, 0)
    if not urls:
        urls = [m.group().decode("ascii")[:MAX_URL] for m, _ in zip(_ASCII_URL.finditer(payload), range(MAX_URLS))]
    return urls


def readable_text(payload: bytes) -> str | None:
    """What of a binary body can be judged as text (its URLs, space-separated), or None."""
    urls = binary_urls(payload)
    return " ".join(urls) if urls else None


def pdu_urls(pdu) -> list[str]:
    """URLs in a submit_sm / deliver_sm / data_sm body (message_payload or short_message, UDH removed)."""
    from .udh import pdu_user_data
    return binary_urls(pdu_user_data(pdu))
