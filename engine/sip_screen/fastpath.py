"""Responses relayed without a full parse (RFC 3261 §16.7 steps 3 and 9 as byte edits). No I/O.

Theory of operation: a response needs only two things from a stateless proxy: its top Via
removed, after checking it is the one we added, and the next Via read to know where to send
it. `relay_response()` finds both with a few regular-expression searches over the head, and
only when the head is plainly well-formed: CRLF line ends, no folded lines, no quoted strings
in the Vias, exactly one Content-Length equal to the body length, and a top Via that is byte
for byte what we wrote (`SIP/2.0/UDP host:port;branch=z9hG4bKtf`). Anything else returns
`FULL_PARSE`, and the caller parses the message completely, so this path can only ever agree
with the full one. A response bound for a TCP Via is left to the full path too: which connection it
goes on (the request's, named in our Via, or one to the sent-by port) is decided there, once
(responses.py). The body is never touched.
"""
from __future__ import annotations

import re

from .grammar import SipParseError, parse_via

FULL_PARSE = None                # the fast path cannot prove the message simple: parse it fully
NOT_OURS = ()                    # drop: top Via not ours, or no Via below ours

_STATUS = re.compile(rb"SIP/2\.0 [1-6]\d\d ")
_VIA = re.compile(rb"\r\n(?:via|v)[ \t]*:[ \t]*([^\r\n]*)", re.I)
_CL = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I)
_CSEQ = re.compile(rb"\r\ncseq[ \t]*:[ \t]*([^\r\n]*)", re.I)
_CALL_ID = re.compile(rb"\r\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.I)
# the next Via in its plain form; anything fancier goes through grammar.parse_via
_NEXT = re.compile(rb"SIP/2\.0/(UDP|TCP) ([0-9A-Za-z.\-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?((?:;[^;,\s\"]+)*)[ \t]*$")
_RECEIVED = re.compile(rb";received=([0-9A-Fa-f.:]+)(?=;|$)")
_RPORT = re.compile(rb";rport=(\d{1,5})(?=;|$)")
_ODD = re.compile(rb"[^\t\x20-\x7e]")      # a byte the fast paths leave to the grammar (it strips some)
_HEADER = re.compile(rb"\r\n([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*:[ \t]*([^\r\n]*)")
_BAD_LINE = re.compile(rb"\r\n(?![A-Za-z0-9\-.!%*_+`'~]+[ \t]*:)")      # a line that is not `token:`
MAX_FAST_RESPONSE = 8000         # below MAX_HEADER_LINE: no header of it can be over the limit


try:                             # the same for plain responses in C (setup.py builds it; optional)
    from ._sipfast import relay_response as _c_relay_response
except ImportError:
    _c_relay_response = None


def relay_response(data: bytes, our_via_prefixes: tuple):
    """(bytes to send, (host, port, TRANSPORT), b"Call-ID CSeq-number" if it is a final response
    to an INVITE else b""), NOT_OURS or FULL_PARSE. The C version answers the plain cases and leaves the rest (None) to
    `py_relay_response`."""
    if _c_relay_response is not None:
        r = _c_relay_response(data, our_via_prefixes)
        if r is not None:
            return r
    return py_relay_response(data, our_via_prefixes)


def py_relay_response(data: bytes, our_via_prefixes: tuple):
    """relay_response in Python: the reference the C version is tested against."""
    if not _STATUS.match(data) or len(data) > MAX_FAST_RESPONSE:
        return FULL_PARSE
    he = data.find(b"\r\n\r\n")
    if he < 0:
        return FULL_PARSE
    end = he + 2                                              # keep the last header's CRLF for the patterns
    head = data[:end]
    n = head.count(b"\r\n")
    if head.count(b"\n") != n or head.count(b"\r") != n or _BAD_LINE.search(head, 0, end - 2) is not None:
        return FULL_PARSE                                     # a folded, blank or odd line
    cl = _CL.findall(head)
    if len(cl) != 1 or not cl[0].strip(b" \t").isdigit() or int(cl[0]) != len(data) - he - 4:
        return FULL_PARSE
    vias = b"".join(_VIA.findall(head))
    if b'"' in vias or b"<" in vias:
        return FULL_PARSE                                     # quotes or <...> in Vias: commas there do not split
    top = _VIA.search(head)
    if top is None:
        return FULL_PARSE
    value = top.group(1)
    if not value.startswith(our_via_prefixes):
        return NOT_OURS if b"z9hG4bKtf" not in value else FULL_PARSE
    first = value.split(b",", 1)[0]
    if _plain_via(first) is None or first.lower().count(b";branch") != 1:
        return FULL_PARSE                                     # the full parse decides what a odd Via means
    comma = value.find(b",")
    if comma >= 0:                                            # several Vias in one header: drop the first value
        rest = value[comma + 1:].strip()
        nxt_raw = rest.split(b",", 1)[0]
        out = data[:top.start(1)] + rest + data[top.end(1):]
    else:
        second = _VIA.search(head, top.end())
        if second is None:
            return NOT_OURS                                   # it was meant for us
        nxt_raw = second.group(1).split(b",", 1)[0]
        out = data[:top.start()] + data[top.end():]           # the whole "\r\nVia: ..." line goes
    dest = next_hop(nxt_raw)
    if dest is None:
        return NOT_OURS
    if dest[2] == "TCP":
        return FULL_PARSE                                     # §18.2.2: which connection is the full path's (responses.py)
    invite_final = b""
    if data[8:9] != b"1":
        cseq = _CSEQ.search(head)
        if cseq is not None and cseq.group(1).rstrip().upper().endswith(b"INVITE"):
            cid = _CALL_ID.search(head)
            if cid is not None:
                invite_final = cid.group(1).strip(b" \t") + b" " + cseq.group(1).split(None, 1)[0]
    return out, dest, invite_final


def _plain_via(value: bytes):
    """_NEXT's match of a Via value that also reads the same to the grammar, else None: only printable
    ASCII or tabs (the grammar strips Unicode blanks such as \x1e from its parameters, so a byte edit
    and a parse could read a different branch), a sent-by port and any rport (any case) value 1-65535
    (else the grammar rejects that Via, and the full parse drops the message)."""
    if _ODD.search(value) is not None:
        return None
    m = _NEXT.match(value)
    if m is None or (m.group(3) and not 0 < int(m.group(3)) < 65536):
        return None
    for kv in m.group(4).split(b";")[1:]:
        k, _, val = kv.partition(b"=")
        if k.lower() == b"rport" and val and not (len(val) <= 5 and val.isdigit() and 0 < int(val) < 65536):
            return None
    return m


def next_hop(via: bytes):
    """(host, port, TRANSPORT) a response goes to by this Via (RFC 3261 §18.2.2, RFC 3581), or None."""
    m = _plain_via(via.strip()) if _ODD.search(via) is None else None      # else the grammar decides
    if m is not None and m.group(4):
        p = m.group(4).lower()
        if (b";rport=" in p and _RPORT.search(p) is None) or (b";received=" in p and _RECEIVED.search(p) is None) \
                or p.count(b";rport") > 1 or p.count(b";received") > 1:
            m = None                                          # unusual: let the grammar decide
    if m is None:
        if b'"' in via:
            return None
        try:
            v = parse_via(via.decode("utf-8", "surrogateescape"))
        except SipParseError:
            return None
        rport = v.params.get("rport", "")
        return (v.params.get("received") or v.host, int(rport) if rport else (v.port or 5060),
                v.transport if v.transport in ("UDP", "TCP") else "UDP")
    params = m.group(4)
    host = m.group(2).decode("ascii").lower()
    if host.startswith("["):
        host = host[1:-1]
    port = int(m.group(3)) if m.group(3) else 5060
    if params:
        # parameter names in any case (RFC 3261 §7.3.1: `;RPort=5080` is rport): searched in `p`, the lowercased
        # copy made above, the received value taken as written (lower() keeps every ASCII byte where it was)
        r = _RECEIVED.search(p)
        if r is not None:
            host = params[r.start(1):r.end(1)].decode("ascii")
        r = _RPORT.search(p)
        if r is not None:
            port = int(r.group(1))
    if not 0 < port < 65536:
        return None
    return host, port, m.group(1).decode("ascii")


# ---------------------------------------------------------------- in-dialog requests

_REQ_LINE = re.compile(rb"([A-Z]+) (sips?:[^ \r\n?\"<>]+) SIP/2\.0\r\n")
_MF = re.compile(rb"\r\nmax-forwards[ \t]*:[ \t]*([^\r\n]*)", re.I)
# a name-addr in its plain forms: "quoted" or token display name, <URI without quotes>, ;params
_NAME_ADDR = re.compile(rb"(?:\"[^\"\\\r\n]*\"[ \t]*|[A-Za-z0-9\-.!%*_+`'~ \t]*)<(sips?:[^<>\"\s]+)>((?:[ \t]*;[ \t]*[^;,<>\"\s]+)*)[ \t]*$")
_TAG = re.compile(rb";[ \t]*tag=([^;\s]+)", re.I)
_CSEQ_V = re.compile(rb"(\d{1,10}) ([A-Za-z]+)[ \t]*$")
# (no '@' in the parameters: "sip:+8491;npdi@host" is a user part with parameters, which the full path reads)
_URI = re.compile(rb"sips?:(?:[^@;\s]*@)?([0-9A-Za-z.\-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?((?:;[^;@\s]*)*)$")
_TRANSPORT = re.compile(rb";transport=([^;]*)", re.I)
_COMPACT = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id", b"l": b"content-length", b"m": b"contact"}
# headers whose presence sends the request to the full path: routing, extensions, anything that
# makes §16 do more than the edits below (a Route only when it is not exactly our own: _our_route)
_FULL = {b"record-route", b"proxy-require"}
_ROUTE = re.compile(rb"\r\nroute[ \t]*:[ \t]*([^\r\n]*)", re.I)
_ONCE = (b"to", b"from", b"call-id", b"cseq", b"max-forwards", b"content-length")
MAX_FAST = 1200                  # larger requests may need TCP (§18.1.1): the full path decides
_TO = re.compile(rb"\r\n(?:to|t)[ \t]*:[ \t]*([^\r\n]*)", re.I)


def response_to_tag(data: bytes):
    """The To tag of a response the fast path relayed, read as the full parse reads it when its To is plain (one
    header, a plain name-addr, at most one tag parameter, printable ASCII; '' without one), else None (the full parse decides). Read only
    for the 200 that answers a call (responses._invite_final): the tag names the dialog whose BYE ends the call."""
    if _c_to_values is not None:
        tos = _c_to_values(data)                        # the same search in C (_sipmsg.h)
        if tos is None:
            return None
    else:
        he = data.find(b"\r\n\r\n")
        if he < 0:
            return None
        tos = _TO.findall(data, 0, he + 2)
    if len(tos) != 1:
        return None
    if _c_to_tag is not None:
        t = _c_to_tag(tos[0])                           # a plain To, read in C (_sipmsg.h); None: below
        if t is not None:
            return t
    na = _NAME_ADDR.match(tos[0])
    if na is None or _ODD.search(tos[0]) or _tag_keys(na.group(2)) > 1:
        return None
    t = _TAG.search(na.group(2))
    return t.group(1).decode("ascii") if t else ""


class InDialog:
    """What the screen needs to forward an in-dialog request found simple by `in_dialog()`."""
    __slots__ = ("method", "before", "after", "top_branch", "base", "dest", "call_id", "to_tag")

    def astuple(self):
        return (self.method, self.before, self.after, self.top_branch, self.base, self.dest, self.call_id, self.to_tag)


try:
    from ._sipfast import in_dialog as _c_in_dialog, to_tag as _c_to_tag, to_values as _c_to_values
except ImportError:
    _c_in_dialog = _c_to_values = _c_to_tag = None


# never in_dialog(): the screen parses these in full (a MESSAGE is judged in a dialog too: messaging.py)
NOT_IN_DIALOG = (b"INVITE ", b"CANCEL ", b"MESSAGE")


def in_dialog(data: bytes, src_ip: str, src_port: int, ours: tuple = (), hop=None):
    """`py_in_dialog`, by the C version for the plain cases (None from it: the Python one decides)."""
    if _c_in_dialog is not None:
        t = _c_in_dialog(data, src_ip, src_port, ours, hop)
        if t is not None:
            r = InDialog()
            r.method, r.before, r.after, r.top_branch, r.base, r.dest, r.call_id, r.to_tag = t
            return r
    return py_in_dialog(data, src_ip, src_port, ours, hop)


def _names_us(host: bytes, port: int, ours: tuple) -> bool:
    """Whether HOST:PORT of a Request-URI (an IPv6 reference with its brackets) is one of the addresses in `ours`
    (the starts of our Vias, `SIP/2.0/T HOST:PORT;branch=...`, host in lower case): such an in-dialog request
    goes to the next hop (routing._in_dialog_dest, py_in_dialog's `hop`), not back to the screen."""
    hp = host.lower() + b":%d" % port
    return any(o[o.find(b" ") + 1:o.find(b";")] == hp for o in ours)


def _our_route(value: bytes, ours: tuple) -> bool:
    """Whether a Route value is byte for byte a Record-Route the screen writes (proxying._screened:
    `<sip:HOST:PORT;transport=udp;lr>`, the transport the INVITE came by, in lower case) for one of the
    addresses it answers to, read from `ours`, the starts of our Vias (`SIP/2.0/UDP HOST:PORT;branch=...`,
    server.via_prefixes). The full parse removes such a Route (routing._destination, RFC 3261 §16.4) and, in a
    dialog, forwards by the Request-URI (§16.6 step 6), as the fast path does; any other form (other parameters,
    no `lr`, a display name, other case) it reads itself."""
    if not value.startswith(b"<sip:") or not value.endswith(b";lr>"):
        return False
    for pre in ours:
        sp = pre.find(b" ", 8)
        semi = pre.find(b";", sp)
        if 0 < sp < semi and value == b"<sip:" + pre[sp + 1:semi] + b";transport=" + pre[8:sp].lower() + b";lr>":
            return True
    return False


def _tag_keys(params: bytes) -> int:
    """How many of a To/From value's parameters have the key "tag" (any case): the grammar keeps the
    last one, _TAG finds the first, so more than one is left to the grammar."""
    return sum(1 for kv in params.split(b";")[1:] if kv.strip(b" \t").partition(b"=")[0].lower() == b"tag")


def py_in_dialog(data: bytes, src_ip: str, src_port: int, ours: tuple = (), hop=None):
    """An in-dialog request (To tag; no Route, or one Route header whose only value is our own Record-Route:
    `_our_route`) checked and edited as §16.3/§16.4/§16.6 require: our Route removed, top Via stamped with
    received/rport, Max-Forwards decremented; our Via goes between `before` and `after`. Its destination is the
    Request-URI's, or `hop` (the configured next hop) when that URI names the screen itself (routing._in_dialog_dest).
    FULL_PARSE for anything else, including any Via that could be ours (loop check)."""
    if len(data) > MAX_FAST or data[:7] in NOT_IN_DIALOG:
        return FULL_PARSE                       # initial INVITEs and MESSAGEs are judged; CANCELs carry no To tag
    rl = _REQ_LINE.match(data)
    if rl is None:
        return FULL_PARSE
    he = data.find(b"\r\n\r\n")
    if he < 0:
        return FULL_PARSE
    head = data[rl.end() - 2:he + 2]
    n = head.count(b"\r\n")
    if head.count(b"\n") != n or head.count(b"\r") != n or b"z9hG4bKtf" in head:
        return FULL_PARSE
    pairs = _HEADER.findall(head)
    if len(pairs) != n - 1:                                   # a folded, blank or odd line
        return FULL_PARSE
    h: dict = {}
    vias = 0
    for name, value in pairs:
        c = name.lower()
        c = _COMPACT.get(c, c)
        if c == b"via":
            vias += 1
            if b"," in value or _plain_via(value) is None:
                return FULL_PARSE
            if vias == 1:
                h[c] = value
            continue
        if c in _FULL or (c in h and c in _ONCE):
            return FULL_PARSE
        if c == b"route" and (c in h or not _our_route(value, ours)):
            return FULL_PARSE                                 # two Routes, or one not exactly ours
        if c == b"contact" and value != b"*" and (b"," in value or _NAME_ADDR.match(value) is None):
            return FULL_PARSE
        h[c] = value
    if vias == 0 or any(k not in h for k in _ONCE):
        return FULL_PARSE
    method = rl.group(1)
    cseq = _CSEQ_V.match(h[b"cseq"])
    cl, mf = h[b"content-length"].rstrip(b" \t"), h[b"max-forwards"].rstrip(b" \t")
    if cseq is None or cseq.group(2) != method or int(cseq.group(1)) > 2 ** 31 - 1 \
            or not cl.isdigit() or int(cl) != len(data) - he - 4 \
            or not mf.isdigit() or not 0 < int(mf) <= 255:
        return FULL_PARSE
    to, frm = _NAME_ADDR.match(h[b"to"]), _NAME_ADDR.match(h[b"from"])
    if to is None or frm is None:
        return FULL_PARSE
    to_tag, from_tag = _TAG.search(to.group(2)), _TAG.search(frm.group(2))
    if to_tag is None:
        return FULL_PARSE                                     # an initial request: the full path judges it
    if _ODD.search(to.group(2)) or _ODD.search(frm.group(2)) or _tag_keys(to.group(2)) > 1 \
            or _tag_keys(frm.group(2)) > 1 or _ODD.search(h[b"call-id"]) or _ODD.search(rl.group(2)):
        return FULL_PARSE                                     # the branch key's fields as the grammar reads them
    uri = _URI.match(rl.group(2)) if rl.group(2).isascii() else None
    top = _NEXT.match(h[b"via"])
    if uri is None or top is None or b"," in h[b"via"] or b";branch=" not in h[b"via"]:
        return FULL_PARSE
    if uri.group(3).lower().count(b";transport=") > 1:
        return FULL_PARSE                                     # which one counts is the grammar's business
    for kv in uri.group(3).split(b";")[1:]:
        k, eq, _ = kv.partition(b"=")
        if not k or (not eq and k.lower() == b"transport"):
            return FULL_PARSE                                 # an empty key, or transport without a value
    t = _TRANSPORT.search(uri.group(3))
    transport = t.group(1).upper().decode("ascii") if t else ("TCP" if rl.group(2)[:4].lower() == b"sips" else "UDP")
    if transport not in ("UDP", "TCP") or rl.group(2)[:4].lower() == b"sips":
        return FULL_PARSE
    port = int(uri.group(2)) if uri.group(2) else 5060
    if not 0 < port < 65536 or (top.group(3) and not 0 < int(top.group(3)) < 65536):
        return FULL_PARSE
    to_hop = _names_us(uri.group(1), port, ours)
    if to_hop and hop is None:
        return FULL_PARSE                                     # to the screen itself, no next hop: the full path
    # §18.2.1 / RFC 3581: stamp the top Via
    via = h[b"via"].rstrip(b" \t")
    params = top.group(4)
    raw_keys = [p.split(b"=", 1)[0].strip(b" \t") for p in params.split(b";")[1:]]
    keys = [k.lower() for k in raw_keys]
    if len(set(keys)) != len(keys):
        return FULL_PARSE                                     # a repeated parameter: the last one counts there
    if b"received" in keys or _RPORT.search(params) is not None:
        return FULL_PARSE                                     # the sender wrote its own: the full path overwrites it
    if b"rport" in keys and b"rport" not in raw_keys:
        return FULL_PARSE                                     # RPORT in another case: the full path stamps it
    add = b""
    if (top.group(2).lower() != src_ip.encode() or b"rport" in keys) and b";received=" not in params.lower():
        add += b";received=" + src_ip.encode()
    if b";rport" in params and _RPORT.search(params) is None:
        if not re.search(rb";rport(?=;|$)", params):
            return FULL_PARSE
        via = re.sub(rb";rport(?=;|$)", b";rport=%d" % src_port, via, count=1)
    via += add
    vm = _VIA.search(data, rl.end() - 2, he + 2)
    mm = _MF.search(data, rl.end() - 2, he + 2)
    if vm is None or mm is None:
        return FULL_PARSE
    edits = [(vm.start(1), vm.end(1), via), (mm.start(1), mm.end(1), b"%d" % (int(mf) - 1))]
    if b"route" in h:                                         # §16.4: our Route goes, its whole line
        rm = _ROUTE.search(data, rl.end() - 2, he + 2)
        if rm is None:
            return FULL_PARSE
        edits.append((rm.start(), rm.end(), b""))
    edits.sort()
    r = InDialog()
    r.method = method.decode("ascii")
    line_start = vm.start() + 2                               # our Via goes right before the top Via line
    parts, pos, shift = [], 0, 0
    for e0, e1, ev in edits:
        parts += (data[pos:e0], ev)
        pos = e1
        if e0 < line_start:
            shift += len(ev) - (e1 - e0)
    parts.append(data[pos:])
    out = b"".join(parts)
    r.before, r.after = out[:line_start + shift], out[line_start + shift:]
    branch = re.search(rb";branch=([^;\s]*)", via)
    dec = lambda b: b.decode("utf-8", "surrogateescape")  # noqa: E731
    r.top_branch = dec(branch.group(1))
    r.call_id = dec(h[b"call-id"].strip(b" \t"))
    r.to_tag = dec(to_tag.group(1))
    r.base = "|".join((dec(rl.group(2)), r.call_id, cseq.group(1).decode("ascii"),
                       dec(from_tag.group(1)) if from_tag else "", r.to_tag, ""))
    if to_hop:
        r.dest = hop
        return r
    host = uri.group(1).decode("ascii").lower()
    r.dest = (host[1:-1] if host.startswith("[") else host, port, transport)
    return r
