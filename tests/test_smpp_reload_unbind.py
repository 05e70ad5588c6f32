"""A bind a `ctl reload accounts` unbinds (password changed, account removed, ...) is still owed the answers to
what it sent before the unbind: the connection closes once they are given, not at the ESME's unbind_resp (the
SMSC took the messages; an ESME that never gets their submit_sm_resp resends them: duplicates)."""
import time

from engine.smpp_proxy.accounts import account_from_arg
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.live_accounts import apply_accounts
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)


def _submit(seq, text):
    return encode(P.SubmitSm(sequence_number=seq, source_addr="84901234567", destination_addr="84912345678",
                             short_message=text))


def _reload(h, accounts):
    async def go():
        return apply_accounts(h.proxy, accounts)
    return h.call(go())


def test_submits_in_flight_are_answered_after_a_reload_unbinds_their_bind(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret", "esme2:pw2")) as h:
        s, r = raw_session(h)
        assert r.command_status == 0
        h.sim.answer_delay = 0.5
        for seq in (2, 3, 4):
            s.sendall(_submit(seq, b"see you at %d" % seq))
        assert wait(lambda: len(h.sim.submits()) == 3)
        ans = _reload(h, {"esme1": account_from_arg("esme1:newpw"), "esme2": h.proxy.accounts["esme2"]})
        assert [u["why"] for u in ans["unbound"]] == ["password changed"]
        unbind = read_raw(s)
        assert unbind.command_id == C.UNBIND
        s.sendall(encode(P.UnbindResp(sequence_number=unbind.sequence_number)))   # answered at once
        got = [read_raw(s) for _ in range(3)]
        assert sorted((p.command_id, p.sequence_number, p.command_status) for p in got) == [
            (C.SUBMIT_SM_RESP, q, 0) for q in (2, 3, 4)]
        assert all(p.message_id for p in got)
        assert wait(lambda: not h.proxy.sessions)          # then closed


def test_a_part_waiting_for_its_message_is_answered_before_a_reload_closes_its_bind(pipe):
    with ProxyHarness(pipe, accounts=("esme1:secret",)) as h:
        s, _ = raw_session(h)
        udh = bytes([5, 0, 3, 0x61, 2, 1])
        s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                    esm_class=0x40, short_message=udh + b"part one of two")))
        time.sleep(0.1)
        _reload(h, {})                                       # the account removed
        unbind = read_raw(s)
        assert unbind.command_id == C.UNBIND
        s.sendall(encode(P.UnbindResp(sequence_number=unbind.sequence_number)))
        r = read_raw(s)
        assert (r.command_id, r.sequence_number) == (C.SUBMIT_SM_RESP, 2)
