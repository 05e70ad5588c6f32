"""The ACK of an RFC 2543 INVITE (no Via branch), named as RFC 3261 §17.2.3 names its transaction (calllog.refused_key:
top Via sent-by, From tag, Request-URI, Call-ID): the ACK of a non-2xx final is that transaction's and goes where the
INVITE went, on its branch (tests/test_sip_refused_transaction.py); the ACK of a 2xx is a transaction of its own, end
to end (§13.2.2.4, §17.1.1.3), routed as the dialog's requests are. It has the INVITE's Request-URI whenever the
callee's Contact is that URI (a UA called at its own address): it was taken for the INVITE's and sent to the next hop
on the INVITE's branch, not to the Request-URI as its BYE is and as a 2xx ACK with a branch is."""
import re

import pytest

from engine.app import build
from engine.sip_screen.codec import make_response

from .sip_helpers import UAC, UAS, invite, offline_screen, sent

URI = b"sip:0912345678@127.0.0.9:5999"          # the callee's own address: its Contact too


def _no_branch(b: bytes) -> bytes:
    return re.sub(rb";branch=[^;\r]*", b"", b, count=1)


def _ack(inv: bytes, to_tag: str, branch: bytes | None) -> bytes:
    head = inv.split(b"\r\n\r\n")[0].replace(b"INVITE " + URI, b"ACK " + URI).replace(b"CSeq: 1 INVITE", b"CSeq: 1 ACK")
    head = head.replace(b"To: <sip:0912345678@127.0.0.1>", b"To: <sip:0912345678@127.0.0.1>;tag=" + to_tag.encode())
    if branch is not None:
        head = re.sub(rb"branch=[^;\r]*", b"branch=" + branch, head)
    return head + b"\r\n\r\n"


@pytest.mark.parametrize("rfc2543", [False, True])
@pytest.mark.parametrize("status", [200, 486])
def test_the_ack_of_a_2xx_is_routed_as_the_dialog_and_of_a_non_2xx_as_the_invite(tmp_path, rfc2543, status):
    scr = offline_screen(build(data_dir=tmp_path / "d", with_model=False, persist=False))
    inv = invite(call_id="c2543").replace(b"INVITE sip:0912345678@127.0.0.1 ", b"INVITE " + URI + b" ")
    inv = _no_branch(inv) if rfc2543 else inv
    scr.on_datagram(inv, UAC)
    ((fwd, to),) = sent(scr)
    assert fwd.method == "INVITE" and to == UAS
    final = make_response(fwd, status, None, to_tag="uas1")
    final.set("Contact", "<" + URI.decode() + ">")
    scr.on_datagram(final.to_bytes(), UAS)
    sent(scr)
    # (a 2xx's ACK with a branch has a new one; a non-2xx's has the INVITE's)
    scr.on_datagram(_ack(inv, "uas1", None if rfc2543 else b"z9hG4bK-ack2" if status == 200 else b"z9hG4bK-"
                         + re.search(rb"branch=z9hG4bK-([^;\r]*)", inv).group(1)), UAC)
    ((ack, to),) = sent(scr)
    assert ack.method == "ACK"
    if status == 200:
        assert to == ("127.0.0.9", 5999) and ack.values("via")[0] != fwd.values("via")[0], (to, ack.values("via"))
    else:
        assert to == UAS and ack.values("via")[0] == fwd.values("via")[0], (to, ack.values("via"))
