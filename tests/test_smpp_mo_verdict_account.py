"""An MO's verdict line names the ESME account it went to (engine/smpp_proxy/mo.py): it was written when the MO
was judged, before it was routed, with "account": "" whatever became of it. Now the line is written once it is
routed: the account whose receiver bind the deliver_sm went to, or "" with "status": 100 (ESME_RX_T_APPN, the
SMSC's answer: it delivers it again) when no bind could take it; still one line per MO."""
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec import encode
from tests.test_smpp_mo_concat import HAM, answers, deliver, gsm_parts, mo, proxy, verdicts  # noqa: F401
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401 (pipe: fixture)


def _line(buf, sender):
    lines = [r for r in verdicts(buf) if r["sender"] == sender]
    assert len(lines) == 1, lines                    # one line per MO, whatever its route
    return lines[0]


def test_the_verdict_line_of_an_mo_names_the_esme_account_it_went_to_or_that_none_took_it(proxy):
    h, buf = proxy()
    # no ESME bound: answered ESME_RX_T_APPN (the SMSC delivers it again)
    s = deliver(h, mo(b"hello service", dst="8088", src="84911000201", dc=0, esm_class=0))
    assert wait(lambda: answers(h) == {s: [C.ESME_RX_T_APPN]})
    line = _line(buf, "84911000201")
    assert (line["account"], line["action"], line.get("status")) == ("", "allow", C.ESME_RX_T_APPN)

    esme, _ = raw_session(h)                         # esme1, a transceiver (mo_prefixes: every destination)
    s = deliver(h, mo(b"hello service", dst="8088", src="84911000202", dc=0, esm_class=0))
    got = read_raw(esme)
    esme.sendall(encode(P.DeliverSmResp(sequence_number=got.sequence_number)))
    assert wait(lambda: answers(h).get(s) == [0])
    line = _line(buf, "84911000202")
    assert line["account"] == "esme1" and "status" not in line

    # a concatenated one: one line for its three parts, which went to the one bind
    seqs = [deliver(h, mo(sm, dst="8088", src="84911000203", dc=0)) for sm in gsm_parts(HAM, ref=21)]
    for _ in seqs:
        got = read_raw(esme)
        esme.sendall(encode(P.DeliverSmResp(sequence_number=got.sequence_number)))
    assert wait(lambda: all(answers(h).get(x) == [0] for x in seqs))
    line = _line(buf, "84911000203")
    assert line["pdu"] == "DeliverSm MO x3/3" and line["account"] == "esme1" and "status" not in line

    # dropped (a blacklisted sender): it went to no ESME, and no ESME was asked
    s = deliver(h, mo(b"hello service", dst="8088", src="84987000666", dc=0, esm_class=0))
    assert wait(lambda: s in answers(h))
    line = _line(buf, "84987000666")
    assert (line["action"], line["account"]) == ("drop", "") and "status" not in line
    esme.close()
