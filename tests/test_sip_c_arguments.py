"""The C functions an INVITE calls from Python take their arguments as a vector (METH_FASTCALL, no tuple packed and
no format parsed a call): they check them as PyArg_ParseTuple's "y*", "U", "O!" and "i" did -- a wrong count or type
is a TypeError, a bytes-like (bytearray, memoryview) is read as its bytes, a str is no bytes -- and answer the same."""
import hashlib

import pytest

from engine.sip_screen import codec

_sipfast = pytest.importorskip("engine.sip_screen._sipfast")

REQUEST = (b"INVITE sip:0912345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-1;rport\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:0901234567@127.0.0.1>;tag=abc\r\nTo: <sip:0912345678@127.0.0.1>\r\n"
           b"Call-ID: a1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("name, args", [
    ("blake2b_hex", ()), ("blake2b_hex", (b"x",)), ("blake2b_hex", ("x", 10)), ("blake2b_hex", (b"x", "10")),
    ("blake2b_digest", (b"x", 10, 1)), ("blake2b_digest", (None, 10)),
    ("parse_request", (REQUEST, [], None)), ("parse_request", (REQUEST.decode(), {}, None)),
    ("parse_request", (REQUEST, {})),
    ("join_message", (b"INVITE x SIP/2.0", [], b"")), ("join_message", ("INVITE x SIP/2.0", (), b"")),
    ("join_message", ("INVITE x SIP/2.0", [], "")),
    ("header_index", ((), "via")), ("header_index", ([], b"via")), ("header_index", ([],)),
    ("stamp_params", ("v;rport", "127.0.0.1", "5060")), ("stamp_params", ("v;rport", b"127.0.0.1", 5060)),
    ("check_plain", ("INVITE", "sip:x@h", ())), ("check_plain", (b"INVITE", "sip:x@h", [])),
    ("dialog_digest", ()), ("dialog_digest", ("key", "a")), ("dialog_digest", (b"key", b"a"))])
def test_a_wrong_argument_is_a_type_error(name, args):
    with pytest.raises(TypeError):
        getattr(_sipfast, name)(*args)


@pytest.mark.parametrize("size", [0, 65])
def test_a_digest_size_out_of_range_is_a_value_error(size):
    for f in (_sipfast.blake2b_hex, _sipfast.blake2b_digest):
        with pytest.raises(ValueError):
            f(b"x", size)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_a_bytes_like_is_read_as_its_bytes(wrap):
    data = wrap(b"INVITE|a1@127.0.0.1|1|abc||")
    assert _sipfast.blake2b_hex(data, 10) == hashlib.blake2b(bytes(data), digest_size=10).hexdigest()
    assert _sipfast.blake2b_digest(data, 8) == hashlib.blake2b(bytes(data), digest_size=8).digest()
    msg = _sipfast.parse_request(wrap(REQUEST), codec._CANON_MEMO, codec._canon_memo)
    assert msg.method == "INVITE" and msg.to_bytes() == REQUEST
    assert _sipfast.join_message("INVITE sip:x@h SIP/2.0", [["A", "b", "a"]], wrap(b"body")) == \
        b"INVITE sip:x@h SIP/2.0\r\nA: b\r\n\r\nbody"


def test_the_answers_are_as_before():
    msg = codec.parse_datagram(REQUEST)
    assert _sipfast.header_index(msg.headers, "call-id") == 4 and _sipfast.header_index(msg.headers, "route") == -1
    first, vias, ruri, na = _sipfast.check_plain(msg.method, msg.uri, msg.headers)
    assert first["call-id"] == "a1@127.0.0.1" and vias[0].params["branch"] == "z9hG4bK-1" and ruri.user == "0912345678"
    assert _sipfast.stamp_params("SIP/2.0/UDP h:5080;rport", "10.0.0.1", 5062) == "SIP/2.0/UDP h:5080;rport=5062"
    assert _sipfast.dialog_digest(b"k", "a", "b") == _sipfast.dialog_digest(b"k", "a", "b") != \
        _sipfast.dialog_digest(b"k", "ab")
