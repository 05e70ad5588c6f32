"""What a message's size may cost (probe findings 3, 6, 7): an account's throughput counts SMS segments,
so a 60 KB message_payload is paid for as ~450 messages; a message longer than max_message_chars is
refused whole (concatenated ones too, their late parts as well), never judged for seconds on the event
loop; the parts waiting for their message are bounded in characters; a receipt-sized bound on what
waits in memory from the SMSC."""
import io
import json

from engine.smpp_proxy.accounts import SmppSettings, message_cost
from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_smpp_proxy import pipe, raw_session, read_raw, wait  # noqa: F401  (pipe: fixture)

GOOD = "84901234567"


def _payload(seq, text: bytes, **kw):
    return encode(P.SubmitSm(sequence_number=seq, source_addr=GOOD, destination_addr="84912345678",
                             tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, text),), **kw))


def _part(seq, n, total, body, ref=0x42):
    return encode(P.SubmitSm(sequence_number=seq, source_addr=GOOD, destination_addr="84912345678", esm_class=0x40,
                             short_message=bytes((5, 0, 3, ref, total, n)) + body))


def _sar(seq, n, total, body, ref):
    return encode(P.SubmitSm(sequence_number=seq, source_addr=GOOD, destination_addr="84912345678",
                             tlvs=(Tlv(C.TAG_SAR_MSG_REF_NUM, ref.to_bytes(2, "big")), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, bytes((total,))),
                                   Tlv(C.TAG_SAR_SEGMENT_SEQNUM, bytes((n,))), Tlv(C.TAG_MESSAGE_PAYLOAD, body))))


def _lines(buf):
    return [json.loads(x) for x in buf.getvalue().splitlines()]


def test_message_cost_is_one_for_an_sms_and_its_segments_for_a_long_payload():
    one = P.decode(encode(P.SubmitSm(source_addr=GOOD, destination_addr="84912345678", short_message=b"x" * 140)))
    assert message_cost(one) == 1
    big = P.decode(_payload(1, b"a" * 60000))
    assert 440 <= message_cost(big) <= 460
    multi = P.decode(encode(P.SubmitMulti(source_addr=GOOD, dest_addresses=[(1, 1, 1, f"8491234567{i}") for i in range(5)],
                                          short_message=b"hello")))
    assert message_cost(multi) == 5


def test_a_long_payload_is_paid_for_by_the_messages_after_it(pipe):
    with ProxyHarness(pipe) as h:
        # 5/s: in debt ~13 s after the long one (at 50/s it was ~0.3 s, from its charge before it was judged and
        # forwarded: its judging, the SMSC's answer and a pause of a loaded host fit in that, and the next went)
        h.proxy.accounts["esme1"].throughput = 5.0
        s, _ = raw_session(h)
        s.sendall(_payload(2, b"see you at the station " * 400))            # ~9 KB: ~70 segments
        assert read_raw(s).command_status == 0
        s.sendall(encode(P.SubmitSm(sequence_number=3, source_addr=GOOD, destination_addr="84912345678",
                                    short_message=b"and one more")))
        assert read_raw(s).command_status == C.ESME_RTHROTTLED                # the bucket is in debt for ~13 s
        assert h.proxy.stats["throttled"] == 1


def test_a_message_over_max_message_chars_is_refused_and_logged(pipe):
    buf = io.StringIO()
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=1000), verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        s.sendall(_payload(2, b"x" * 1500))
        r = read_raw(s)
        assert (r.sequence_number, r.command_status) == (2, C.ESME_RINVMSGLEN)
        s.sendall(_payload(3, b"y" * 1000))
        assert read_raw(s).command_status == 0
        h.run(h.vlog.flush)
        assert [x["action"] for x in _lines(buf)] == ["refuse", "allow"] and len(h.sim.submits()) == 1


def test_a_concatenated_message_over_max_message_chars_is_refused_whole_late_parts_too(pipe):
    buf = io.StringIO()
    st = SmppSettings(max_message_chars=300, concat_timeout=5.0)
    with ProxyHarness(pipe, settings=st, verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        s.sendall(_part(10, 1, 3, b"a" * 150))
        s.sendall(_part(11, 2, 3, b"b" * 151))                 # 301 characters: over
        got = {r.sequence_number: r.command_status for r in (read_raw(s) for _ in range(2))}
        assert got == {10: C.ESME_RINVMSGLEN, 11: C.ESME_RINVMSGLEN}
        s.sendall(_part(12, 3, 3, b"c" * 10))                  # its last part: refused as well, not forwarded
        r = read_raw(s)
        assert (r.sequence_number, r.command_status) == (12, C.ESME_RINVMSGLEN)
        assert h.sim.submits() == [] and len(h.proxy.concat.pending) == 0 and h.proxy.concat.size == 0
        h.run(h.vlog.flush)
        assert [x["action"] for x in _lines(buf)] == ["refuse"] * 3


def test_waiting_parts_are_bounded_in_bytes_the_oldest_judged_first(pipe):
    st = SmppSettings(max_pending_concat_bytes=65536, concat_timeout=10.0)
    with ProxyHarness(pipe, settings=st) as h:
        s, _ = raw_session(h)
        s.sendall(_sar(20, 1, 2, b"see you at the station, " * 1500, ref=1))   # 36 KB waiting
        s.sendall(_sar(21, 1, 2, b"the meeting is at three " * 1500, ref=2))  # 72 KB: the oldest is judged now
        r = read_raw(s)
        assert (r.sequence_number, r.command_status) == (20, 0)
        assert wait(lambda: len(h.sim.submits()) == 1) and 36000 < h.proxy.concat.size < 37000
        s.sendall(_sar(22, 2, 2, b" see you", ref=2))
        got = {r.sequence_number: r.command_status for r in (read_raw(s) for _ in range(2))}
        assert got == {21: 0, 22: 0} and h.proxy.concat.size == 0


def test_binary_parts_count_the_bytes_they_hold(pipe):
    """A binary part's judged text is only the URLs readable in it (often none): its bytes are what counts."""
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=1000, concat_timeout=5.0)) as h:
        s, _ = raw_session(h)
        for seq, n in ((30, 1), (31, 2)):
            s.sendall(encode(P.SubmitSm(sequence_number=seq, source_addr=GOOD, destination_addr="84912345678",
                                        data_coding=0x04, esm_class=0x40,
                                        short_message=bytes((5, 0, 3, 9, 40, n)) + bytes(range(128)) + b"\xff" * 6)))
        for seq in range(32, 62):                       # 4 x 1000 bytes of PDUs: refused whole
            s.sendall(encode(P.SubmitSm(sequence_number=seq, source_addr=GOOD, destination_addr="84912345678",
                                        data_coding=0x04, esm_class=0x40,
                                        short_message=bytes((5, 0, 3, 9, 40, seq - 29)) + b"\x80" * 134)))
        got = {}
        while len(got) < 32:
            r = read_raw(s)
            got[r.sequence_number] = r.command_status
        assert set(got.values()) == {C.ESME_RINVMSGLEN} and h.sim.submits() == []


def test_one_part_over_the_bound_refuses_its_whole_message(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=1000, concat_timeout=5.0)) as h:
        s, _ = raw_session(h)
        s.sendall(_sar(40, 1, 3, b"a" * 100, ref=5))
        s.sendall(_sar(41, 2, 3, b"b" * 1200, ref=5))          # this part alone is over
        got = {r.sequence_number: r.command_status for r in (read_raw(s) for _ in range(2))}
        assert got == {40: C.ESME_RINVMSGLEN, 41: C.ESME_RINVMSGLEN}
        s.sendall(_sar(42, 3, 3, b"c" * 10, ref=5))
        assert read_raw(s).command_status == C.ESME_RINVMSGLEN and h.sim.submits() == []


def test_late_parts_count_against_max_message_chars(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=600, concat_timeout=0.3)) as h:
        s, _ = raw_session(h)
        s.sendall(_sar(50, 1, 3, b"a" * 250, ref=6))
        assert read_raw(s).command_status == 0                   # judged alone at the timeout, forwarded
        s.sendall(_sar(51, 2, 3, b"b" * 250, ref=6))
        assert read_raw(s).command_status == 0                   # late, 500 characters: still within
        s.sendall(_sar(52, 3, 3, b"c" * 250, ref=6))
        assert read_raw(s).command_status == C.ESME_RINVMSGLEN   # 750: over, refused
        assert len(h.sim.submits()) == 2


def test_a_refused_message_costs_one_token_however_long(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=1000)) as h:
        h.proxy.accounts["esme1"].throughput = 50.0
        s, _ = raw_session(h)
        s.sendall(_payload(2, b"x" * 30000))                    # refused unjudged: ESME_RINVMSGLEN
        assert read_raw(s).command_status == C.ESME_RINVMSGLEN
        s.sendall(encode(P.SubmitSm(sequence_number=3, source_addr=GOOD, destination_addr="84912345678",
                                    short_message=b"and one more")))
        assert read_raw(s).command_status == 0                   # not throttled: it cost one token


def test_a_receipt_too_big_to_hold_is_left_with_the_smsc(pipe):
    from tests.test_smpp_receipts import Esme
    with ProxyHarness(pipe, receipt_delay=None) as h:
        e = Esme(h, kind=P.BindTransmitter)                    # no receiver bind: receipts would be held
        e.submit(1)
        sm = e.next(lambda p: p.command_id == C.SUBMIT_SM_RESP)
        mid = sm.message_id
        big = P.DeliverSm(source_addr="84912345678", destination_addr=GOOD, esm_class=C.ESM_TYPE_DELIVERY_RECEIPT,
                          tlvs=(Tlv(C.TAG_RECEIPTED_MESSAGE_ID, mid.encode() + b"\x00"),
                                Tlv(C.TAG_MESSAGE_PAYLOAD, b"id:%s stat:DELIVRD " % mid.encode() + b"z" * 8000)))

        async def send():
            return h.sim.send_deliver(big)
        assert h.call(send())
        assert wait(lambda: len(h.sim.mo_responses) == 1)
        assert h.sim.mo_responses[0].command_status == C.ESME_RX_T_APPN and h.proxy.held_total == 0
        assert h.proxy.stats["receipts_too_big_to_hold"] == 1


def test_a_submit_multi_whose_judging_would_stall_the_loop_is_refused(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=1000)) as h:
        s, _ = raw_session(h)
        dests = [(1, 1, 1, f"849123456{i:02d}") for i in range(20)]
        s.sendall(encode(P.SubmitMulti(sequence_number=2, source_addr=GOOD, dest_addresses=dests,
                                       tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"z" * 500),))))     # 20 x 500 > 8 x 1000
        assert read_raw(s).command_status == C.ESME_RINVMSGLEN
        s.sendall(encode(P.SubmitMulti(sequence_number=3, source_addr=GOOD, dest_addresses=dests[:10],
                                       tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"z" * 500),))))     # 10 x 500: judged
        assert read_raw(s).command_status == 0


def test_a_late_part_pays_its_segments(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.3)) as h:
        # 5/s: the late part's ~65 segments are ~13 s of the bucket (at 50/s the bucket's debt after it, ~15
        # tokens, came back in ~0.3 s, and a pause that long between its answer and the next submit let that through)
        h.proxy.accounts["esme1"].throughput = 5.0
        s, _ = raw_session(h)
        s.sendall(_sar(60, 1, 2, b"see you", ref=7))
        assert read_raw(s).command_status == 0                   # judged alone at the timeout
        s.sendall(_sar(61, 2, 2, b"at the station " * 600, ref=7))   # late, ~9 KB: judged, ~70 segments
        assert read_raw(s).command_status == 0
        s.sendall(encode(P.SubmitSm(sequence_number=62, source_addr=GOOD, destination_addr="84912345678",
                                    short_message=b"and one more")))
        assert read_raw(s).command_status == C.ESME_RTHROTTLED


def test_a_submit_multi_over_max_message_chars_is_refused(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=1000)) as h:
        s, _ = raw_session(h)
        dests = [(1, 1, 1, "84912345601"), (1, 1, 1, "84912345602")]
        s.sendall(encode(P.SubmitMulti(sequence_number=2, source_addr=GOOD, dest_addresses=dests,
                                       tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"z" * 3000),))))
        assert read_raw(s).command_status == C.ESME_RINVMSGLEN


def test_a_late_part_sent_again_counts_once(pipe):
    with ProxyHarness(pipe, settings=SmppSettings(max_message_chars=600, concat_timeout=0.3)) as h:
        s, _ = raw_session(h)
        s.sendall(_sar(70, 1, 3, b"a" * 250, ref=8))
        assert read_raw(s).command_status == 0
        for seq in (71, 72, 73):                                 # the ESME retries its late part 2
            s.sendall(_sar(seq, 2, 3, b"b" * 250, ref=8))
            assert read_raw(s).command_status == 0               # 500 characters, however often sent


def test_a_full_message_payload_is_judged_and_forwarded_with_the_default_max_pdu(pipe):
    """Found by an encodings probe (stop 47): the default max_pdu (65,536) was under a PDU carrying a full
    message_payload (65,535 octets, the TLV's limit, and the PDU's own fields): such a legal submit_sm closed the
    bind, though max_message_chars (65,536) says one full message_payload is a message. The default is 64 KB + 4 KB,
    as the SMSC links take."""
    buf = io.StringIO()
    with ProxyHarness(pipe, settings=SmppSettings(), verdict_log=VerdictLog(buf)) as h:
        h.proxy.accounts["esme1"].throughput = 1e6
        s, _ = raw_session(h)
        pdu = _payload(2, b"hen gap o ga tau nhe " * 3120 + b"abc", data_coding=1)
        assert len(pdu) > 65536
        s.sendall(pdu)
        r = read_raw(s)
        assert (r.sequence_number, r.command_status) == (2, 0)
        assert wait(lambda: len(h.sim.submits()) == 1)
        h.run(h.vlog.flush)
        assert [x["action"] for x in _lines(buf)] == ["allow"]
