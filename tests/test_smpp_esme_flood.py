"""An ESME that sends without waiting for answers (esme.py, dispatch.over_other_rate): a read is decoded at most
MAX_QUEUED PDUs a loop turn, the rest later, every PDU answered once and in order; PDUs that are not messages
beyond [server] other_requests_* are answered ESME_RTHROTTLED and the bind is closed after sustained abuse.
The bound per turn is asserted structurally (PDUs decoded per callback), never as a time."""
import struct
import threading

import pytest

from engine.smpp_proxy import esme as E
from engine.smpp_proxy import inbox as I
from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)

UNBOUNDED = SmppSettings(other_requests_per_second=1e9, other_requests_burst=1 << 30)


@pytest.fixture
def decoded_per_call(monkeypatch):
    """PDUs put in an ESME's queue by each read callback or backlog turn (on the loop's thread)."""
    counts, current = [], [0]
    put = I.Inbox.put

    def counting_put(self, sess, pdu):
        current[0] += 1
        return put(self, sess, pdu)

    def counted(fn):
        def wrapper(self, *a):
            current[0] = 0
            try:
                return fn(self, *a)
            finally:
                counts.append(current[0])
        return wrapper
    monkeypatch.setattr(I.Inbox, "put", counting_put)
    monkeypatch.setattr(E.EsmeSession, "data_received", counted(E.EsmeSession.data_received))
    monkeypatch.setattr(E.EsmeSession, "_decode_backlog", counted(E.EsmeSession._decode_backlog))
    return counts


def _burst(pdus) -> bytes:
    return b"".join(encode(p) for p in pdus)


def _send_in_thread(sock, data):
    # sent while the answers are read: a peer that does not read is (rightly) not read either
    t = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    t.start()
    return t


def _submit(seq):
    return P.SubmitSm(sequence_number=seq, source_addr="84901234567", destination_addr="84912345678",
                      short_message=b"hello %d" % seq)


def test_a_flood_in_one_read_is_decoded_a_bounded_batch_a_turn_and_answered_once_in_order(pipe, decoded_per_call):
    n = 20_000
    pdus = [_submit(seq) if seq % 2_000 == 0 else P.EnquireLink(sequence_number=seq) for seq in range(2, n + 2)]
    with ProxyHarness(pipe, settings=UNBOUNDED) as h:
        s, r = raw_session(h)
        assert r.command_status == 0
        decoded_per_call.clear()
        t = _send_in_thread(s, _burst(pdus))
        got = [read_raw(s) for _ in range(n)]
        t.join(10)
        # each request answered exactly once, ok; the enquire_links in the order sent (a submit_sm's answer waits
        # for the SMSC's)
        assert sorted(a.sequence_number for a in got) == list(range(2, n + 2))
        assert all(a.command_status == 0 for a in got)
        links = [a.sequence_number for a in got if a.command_id == C.ENQUIRE_LINK_RESP]
        assert links == [p.sequence_number for p in pdus if p.command_id == C.ENQUIRE_LINK]
        assert sum(a.command_id == C.SUBMIT_SM_RESP for a in got) == n // 2_000
        # one callback never decoded more than the bound, and the flood took many turns (it came in far bigger
        # reads: 320 KB)
        assert max(decoded_per_call) <= I.MAX_QUEUED
        assert sum(decoded_per_call) == n and len(decoded_per_call) >= n // I.MAX_QUEUED
        assert h.run(lambda: [x.inq for x in h.proxy.sessions if x.account] == [I.deque()])
        s.settimeout(1)                     # the socket is read again: an enquire_link now is answered
        s.sendall(encode(P.EnquireLink(sequence_number=n + 2)))
        assert read_raw(s).sequence_number == n + 2
        s.close()


def test_an_unbind_behind_a_backlog_is_answered_after_everything_before_it(pipe, decoded_per_call):
    n = 5_000
    with ProxyHarness(pipe, settings=UNBOUNDED) as h:
        s, _ = raw_session(h)
        t = _send_in_thread(s, _burst([P.EnquireLink(sequence_number=seq) for seq in range(2, n + 2)]
                                      + [P.Unbind(sequence_number=n + 2)]))
        got = [read_raw(s) for _ in range(n + 1)]
        t.join(10)
        assert [a.sequence_number for a in got] == list(range(2, n + 3))
        assert got[-1].command_id == C.UNBIND_RESP and got[-1].command_status == 0
        s.settimeout(5)
        assert s.recv(16) == b""            # then closed
        assert max(decoded_per_call) <= I.MAX_QUEUED


def test_requests_other_than_messages_over_the_rate_are_throttled_then_the_bind_is_closed(pipe):
    # 0.01/s: no token comes back during the test
    settings = SmppSettings(other_requests_per_second=0.01, other_requests_burst=5, other_requests_refused_close=10)
    with ProxyHarness(pipe, settings=settings) as h:
        s, _ = raw_session(h)
        s.sendall(_burst([P.EnquireLink(sequence_number=seq) for seq in range(2, 7)]))
        s.sendall(encode(P.QuerySm(sequence_number=7, message_id="abc", source_addr="84901234567")))
        s.sendall(encode(_submit(8)))       # a message and a query_sm: the account's throughput, not this bucket
        got = [read_raw(s) for _ in range(7)]
        assert {(a.command_id, a.sequence_number) for a in got} == {
            (C.ENQUIRE_LINK_RESP, 2), (C.ENQUIRE_LINK_RESP, 3), (C.ENQUIRE_LINK_RESP, 4), (C.ENQUIRE_LINK_RESP, 5),
            (C.ENQUIRE_LINK_RESP, 6), (C.QUERY_SM_RESP, 7), (C.SUBMIT_SM_RESP, 8)}
        assert [a.command_status for a in got if a.command_id != C.QUERY_SM_RESP] == [0] * 6
        assert C.ESME_RTHROTTLED not in [a.command_status for a in got]
        assert h.proxy.stats["esme_other_throttled"] == 0
        # the bucket is empty: an enquire_link is answered ESME_RTHROTTLED in its own resp, a query_sm still goes
        # (the account's throughput), the 10th refused closes the bind; what was read before the close is answered
        s.sendall(_burst([P.EnquireLink(sequence_number=seq) for seq in range(9, 18)]
                         + [P.QuerySm(sequence_number=18, message_id="abc", source_addr="84901234567")]
                         + [P.EnquireLink(sequence_number=seq) for seq in range(19, 22)]))
        got = [read_raw(s) for _ in range(13)]
        assert sorted((a.command_id, a.sequence_number, a.command_status) for a in got
                      if a.command_id == C.ENQUIRE_LINK_RESP) == (
            [(C.ENQUIRE_LINK_RESP, seq, C.ESME_RTHROTTLED) for seq in range(9, 18)]
            + [(C.ENQUIRE_LINK_RESP, seq, C.ESME_RTHROTTLED) for seq in range(19, 22)])
        assert [(a.sequence_number, a.command_status != C.ESME_RTHROTTLED) for a in got
                if a.command_id == C.QUERY_SM_RESP] == [(18, True)]
        s.settimeout(5)
        assert s.recv(16) == b""
        assert h.proxy.stats["esme_other_throttled"] == 12
        assert h.proxy.stats["esme_other_flood_closed"] == 1
        other, r = raw_session(h)           # another bind is served meanwhile
        assert r.command_status == 0


def test_a_bind_that_slows_down_under_the_rate_is_not_closed():
    """The refusals that close a bind are counted since its bucket was last full: bursts over the rate now and
    then, each refused in part, never add up to a close; refused without a pause between, they do."""
    from collections import defaultdict
    from types import SimpleNamespace

    from engine.smpp_proxy.dispatch import EsmeDispatch

    closes = []
    proxy = SimpleNamespace(settings=SmppSettings(other_requests_per_second=100, other_requests_burst=4,
                                                  other_requests_refused_close=6),
                            stats=defaultdict(int), loop=SimpleNamespace(call_soon=closes.append))
    sess = SimpleNamespace(other_bucket=None, other_refused=0, account=None, peer=("127.0.0.1", 1), close="close")

    def burst():                            # 8 at once: 4 taken, 4 refused
        return [EsmeDispatch.over_other_rate(proxy, sess) for _ in range(8)]
    for _ in range(3):
        assert burst() == [False] * 4 + [True] * 4
        sess.other_bucket.t -= 1.0          # a second without any: the bucket is full again
    assert proxy.stats["esme_other_throttled"] == 12 and closes == []
    burst()
    burst()                                 # no pause: 4 + 8 refused since the bucket was last full
    assert closes == ["close"] and proxy.stats["esme_other_flood_closed"] == 1


def test_late_answers_to_receipts_that_timed_out_are_not_a_flood(pipe):
    """An ESME that stops answering its receipts for longer than the response timeout, then catches up, answers
    each deliver_sm of ours late: those answers are no strays (a free PDU), they take no token of the bucket for
    other requests. Before, a receiver answering its backlog after a pause was closed as a flood (2,000 late
    answers) and its rebind given the back-off."""
    settings = SmppSettings(other_requests_per_second=0.01, other_requests_burst=2, other_requests_refused_close=3,
                            smsc_response_timeout=0.5)
    n = 5
    with ProxyHarness(pipe, settings=settings) as h:
        s, _ = raw_session(h)
        s.sendall(_burst([P.replace(_submit(seq), registered_delivery=1) for seq in range(2, n + 2)]))
        got = [read_raw(s) for _ in range(2 * n)]           # the resps and the receipts, none answered
        receipts = [a.sequence_number for a in got if a.command_id == C.DELIVER_SM]
        assert len(receipts) == n
        assert wait(lambda: h.run(lambda: sum(len(x.timed_out) for x in h.proxy.sessions)) >= n, timeout=10)
        s.sendall(_burst([P.DeliverSmResp(sequence_number=seq) for seq in receipts]))
        s.sendall(encode(P.EnquireLink(sequence_number=n + 2)))
        s.settimeout(5)
        while (r := read_raw(s)).command_id != C.ENQUIRE_LINK_RESP:
            pass                            # (the receipts offered again meanwhile)
        assert (r.sequence_number, r.command_status) == (n + 2, 0)
        assert h.proxy.stats["esme_late_responses"] == n
        assert h.proxy.stats["esme_other_throttled"] == 0 and h.proxy.stats["esme_other_flood_closed"] == 0


def test_refused_pdus_count_as_other_requests(pipe):
    """A malformed PDU is answered with its own status (stream.py) but takes a token too: a flood of them closes
    the bind as a flood of enquire_links does."""
    settings = SmppSettings(other_requests_per_second=0.01, other_requests_burst=2, other_requests_refused_close=3)
    with ProxyHarness(pipe, settings=settings) as h:
        s, _ = raw_session(h)
        bad = struct.pack(">IIII", 16, 0x000000FF, 0, 0)       # an unknown command_id: generic_nack
        s.sendall(b"".join(bad[:12] + struct.pack(">I", seq) for seq in range(2, 7)))
        got = [read_raw(s) for _ in range(5)]
        assert [(a.command_id, a.sequence_number) for a in got] == [(C.GENERIC_NACK, seq) for seq in range(2, 7)]
        s.settimeout(5)
        assert s.recv(16) == b""
        assert h.proxy.stats["esme_other_flood_closed"] == 1


def test_a_bound_esmes_invalid_messages_are_not_other_requests(pipe):
    """A submit_sm the codec refuses (a destination_addr over 20 octets) from a bound ESME is a message, answered with
    its status: it takes no token of the bucket for other requests (a bulk sender's dirty list drained it, its
    enquire_links were then throttled and its bind closed; review)."""
    settings = SmppSettings(other_requests_per_second=0.01, other_requests_burst=2, other_requests_refused_close=3)
    with ProxyHarness(pipe, settings=settings) as h:
        s, _ = raw_session(h)
        def bad(seq):                   # written by hand: the encoder refuses it too
            body = (b"\0" + b"\1\1" + b"84901234567\0" + b"\1\1" + b"9" * 30 + b"\0" + b"\0\0\0" + b"\0\0"
                    + b"\0\0\0\0" + b"\1x")
            return struct.pack(">IIII", 16 + len(body), C.SUBMIT_SM, 0, seq) + body
        s.sendall(b"".join(bad(seq) for seq in range(2, 8)))
        got = [read_raw(s) for _ in range(6)]
        assert [a.sequence_number for a in got] == list(range(2, 8)) and 0 not in [a.command_status for a in got]
        s.sendall(encode(P.EnquireLink(sequence_number=8)))
        r = read_raw(s)
        assert (r.sequence_number, r.command_status) == (8, 0)
        assert h.proxy.stats["esme_other_throttled"] == 0 and h.proxy.stats["esme_other_flood_closed"] == 0


def test_binds_sent_while_one_waits_for_its_answer_are_other_requests(pipe):
    """A bind while another waits for its answer (a wrong password's back-off) is refused ESME_RALYBND and takes a
    token: a connection sending binds in a loop is closed as a flood (it cost nothing; review)."""
    settings = SmppSettings(other_requests_per_second=0.01, other_requests_burst=2, other_requests_refused_close=3,
                            bind_failures_free=0, bind_backoff=2.0)
    with ProxyHarness(pipe, settings=settings) as h:
        import socket
        s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        s.sendall(_burst([P.BindTransceiver(sequence_number=seq, system_id="esme1", password="wrong",
                                            interface_version=0x34) for seq in range(2, 12)]))
        assert wait(lambda: h.proxy.stats["esme_other_flood_closed"] == 1, timeout=10)
        assert h.proxy.stats["esme_other_throttled"] >= 3


@pytest.mark.parametrize("line,why", [
    ("other_requests_per_second = 0", "other_requests_per_second must be at least 0.01 PDUs a second"),
    ("other_requests_burst = 1", "other_requests_burst must be at least 2 PDUs (a full bucket ends a flood's count "
                                 "of refusals: 1 would end it at each token)"),
    ("other_requests_refused_close = -1", "other_requests_refused_close must be at least 0 PDUs (0: never closed)"),
])
def test_other_request_bounds_that_cannot_work_are_errors_at_their_line(tmp_path, line, why):
    from engine.smpp_proxy.accounts import SmppConfigError, load_smpp_settings
    (tmp_path / "smpp.toml").write_text(f"[server]\n{line}\n")
    with pytest.raises(SmppConfigError, match=f"smpp.toml:2:1: \\[server\\] {why}".replace("(", "\\(").replace(")", "\\)")):
        load_smpp_settings(tmp_path)
    (tmp_path / "smpp.toml").write_text("[server]\nother_requests_per_second = 5\nother_requests_burst = 20\n")
    s = load_smpp_settings(tmp_path)
    assert (s.other_requests_per_second, s.other_requests_burst, s.other_requests_refused_close) == (5.0, 20, 2000)
