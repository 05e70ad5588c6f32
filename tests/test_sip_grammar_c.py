"""The C twins of the INVITE's parse and check (_sipgrammar.h, _sipcheck.h) against the Python functions.

grammar.parse_uri, parse_name_addr and parse_via, and checks.check_request, answer the plain cases in C and leave
the rest to Python (None: undecided). Here every answer the C code gives is compared with what the Python function
gives with the C code off -- the same result (a value equal field for field, or the same error response and the
same parsed Vias, first values, Request-URI and To / From parsed on the message) -- over the RFC 4475 torture
vectors, the tests' messages, the RFC 4475 cases of test_sip.py, and seeded mutations of all of them, message by
message and value by value. And the C code must decide the plain call (else the INVITE pays both passes).
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.sip_screen import checks, codec, fastpath, grammar, message, routing
from engine.sip_screen.codec import SipParseError, parse_datagram

from .sip_helpers import invite
from .test_sip_fuzz import ODD, SEEDS, mutate

pytestmark = pytest.mark.skipif(grammar._c_uri is None or checks._c_check is None, reason="no C extension")

RFC4475 = Path("/work/shared/vectors/sip/rfc4475")
VECTORS = sorted(RFC4475.glob("*.dat")) if RFC4475.is_dir() else []
MORE = [                                                # test_sip.py's further RFC 4475 cases, and odd spellings
    b"OPTIONS sip:b@127.0.0.1?Route=%3Csip:127.0.0.1%3E SIP/2.0",
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\nContact: sip:b@127.0.0.1?Route=%3Csip:x%3E",
    b"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\nContact: Watson, Thomas <sip:w@127.0.0.1>",
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\nContact: <sip:%00@127.0.0.1>",
    b"OPTIONS sip:b;par=u%40x@127.0.0.1 SIP/2.0",
    b"OPTIONS sip:+842439998888;npdi;rn=+84243@127.0.0.1;user=phone SIP/2.0",
    b"OPTIONS sip:2439998888;phone-context=+84@127.0.0.1 SIP/2.0",
    b"OPTIONS tel:2439998888;phone-context=+84 SIP/2.0",
    b"OPTIONS tel:+84912345678;npdi SIP/2.0",
    b"OPTIONS sip:b:pw@[::1]:5060;transport=TCP SIP/2.0\r\nContact: *",
    b"OPTIONS sip:B@H.example:05060;Transport=Udp;lr;x=a=b SIP/2.0\r\nRoute: <sip:127.0.0.1;lr>, <sip:10.0.0.1:5070>",
    b"OPTIONS SIPS:b@h;;x SIP/2.0\r\nRecord-Route: \"A, \\\"q\\\" B\" <sip:h;lr>;x=1, <sip:g>",
    b"OPTIONS sip:b@h SIP/2.0\r\nContact: A  B <sip:h>; expires = 60 ;q=0.5",
    b"OPTIONS sip:b@h: SIP/2.0\r\nContact: sip:h;;",
    b"OPTIONS sip:b@h:0 SIP/2.0\r\nContact: sip:h;",
    b"OPTIONS sip:b@h:65536 SIP/2.0\r\nContact: \"unterminated <sip:h>",
    b"OPTIONS mailto:b@h SIP/2.0",
]
VIAS = ["SIP/2.0/UDP h", "SIP/2.0/udp H:5060 ;branch=z9hG4bK1 ; rport ;received=1.2.3.4", "SIP/2.0/TCP h;rport=0",
        "SIP/2.0/UDP h;rport=65535;x=", "SIP/2.0/UDP h;;x", "SIP/2.0/UDP [::1]:5060;branch=1", "SIP / 2.0 / UDP h",
        "SIP/2.0/UDP :5060", "SIP/2.0/UDP h:", "SIP/2.0/UDP h x;branch=1", "SIP/3.0/UDP h", "SIP/2.0/UDP h;rport=a",
        "SIP/2.0/UDP\th:1\t;branch=x\t", "SIP/2.0/UDP h;BRANCH=Z;RPort"]


def _messages() -> list[bytes]:
    msgs = [p.read_bytes() for p in VECTORS] + list(SEEDS) + [invite(), invite(extra=["Proxy-Require: x"])]
    base = b"\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n" \
           b"Call-ID: c\r\nCSeq: 1 %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    for m in MORE:
        start, _, extra = m.partition(b"\r\n")
        msgs.append(start + (b"\r\n" + extra if extra else b"") + base % start.split(b" ")[0])
    rnd = random.Random(4475)
    for m in list(msgs):
        for _ in range(40):
            msgs.append(mutate(m, rnd, rnd.randrange(1, 4)))
    return msgs


def _python_only(monkeypatch):
    for name in ("_c_uri", "_c_name_addr", "_c_via"):
        monkeypatch.setattr(grammar, name, None)
    monkeypatch.setattr(checks, "_c_check", None)
    monkeypatch.setattr(codec, "_c_parse_request", None)
    monkeypatch.setattr(message, "_c_join", None)
    monkeypatch.setattr(message, "_c_index", None)
    monkeypatch.setattr(routing, "_c_stamp", None)


def _parsed(data: bytes):
    """parse_datagram's message as a comparable tuple, or the error (reason, status) it raised."""
    try:
        m = parse_datagram(data)
    except SipParseError as e:
        return e.reason, e.status
    return tuple(getattr(m, n) for n in message.SipMessage.__slots__) + (m.to_bytes(),)


def _same(c, py):
    """The C answer (None: undecided) against the Python function's (a value, or the SipParseError it raised)."""
    if c is None:
        return
    assert not isinstance(py, SipParseError), (c, py.reason)
    assert type(c) is type(py) and c == py


def _py(f, *a):
    try:
        return f(*a)
    except SipParseError as e:
        return e


def _values(msg) -> list[str]:
    out = [msg.uri] if msg.is_request else []
    for h in msg.headers:
        out.append(h[1])
        if "," in h[1] or '"' in h[1]:
            try:
                out.extend(grammar.split_list(h[1]))
            except SipParseError:
                pass
    return out


def _check(data: bytes, monkeypatch):
    """check_request on two parses of `data`, with the C pass and without: the same answer and the same state."""
    try:
        a, b = parse_datagram(data), parse_datagram(data)
    except SipParseError:
        return None
    if not a.is_request or a.method == "ACK":
        return None
    got = checks.check_request(a)
    with monkeypatch.context() as m:
        _python_only(m)
        want = checks.check_request(b)
    assert got == want, data
    if want is None:
        assert (a.first, a.vias, a.ruri) == (b.first, b.vias, b.ruri), data
        for v in (b.first["to"], b.first["from"]):
            assert a.name_addr(v) == b.name_addr(v), data
    return a


def _mutated(values: set, seed: int, each: int = 3) -> set:
    """`values` and `each` seeded mutations of every one: an odd byte (ODD) put in, or put over one character
    (str values get it as surrogate-escaped text)."""
    rnd, out = random.Random(seed), set(values)
    for v in sorted(values):
        for _ in range(each):
            odd = rnd.choice(ODD)
            i = rnd.randrange(len(v) + 1)
            out.add(v[:i] + (odd.decode("utf-8", "surrogateescape") if isinstance(v, str) else odd)
                    + v[i + rnd.randrange(2):])
    return out


def test_check_request_twin_agrees(monkeypatch):
    decided = 0
    for data in _messages():
        a = _check(data, monkeypatch)
        if a is not None and checks._c_check(a.method, a.uri, parse_datagram(data).headers) is not None:
            decided += 1
    assert decided > 100                                 # the C pass does decide, on more than the seeds


def test_parse_and_join_twins_agree(monkeypatch):
    got = [_parsed(d) for d in _messages()]
    with monkeypatch.context() as m:
        _python_only(m)
        want = [_parsed(d) for d in _messages()]
    assert got == want
    assert codec._c_parse_request(invite(), {}, codec._canon_memo) is not None


def test_grammar_twins_agree(monkeypatch):
    c_uri, c_na, c_via = grammar._c_uri, grammar._c_name_addr, grammar._c_via
    values = set(VIAS)
    for data in _messages():
        try:
            values.update(_values(parse_datagram(data)))
        except SipParseError:
            pass
    values = _mutated(values, 3261)
    _python_only(monkeypatch)
    decided = 0
    for v in sorted(values):
        for c, f in ((c_uri, grammar.parse_uri), (c_na, grammar.parse_name_addr), (c_via, grammar.parse_via)):
            r = c(v)
            _same(r, _py(f, v))
            decided += r is not None
    assert decided > 500


def test_uri_user_twin_agrees(monkeypatch):
    """_sipfast.uri_user (identity._user_of's read of a From / To user, no SipUri built) gives parse_uri(v).user of
    the Python function, or None (undecided) -- never a user where the Python function raises -- on every value of
    the messages above and mutations of them; and decides the plain ones."""
    from engine.sip_screen import _sipfast
    values = set()
    for data in _messages():
        try:
            m = parse_datagram(data)
        except SipParseError:
            continue
        for v in _values(m):
            values.add(v)
            try:
                values.add(grammar.parse_name_addr(v).uri)
            except SipParseError:
                pass
    values = _mutated(values, 3966)
    _python_only(monkeypatch)
    decided = 0
    for v in sorted(values):
        u, py = _sipfast.uri_user(v), _py(grammar.parse_uri, v)
        if u is not None:
            assert not isinstance(py, SipParseError), (v, py.reason)
            assert type(u) is str and u == py.user, v
            decided += 1
    assert decided > 300
    assert _sipfast.uri_user("sip:0901234567@127.0.0.1:51898") == "0901234567"


def test_plain_invite_decided_in_c():
    msg = parse_datagram(invite())
    assert checks._c_check(msg.method, msg.uri, msg.headers) is not None
    via = msg.get("via")
    assert grammar._c_via(via) is not None and grammar._c_name_addr(msg.get("from")) is not None
    assert grammar._c_uri(msg.uri) is not None


def _edited(data: bytes, src):
    """A request's headers after the received / rport stamp and the header edits the proxy makes."""
    try:
        msg = parse_datagram(data)
    except SipParseError:
        return None
    if not msg.is_request or checks.check_request(msg) is not None or not msg.vias:
        return None
    top = routing.Routing._stamp_received(None, msg, src)
    msg.set("Max-Forwards", "69")
    msg.set("X-New", "1")
    msg.insert_before_first("Via", "SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKtf1")
    msg.insert_before_first("Record-Route", "<sip:127.0.0.9;lr>")
    return top, msg.headers


@pytest.mark.parametrize("src", [("127.0.0.1", 5080), ("10.0.0.7", 1), ("::ffff:10.0.0.7", 65535), ("\xe9", 5)])
def test_stamp_and_header_edits_twins_agree(monkeypatch, src):
    msgs = _messages() + [invite(vias=[]).replace(b";rport", b";rport=1;received=10.9.9.9;RPort ;x=received"),
                          invite().replace(b";rport", b"; Received = 1.2.3.4 ;rport;rport=")]
    got = [_edited(d, src) for d in msgs]
    with monkeypatch.context() as m:
        _python_only(m)
        want = [_edited(d, src) for d in msgs]
    assert got == want
    assert sum(g is not None for g in got) > 100


def test_to_values_twin_agrees():
    resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=9\r\nCall-ID: c\r\n\r\n"
    extra = [resp, resp.replace(b"To:", b"t :"), resp.replace(b"To:", b"TO\t:\t "), resp.replace(b"To:", b"Tox:"),
             resp.replace(b"To:", b"tO: a\r\nT:"), resp.replace(b"\r\n\r\n", b"\r\n"), b"\r\nto:x\r\n\r\n",
             resp.replace(b"To:", b"To:\r\n\r\nTo:"), resp.replace(b"Call-ID: c", b"Call-ID: c\nTo: x\rTo: y")]
    for data in _messages() + extra:
        he = data.find(b"\r\n\r\n")
        want = None if he < 0 else fastpath._TO.findall(data, 0, he + 2)
        assert fastpath._c_to_values(data) == want, data


def _py_to_tag(v: bytes):
    """response_to_tag's reading of one To value by its regular expressions."""
    na = fastpath._NAME_ADDR.match(v)
    if na is None or fastpath._ODD.search(v) or fastpath._tag_keys(na.group(2)) > 1:
        return None
    t = fastpath._TAG.search(na.group(2))
    return t.group(1).decode("ascii") if t else ""


def test_to_tag_twin_agrees():
    values = {b"<sip:b@h>;tag=9", b'"B" <sip:b@h>', b"B b <sips:b@h:5060;user=phone> ; TAG=x ;a", b"<sip:b@h>;tag=",
              b"<sip:b@h>;tag=1;tag=2", b"<sip:b@h>;tag", b"<sip:b@h>;tagx=1;tag=y", b"<sip:b@h>; tag = x", b"<sip:>",
              b"<sips:>", b"<sip:b@h>;x=a,b", b'"a\\"b" <sip:h>', b"<SIP:b@h>", b"<sip:b@h> ;tag=\xe9", b"<sip:b@h>;",
              b"sip:b@h;tag=1", b"<sip:b@h>;tag=a<b", b"\t<sip:b@h>\t;\ttag=z\t", b"<sip:b@h>;Tag=Q;TAG"}
    for data in _messages():
        he = data.find(b"\r\n\r\n")
        if he >= 0:
            values.update(fastpath._TO.findall(data, 0, he + 2))
    values = _mutated(values, 4916, each=4)
    decided = 0
    for v in sorted(values):
        got = fastpath._c_to_tag(v)
        if got is not None:
            decided += 1
            assert got == _py_to_tag(v), v
    assert decided > 50 and fastpath._c_to_tag(b"<sip:b@h>;tag=9") == "9"


def test_a_request_built_in_c_has_every_slot_as_init_leaves_it(monkeypatch):
    """parse_request writes a SipMessage's slots itself (their members, not a setattr each): every slot is what
    SipMessage.__init__ leaves in it, a dict or list of its own, and the Python parse's message reads the same."""
    c = codec._c_parse_request(invite(), codec._CANON_MEMO, codec._canon_memo)
    again = codec._c_parse_request(invite(), codec._CANON_MEMO, codec._canon_memo)
    with monkeypatch.context() as m:
        _python_only(m)
        py = parse_datagram(invite())
    assert type(c) is message.SipMessage
    for name in message.SipMessage.__slots__:
        assert getattr(c, name) == getattr(py, name), name
        if isinstance(getattr(c, name), (dict, list)):
            assert getattr(c, name) is not getattr(again, name), name


def test_header_names_kept_from_message_to_message_are_each_their_own(monkeypatch):
    """The C parse keeps the header names it has seen (their str and canonical name, by their bytes): names that
    share a slot (the same length and end bytes), one name in two cases and a compact form each read as the Python
    parse reads them, in any order, message after message."""
    names = ["Xa-Foo", "Xb-Foo", "Xa-Foo", "TO", "To", "t", "v", "Via", "VIA", "X-Long-Header-Name-Over-24-Bytes",
             "X-Long-Header-Name-Over-24-Bytes", "i", "Call-ID", "l"]
    msgs = []
    for i, name in enumerate(names):
        msgs.append(invite(extra=(f"{name}: value-{i}",)))
        msgs.append(invite(extra=(f"{name}: value-{i}", f"{names[-1 - i]}: other-{i}")))
    got = [_parsed(d) for d in msgs]
    with monkeypatch.context() as m:
        _python_only(m)
        want = [_parsed(d) for d in msgs]
    assert got == want


@pytest.mark.parametrize("odd", ["\x00", "\x01", "\x1f", "\x7f", "\t", " ", "~"])
def test_a_control_byte_anywhere_in_a_value_leaves_it_to_python(monkeypatch, odd):
    """The C twins read a value only when it is plain (no control byte but tab, no DEL), checked eight bytes at a
    time then byte by byte: a control byte or DEL at any place, in any word, makes them undecided; a tab or a
    printable byte there is read as the Python twin reads it."""
    for k in range(0, 26):
        for value in (f"<sip:{'a' * k}{odd}{'b' * (25 - k)}@h>", f'"{"d" * k}{odd}" <sip:u@h>;tag={"t" * k}'):
            c = grammar._c_name_addr(value)
            with monkeypatch.context() as m:
                _python_only(m)
                py = _py(grammar.parse_name_addr, value)
            if odd < " " and odd != "\t" or odd == "\x7f":
                assert c is None, (k, value)
            _same(c, py)


def test_head_end_line_ends_parse_and_to_values_agree(monkeypatch):
    """parse_request and to_values find the head's end with _sipfast.c's head_end (memchr from CR to CR, not glibc's
    memmem): a CR, an LF, a CRLF CRLF put at every position of a plain INVITE's head and of a 200's, one byte taken
    out there, and the head cut short, parse as the Python parse alone parses them (message or error) and give the
    To values the regular expression finds."""
    resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=9\r\nCall-ID: c\r\n\r\nxy"
    variants = []
    for seed in (invite(), resp):
        head = seed.index(b"\r\n\r\n") + 4
        variants += [seed[:k] for k in range(head + 1)]
        for i in range(head + 1):
            variants += [seed[:i] + b"\r" + seed[i:], seed[:i] + b"\n" + seed[i:], seed[:i] + b"\r\n\r\n" + seed[i:],
                         seed[:i] + seed[i + 1:]]
    got = [_parsed(v) for v in variants]
    with monkeypatch.context() as m:
        _python_only(m)
        want = [_parsed(v) for v in variants]
    for v, g, w in zip(variants, got, want):
        assert g == w, v
    for v in variants:
        he = v.find(b"\r\n\r\n")
        assert fastpath._c_to_values(v) == (None if he < 0 else fastpath._TO.findall(v, 0, he + 2)), v
