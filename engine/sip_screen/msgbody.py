"""What a SIP MESSAGE's body (RFC 3428 §9: any MIME type) says that the pipeline can judge as an SMS. No I/O.

`message_content(content_type, body, content_encoding)` returns a `Content` (the text to judge, and for SMS over IMS
the TPDU's own originator or destination: the real sender of an SMS-DELIVER, the real recipient of an SMS-SUBMIT),
`NO_TEXT` with what it is (a body that carries no message: an RP-ACK, an is-composing indication, an SMS status
report), or raises BodyError whose text is the reason of the 400 (415 for a Content-Encoding not read) it is
answered with. A body is read as the receiving UA shows it: a Content-Encoding (RFC 3261 §20.12: gzip, deflate) is
undone first, bounded (MAX_DECODED); a part's or a CPIM content's Content-Transfer-Encoding (base64,
quoted-printable) is undone; a content with no Content-Type is text/plain (RFC 2045 §5.2). What a carrier's SMS
filter does with each type:

  - text/* (text/plain the common one; RFC 3428 §11 requires UAs to take it): the body, in the Content-Type's
    charset (UTF-8 when none, RFC 3428 §9; a byte order mark decides). text/html and application/xhtml+xml are judged
    as written, markup and all (a link in them is a link the user sees), and as shown: tags gone, character
    references read ('W&#73;N B<b></b>IG' shows 'WIN BIG').
  - application/vnd.3gpp.sms (3GPP TS 24.341): the RP-DATA's TPDU, decoded (sms3gpp.py); RP-ACK / RP-ERROR / RP-SMMA,
    an SMS-COMMAND or an SMS-STATUS-REPORT carry no text. A part of a concatenated SMS says so (`concat`: its UDH's
    reference, total and part number): its MESSAGE is put together with its message's others and judged whole
    (msgparts.py).
  - message/cpim (RFC 3862, the wrapper of IMS messaging): the wrapped content, read as above.
  - multipart/* (RFC 2046): every part read as above, the texts judged together; one 3GPP SMS part at most. Its
    delimiter lines are counted first (MAX_DELIMITERS), then it is split level by level (_parts, _part), a level
    read only when the depth bound lets it: no MIME parser reads the whole tree first (the email package's took
    40-150 ms on 60 KB of short lines, and a RecursionError on thousands of levels).
  - anything else (application/im-iscomposing+xml, RFC 3994; an XML notice; an image): no text, relayed unjudged.
    A Content-Type that is no type/subtype (`text`) names none of these: 400 (RFC 3261 §21.4.1, malformed syntax;
    not 415, which answers a well-formed type not read), never relayed unjudged.
"""
from __future__ import annotations

import binascii
import html
import quopri
import re
import zlib
from dataclasses import dataclass

from .sms3gpp import CONTENT_TYPE as SMS_TYPE, Address, RpData, Sms3gppError, alphabet, decode_rp, decode_tpdu

MAX_PARTS = 16                  # multipart parts read; more is refused (a body of many tiny parts is no SMS)
MAX_DELIMITERS = 2 * MAX_PARTS + 2      # lines opening "--" in a multipart body, counted before it is parsed
# a body inflated (Content-Encoding) past this is refused: RFC 3428 §7 keeps a MESSAGE to 1300 bytes (unless the UAC
# knows better), and a 200-byte gzip datagram inflating to 64 KB cost ~4 ms of judging (80 INVITEs); 8 KiB ~0.6 ms
MAX_DECODED = 8192
CODINGS = ("gzip", "x-gzip", "deflate")                 # RFC 3261 §20.12 (RFC 2616 §3.5's tokens)
ACCEPT_ENCODING = ("Accept-Encoding", "identity, gzip, deflate")        # a 415's list of what is read (§21.4.13)


class BodyError(ValueError):
    """The body cannot be read as its Content-Type says: the peer sent something wrong (answered `status` with
    `headers`, logged)."""
    status, phrase, headers = 400, "Bad Request", ()


class CodingNotRead(BodyError):
    """A Content-Encoding other than gzip or deflate: 415 with the codings read (RFC 3261 §21.4.13), so the UA may
    send it again uncompressed."""
    status, phrase, headers = 415, "Unsupported Media Type", (ACCEPT_ENCODING,)


@dataclass(frozen=True, slots=True)
class Content:
    text: str
    binary: bool = False
    what: str = "text"                          # the verdict line's pdu suffix: text, SMS-SUBMIT, SMS-DELIVER
    sender: Address | None = None               # an SMS-DELIVER's TP-OA (else the SIP identity is the sender)
    recipient: Address | None = None            # an SMS-SUBMIT's TP-DA (else the Request-URI is the recipient)
    concat: tuple | None = None                 # (reference, total, part) of a part of a concatenated SMS (its UDH)
    parts: int = 1                              # body parts read (a multipart's, nested ones counted): shares.cost
    ucs2: bool = False                          # a 3GPP TPDU's text in UCS2 (its parts read joined by octets too)


@dataclass(frozen=True, slots=True)
class NoText:
    what: str                                   # why it is relayed unjudged: its type, or the RP/TP message it is


_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")   # RFC 3261 §25.1 token: a type's and a subtype's characters


def _type_params(value: str) -> tuple[str, dict]:
    """(media type in lower case, parameters with lower-case names) of a Content-Type value; "" for none. A type that
    is no `type/subtype` (`text`, `text/`, `te xt/plain`) is BodyError (400): it named no type a UA reads, and was
    relayed unjudged as one that carries no text. RFC 3261 §25.1: m-type SLASH m-subtype, SLASH = SWS "/" SWS, so
    `text / plain` is text/plain."""
    kind, *params = value.split(";")
    out = {}
    for p in params:
        k, _, v = p.partition("=")
        out[k.strip().lower()] = v.strip().strip('"')
    kind = kind.strip()
    if not kind:
        return "", out
    t, slash, sub = kind.partition("/")
    t, sub = t.strip(), sub.strip()
    if not slash or not _TOKEN.fullmatch(t) or not _TOKEN.fullmatch(sub):
        raise BodyError(f"Content-Type {kind[:40]!r} is no type/subtype (RFC 3261 §20.15)")
    return f"{t}/{sub}".lower(), out


_TAG = re.compile(r"<[^<>]*>")                  # a tag (what a UA rendering HTML does not show)
HTML = ("text/html", "application/xhtml+xml")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _text(body: bytes, charset: str) -> str:
    for bom, name in _BOMS:     # a BOM names the encoding whatever the charset says (the WHATWG decode, a UA's)
        if body.startswith(bom):
            return body[len(bom):].decode(name, "replace")
    try:                        # (bytes.decode takes text encodings only: no "zlib" or "base64" "charset")
        return body.decode(charset or "utf-8", "replace")
    except LookupError:
        raise BodyError(f"unknown charset {charset[:40]!r}") from None
    except ValueError as e:     # a decoder that takes no "replace" (idna) or fails all the same (punycode)
        raise BodyError(f"charset {charset[:40]!r} does not decode the body ({type(e).__name__})") from None


def _inflated(body: bytes, encoding: str) -> bytes:
    """The body with its Content-Encoding undone (RFC 3261 §20.12: codings in the order applied, undone last first),
    at most MAX_DECODED octets, nothing after the compressed data (a second gzip member a UA's decoder reads on)."""
    for c in reversed(encoding.split(",")):
        c = c.strip().lower()
        if c in ("", "identity"):
            continue
        if c not in CODINGS:
            raise CodingNotRead(f"Content-Encoding {c[:20]!r} not read")
        z = zlib.decompressobj(47)              # 32 + 15: a gzip or a zlib header, told apart by zlib
        try:
            out = z.decompress(body, MAX_DECODED)
            if not z.eof and z.decompress(z.unconsumed_tail, 1):
                raise BodyError(f"Content-Encoding {c} inflates to more than {MAX_DECODED} octets")
        except zlib.error:
            raise BodyError(f"Content-Encoding {c} does not inflate") from None
        if not z.eof or z.unused_data:
            raise BodyError(f"Content-Encoding {c} {'cut short' if not z.eof else 'followed by more data'}")
        body = out
    return body


def _transfer_decoded(body: bytes, cte: str) -> bytes:
    """A CPIM content's or a body part's Content-Transfer-Encoding undone (RFC 2045 §6)."""
    cte = cte.strip().lower()
    if cte in ("", "7bit", "8bit", "binary"):
        return body
    if cte == "quoted-printable":
        return quopri.decodestring(body)
    if cte == "base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error:
            raise BodyError("base64 content that does not decode") from None
    raise BodyError(f"Content-Transfer-Encoding {cte[:20]!r} not read")


def _sms(body: bytes) -> Content | NoText:
    try:
        rp = decode_rp(body)
        if not isinstance(rp, RpData):
            return NoText(rp.name)
        tp = decode_tpdu(rp.rp_ud, rp.to_network)
    except Sms3gppError as e:
        raise BodyError(str(e)) from None
    if tp.tp_mti is None:
        return NoText(tp.name)
    return Content(tp.text, tp.binary, tp.name, tp.tp_oa, tp.tp_da, tp.concat,
                   ucs2=alphabet(tp.tp_dcs) == "ucs2")


def _cpim(body: bytes, depth: int) -> Content | NoText:
    """RFC 3862 §2: message headers, a blank line, the content's MIME headers, a blank line, the content."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        parts = body.split(sep, 2)
        if len(parts) == 3:
            break
    else:
        raise BodyError("message/cpim without its two header blocks")
    ctype, cte = "", ""
    for line in parts[1].splitlines():
        name, _, value = line.decode("utf-8", "replace").partition(":")
        name = name.strip().lower()
        if name == "content-type":
            ctype = value.strip()
        elif name == "content-transfer-encoding":
            cte = value
    return _content(ctype, _transfer_decoded(parts[2], cte), depth + 1)


def _after_newline(i: int) -> int:
    return i + 1 if i >= 0 else -1


def _parts(body: bytes, boundary: bytes) -> list[bytes]:
    """RFC 2046 §5.1.1: the body parts between delimiter lines ("--" boundary at a line's start, then transport
    padding only; "--" after it closes), to the close delimiter or the body's end (a UA shows a part left open).
    The preamble and the epilogue are no part (no UA shows them). One bytes.find per delimiter."""
    delim, out, start = b"--" + boundary, [], None
    at = 0 if body.startswith(delim) else _after_newline(body.find(b"\n" + delim))
    while at >= 0:
        after = at + len(delim)
        close = body.startswith(b"--", after)
        eol = body.find(b"\n", after)
        eol = len(body) if eol < 0 else eol
        if not body[after + 2 * close:eol].strip():     # a delimiter (a longer boundary's line is content)
            if start is not None:
                end = at - 1 - (body[at - 2:at - 1] == b"\r")     # its CRLF belongs to the delimiter
                out.append(body[start:max(start, end)])
                if len(out) > MAX_PARTS:
                    raise BodyError(f"multipart body of more than {MAX_PARTS} parts")
            start = None if close else eol + 1
            if close:
                break
        at = _after_newline(body.find(b"\n" + delim, after))
    if start is not None:
        out.append(body[start:])
    return out


def _part(part: bytes) -> tuple[dict, bytes]:
    """A body part's headers (lower-case names, folded lines unfolded) and its content: the headers end at an empty
    line or at the first line that is no header (where a UA's MIME reader starts the text)."""
    headers, i, name = {}, 0, None
    while i < len(part):
        eol = part.find(b"\n", i)
        eol = len(part) if eol < 0 else eol
        line = part[i:eol].rstrip(b"\r")
        if not line:
            return headers, part[eol + 1:]
        if line[:1] in (b" ", b"\t") and name is not None:
            headers[name] += " " + line.strip().decode("utf-8", "replace")
        else:
            n, colon, v = line.partition(b":")
            n = n.strip()
            if not colon or not n or b" " in n:
                break                                   # no header: the content starts here
            name = n.decode("ascii", "replace").lower()
            headers.setdefault(name, v.strip().decode("utf-8", "replace"))
        i = eol + 1
    return headers, part[i:]


def _multipart(ctype: str, body: bytes, depth: int) -> Content | NoText:
    n = body.count(b"\n--") + body.startswith(b"--")
    if n > MAX_DELIMITERS:
        raise BodyError(f"multipart body of {n} delimiter lines (at most {MAX_DELIMITERS})")
    boundary = _type_params(ctype)[1].get("boundary", "").encode("utf-8", "replace")
    parts = _parts(body, boundary) if boundary else []
    if not parts:
        raise BodyError("multipart body without its boundary")
    texts, binary, sms, read = [], False, None, 0
    for p in parts:
        headers, raw = _part(p)
        raw = _transfer_decoded(raw, headers.get("content-transfer-encoding", ""))
        got = _content(headers.get("content-type", "text/plain"), raw, depth + 1)
        read += 1
        if isinstance(got, Content):
            read += got.parts - 1
            if got.sender is not None or got.recipient is not None:
                if sms is not None:
                    raise BodyError("two SMS parts in one multipart body")
                sms = got
            texts.append(got.text)
            binary = binary or got.binary
    if not texts:
        return NoText("multipart without text")
    if sms is not None:
        return Content("\n".join(texts), binary, sms.what, sms.sender, sms.recipient, sms.concat, parts=read,
                       ucs2=sms.ucs2)
    return Content("\n".join(texts), binary, parts=read)


def _content(ctype: str, body: bytes, depth: int) -> Content | NoText:
    if depth > 3:
        raise BodyError("bodies nested more than 3 deep")
    kind, params = _type_params(ctype)
    if not kind:                                # RFC 2045 §5.2: a content with no type is text/plain
        kind = "text/plain"
    if kind.startswith("text/") or kind in HTML:
        text = _text(body, params.get("charset", ""))
        if kind in HTML:                        # as written (its links) and as shown
            text = f"{text}\n{html.unescape(_TAG.sub('', text))}"
        return Content(text)
    if kind == SMS_TYPE:
        return _sms(body)
    if kind == "message/cpim":
        return _cpim(body, depth)
    if kind.startswith("multipart/"):
        return _multipart(ctype, body, depth)
    return NoText(kind)


def message_content(content_type: str | None, body: bytes, content_encoding: str | None = None) -> Content | NoText:
    """What of a MESSAGE body is judged (module text). No body: nothing to judge (RFC 3428 §9 lets a MESSAGE carry
    none); a body without a Content-Type is text/plain (RFC 3428 §9 says it has one; a carrier does not let a text
    through for leaving it out); one in a Content-Encoding is read inflated."""
    if not body:
        return NoText("empty body")
    if content_encoding:
        body = _inflated(body, content_encoding)
    return _content(content_type or "text/plain", body, 0)
