"""A BYE the C pump relays is handed to the call's end (`_call_ended`) with the From and To tags the Python fast path
reads (dialogs._fast_bye): the pump reads the From tag out of in_dialog's branch key itself (_sipdatagram.h's
bye_from_tag) instead of calling _fast_bye, a Python frame of ~9,000 instructions a BYE. Each BYE is relayed by both,
their tags compared; the URIs and tags are the ones that misled _fast_bye before (a tag holding '|', a Request-URI
holding '|<Call-ID>|': review39, review40)."""
import pytest

from engine.app import build
from engine.sip_screen import fastpath
from engine.sip_screen.transport import Pump, make_pump
from tests.sip_helpers import UAS, offline_screen

pytestmark = pytest.mark.skipif(Pump is None, reason="the C pump is not built")


def _bye(uri, call_id, from_tag, to_tag):
    return (f"BYE sip:{uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-b1;rport\r\nMax-Forwards: 70\r\n"
            f"From: <sip:0912345678@127.0.0.1>" + (f";tag={from_tag}" if from_tag is not None else "") + "\r\n"
            f"To: <sip:0901234567@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 7 BYE\r\n"
            "Content-Length: 0\r\n\r\n").encode()


CASES = [("0901234567@127.0.0.1:5080", "c1@h", "f1", "t9"),
         ("0901234567@127.0.0.1:5080", "c1@h", None, "t9"),                     # no From tag
         ("0901234567@127.0.0.1:5080", "c1@h", "a.b-c!~", "t.9"),
         ("02439998888|c1|x@127.0.0.1:5080", "c1", "f1", "t9"),                 # the Call-ID between '|' in the URI
         ("c1|c1|1|f1@127.0.0.1:5080", "c1", "f2", "t9"),
         ("0901234567@127.0.0.1:5080", "c|1@h", "f1", "t9"),                    # '|' in the Call-ID
         ("0901234567@127.0.0.1:5080", "c1|", "1", "t9"),
         ("0901234567@127.0.0.1:5080", "c1@h", "f1", "f1")]                     # the same tag on both sides


@pytest.mark.parametrize("uri, call_id, from_tag, to_tag", CASES)
def test_the_pump_ends_a_call_with_the_tags_the_python_fast_path_reads(tmp_path, uri, call_id, from_tag, to_tag):
    data = _bye(uri, call_id, from_tag, to_tag)
    ended = {}
    for path in ("python", "pump"):
        scr = offline_screen(build(data_dir=tmp_path / path, with_model=False, persist=False))
        scr._call_ended = lambda c, tags=None, path=path: ended.setdefault(path, []).append((c, tags))
        if path == "python":
            assert fastpath.in_dialog(data, *UAS, scr.via_prefixes) is not None     # (the fast path's, not the parse)
            scr.on_datagram(data, UAS)
        else:
            sent = []
            scr._fast_bye = lambda *a: pytest.fail("the pump read the BYE's tags in Python")
            make_pump(scr, -1, lambda d, a: sent.append(a)).handle(data, UAS)
            assert sent and not scr.udp.out                 # relayed by the pump itself (not its slow path)
    assert ended["pump"] == ended["python"] and len(ended["python"]) == 1, ended
    assert ended["python"][0][1][1] == to_tag
