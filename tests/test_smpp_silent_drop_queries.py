"""query_sm / cancel_sm / replace_sm of a silent drop's local message_id (`[drop] silent_symbols`): the proxy gave
the ESME that id itself, so it answers for it as the SMSC would for a message it rejected. Before, the id was
"not forwarded by this process" like any unknown one: query_sm ESME_RQUERYFAIL, cancel_sm ESME_RINVMSGID -- an
ESME that polls query_sm (registered_delivery 0: no REJECTD receipt) never learnt the message's final state, and
"invalid message id" for an id the proxy had just issued told a sender its message never existed."""
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw  # noqa: F401  (pipe: fixture)

PHISH = b"Your account is locked, verify at http://phish.example/login today please"


def _silently_dropped(sock) -> str:
    sock.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                   short_message=PHISH)))
    r = read_raw(sock)
    assert r.command_status == 0 and r.message_id.startswith("L")
    return r.message_id


def test_a_local_id_is_answered_as_a_rejected_message_to_its_account_only(pipe):
    s = SmppSettings(silent_symbols=("URL_BLACKLISTED",))
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:pw2"), settings=s) as h:
        sock, _ = raw_session(h)
        mid = _silently_dropped(sock)
        sock.sendall(encode(P.QuerySm(sequence_number=3, message_id=mid, source_addr="84901234567")))
        q = read_raw(sock)
        assert (q.command_id, q.sequence_number, q.command_status) == (C.QUERY_SM_RESP, 3, 0)
        assert (q.message_id, q.message_state) == (mid, 8)              # SMPP 3.4 §5.2.28: REJECTED
        assert len(q.final_date) == 16 and q.final_date.endswith("+")   # §7.1.1: an absolute time
        sock.sendall(encode(P.CancelSm(sequence_number=4, message_id=mid, source_addr="84901234567",
                                       destination_addr="84912345678")))
        c = read_raw(sock)
        assert (c.command_id, c.command_status) == (C.CANCEL_SM_RESP, C.ESME_RCANCELFAIL)    # final already
        other, _ = raw_session(h, "esme2", "pw2")
        other.sendall(encode(P.QuerySm(sequence_number=3, message_id=mid, source_addr="84901234567")))
        assert read_raw(other).command_status == C.ESME_RINVMSGID                # another account's id
        assert h.sim.received and not [p for _, p in h.sim.received
                                       if p.command_id in (C.QUERY_SM, C.CANCEL_SM, C.SUBMIT_SM)]
        sock.close()
        other.close()
