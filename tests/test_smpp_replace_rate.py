"""A replace_sm is judged as a message (relay.py `_replace`), so it costs what a message costs: a token of the
account's throughput (SMS segments: a long one more), and it is throttled unjudged when no SMSC link can take it.
Before, it took no token and was judged before a link was looked for: one message_id let an ESME at 2 submit_sm a
second make the proxy judge every replace_sm it sent (each up to a 64 KB message_payload), counted toward the
caps and given back, while each got ESME_RTHROTTLED from a full window."""
import io
import json
from contextlib import contextmanager

from engine.smpp_proxy.accounts import Account, SmppSettings, hash_password
from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_smpp_proxy import raw_session, read_raw, wait
from tests.test_smpp_replace import NOON, _replace, _submit, pipe  # noqa: F401,F811  (pipe: fixture)


@contextmanager
def _sent(pipe, dst, throughput=1000.0, **settings):
    """A proxy whose account esme1 (`throughput` a second) has sent one message to `dst`: (harness, its socket, the
    message's id, the verdict log)."""
    s = SmppSettings(**settings)
    buf = io.StringIO()
    h = ProxyHarness(pipe, accounts=(), settings=s, clock=lambda: NOON, verdict_log=VerdictLog(buf))
    s.accounts["esme1"] = Account("esme1", hash_password("pw", iterations=1000), throughput=throughput)
    with h:
        sock, _ = raw_session(h, "esme1", "pw")
        sock.sendall(_submit(2, dst))
        mid = read_raw(sock).message_id
        assert mid
        yield h, sock, mid, buf


def _judged_replaces(buf) -> int:
    return sum(1 for x in buf.getvalue().splitlines() if json.loads(x)["pdu"] == "ReplaceSm")


def test_replace_sm_takes_the_accounts_throughput(pipe):
    with _sent(pipe, "84912777010", throughput=2) as (h, s, mid, buf):
        for i in range(8):
            s.sendall(_replace(10 + i, mid, b"So du tai khoan thay doi %d" % i))
        got = [read_raw(s).command_status for _ in range(8)]
        assert got.count(C.ESME_RTHROTTLED) >= 5, got         # a burst of 2 a second, one spent by the submit
        assert _judged_replaces(buf) == got.count(0) <= 3


def test_a_long_replace_sm_costs_its_segments(pipe):
    with _sent(pipe, "84912777011", throughput=20) as (h, s, mid, buf):
        long = P.ReplaceSm(sequence_number=3, message_id=mid, source_addr_ton=5, source_addr="BANKZ",
                           tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"So du tai khoan thay doi. " * 200),))
        s.sendall(encode(long))
        assert read_raw(s).command_status == 0                 # judged: ~40 segments, charged once judged
        s.sendall(_submit(4, "84912777011"))
        assert read_raw(s).command_status == C.ESME_RTHROTTLED  # the bucket is below zero: paid by what follows


def test_a_replace_sm_no_link_can_take_is_throttled_unjudged(pipe):
    with _sent(pipe, "84912777012", smsc_window=1, smsc_response_timeout=30) as (h, s, mid, buf):
        h.sim.stall = True
        s.sendall(_submit(3, "84912777012"))                   # holds the link's one window slot
        assert wait(lambda: h.sim.held)
        s.sendall(_replace(4, mid, b"So du tai khoan thay doi"))
        assert read_raw(s).command_status == C.ESME_RTHROTTLED
        assert _judged_replaces(buf) == 0                      # not judged (nor counted, nor logged)
        h.run(h.sim.answer_held)
        assert read_raw(s).command_status == 0


def test_query_sm_and_cancel_sm_take_the_accounts_throughput(pipe):
    """query_sm and cancel_sm go to the SMSC too: a token of the account's throughput each, as a message (not the
    bind's bucket for enquire_link and the like, whose refusals close a flooding bind: an ESME cancelling a
    campaign's scheduled ads sends them at its message rate)."""
    with _sent(pipe, "84912777013", throughput=2) as (h, s, mid, buf):
        for i in range(4):
            s.sendall(encode(P.QuerySm(sequence_number=10 + i, message_id=mid, source_addr_ton=5, source_addr="BANKZ")))
            s.sendall(encode(P.CancelSm(sequence_number=20 + i, message_id=mid, source_addr_ton=5,
                                        source_addr="BANKZ")))
        got = [read_raw(s) for _ in range(8)]
        throttled = [a.sequence_number for a in got if a.command_status == C.ESME_RTHROTTLED]
        assert len(throttled) >= 5, [(a.sequence_number, a.command_status) for a in got]
        assert h.proxy.stats["esme_other_throttled"] == 0
