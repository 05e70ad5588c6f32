"""Concatenated MO (engine/smpp_proxy/mo.py): the parts of one mobile-originated message wait,
unanswered, and the message is judged once on its whole text; then every part gets the message's
outcome. The SMSC is our simulator (it records every answer); the ESME is smpplib's client or a
raw socket. Parts are built here byte by byte (UDH IEI 0x00, SAR TLVs)."""
import io
import json
import socket
import time
from datetime import datetime, timezone

import pytest

from engine.app import build
from engine.smpp_proxy.accounts import DEFAULT_REPLIES, SmppSettings
from engine.smpp_proxy.codec import Tlv, encode, pdu_text, with_sequence
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from engine.verdict import Action, Message
from tests.test_smpp_proxy import client, pipe, raw_session, read_raw, receive, wait  # noqa: F401 (pipe: fixture)

REPORTER = "84911000001"
# 2 UCS-2 parts (67 characters each): the content runs on into the second part
REPORT = ("S 0912345678 Tin nhắn này mời tôi vay tiền lãi suất thấp, bấm vào đường link để nhận "
          "tiền ngay hôm nay nhé")
CONTENT = REPORT[len("S 0912345678 "):]
# the blacklisted domain (phish.example) is split across parts 1 and 2: no part alone names it
SPLIT_URL = ["Hi Lan, the photos from our trip to Da Lat are up at http://phi",
             "sh.example/dalat and tell me which ones ",
             "you like. See you on Sunday!"]
HAM = ["Hi Lan, the meeting on Thursday moved to room 402 on the fourth ",
       "floor, next to the lifts. Bring the printed agenda and the budget ",
       "sheet from last week please. Thanks!"]


@pytest.fixture
def proxy(pipe):
    """make(**settings) -> (harness, verdict log buffer); everything stopped at the end."""
    made = []

    def make(**kw):
        buf = io.StringIO()
        kw.setdefault("concat_timeout", 5.0)
        h = ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(**kw),
                         verdict_log=VerdictLog(buf)).start()
        made.append(h)
        return h, buf
    yield make
    for h in made:
        h.stop()


def ucs2_parts(text, ref, per=67):
    chunks = [text[i:i + per] for i in range(0, len(text), per)]
    return [bytes([5, 0, 3, ref, len(chunks), i + 1]) + c.encode("utf-16-be") for i, c in enumerate(chunks)]


def gsm_parts(chunks, ref):
    return [bytes([5, 0, 3, ref, len(chunks), i + 1]) + c.encode("ascii") for i, c in enumerate(chunks)]


def mo(sm, dst="5656", src=REPORTER, dc=8, **kw):
    return P.DeliverSm(source_addr_ton=1, source_addr_npi=1, source_addr=src, destination_addr=dst,
                       esm_class=kw.pop("esm_class", C.ESM_UDHI), data_coding=dc, short_message=sm, **kw)


def deliver(h, pdu):
    """Send `pdu` as the SMSC, on its newest bound session (one a killed serve left may not have noticed yet);
    returns the sequence_number it went with."""
    def go():
        s = [s for s in h.sim.sessions if s.bound][-1]
        seq = s.conn.next_sequence()
        s.send(P.replace(pdu, sequence_number=seq))
        return seq
    return h.run(go)


def answers(h):
    """sequence_number -> [command_status, ...] of every answer the SMSC got to its MO."""
    out = {}
    for r in list(h.sim.mo_responses):
        out.setdefault(r.sequence_number, []).append(r.command_status)
    return out


def verdicts(buf, recipient=None):
    recs = [json.loads(l) for l in buf.getvalue().splitlines()]
    return [r for r in recs if recipient is None or r["recipient"] == recipient]


def reports(pipe):
    p = pipe.reports.path
    return [json.loads(l) for l in p.read_text(encoding="utf-8").splitlines()] if p.exists() else []


def confirmations(h, to=REPORTER):
    return [pdu_text(p) for p in h.sim.submits() if p.destination_addr == to]


def test_two_part_ucs2_report_to_5656_is_one_report_with_its_whole_content(proxy, pipe):
    h, buf = proxy()
    parts = ucs2_parts(REPORT, ref=0x21)
    assert len(parts) == 2 and len(REPORT) > 67
    seqs = [deliver(h, mo(sm)) for sm in parts]
    assert wait(lambda: len(h.sim.mo_responses) == 2)
    assert wait(lambda: confirmations(h))
    time.sleep(0.3)                                  # nothing more comes
    assert answers(h) == {seqs[0]: [0], seqs[1]: [0]}
    [rep] = reports(pipe)
    assert (rep["kind"], rep["reported"], rep["content"]) == ("S", "+84912345678", CONTENT)
    assert confirmations(h) == [DEFAULT_REPLIES["SPAM_REPORTED"]]
    [line] = verdicts(buf, "5656")
    assert line["pdu"] == "DeliverSm MO x2/2" and [x["symbol"] for x in line["hits"]] == ["SPAM_REPORTED"]


def test_split_spam_to_an_esme_is_judged_whole_and_dropped(proxy, pipe):
    # the premise: judged alone (a pipeline of its own, same lists), no part is dropped
    alone = build(data_dir=pipe.store.dir)
    for t in SPLIT_URL:
        v = alone.judge(Message("84911000002", "8088", t, datetime.now(timezone.utc), "", "mo"))
        assert v.action is not Action.DROP, (t, v.symbols)
    h, buf = proxy()
    esme, _ = raw_session(h)
    seqs = [deliver(h, mo(sm, dst="8088", src="84911000002", dc=0)) for sm in gsm_parts(SPLIT_URL, ref=7)]
    assert wait(lambda: len(h.sim.mo_responses) == 3)
    assert answers(h) == {s: [C.ESME_RSUBMITFAIL] for s in seqs}
    [line] = verdicts(buf, "8088")
    assert line["pdu"] == "DeliverSm MO x3/3" and line["action"] == "drop"
    assert "URL_BLACKLISTED" in [x["symbol"] for x in line["hits"]]
    esme.settimeout(0.3)
    with pytest.raises(socket.timeout):
        read_raw(esme)                               # the ESME got none of it


def test_parts_out_of_order_go_to_one_esme_in_order_and_each_answer_is_relayed(proxy):
    h, buf = proxy()
    esme, _ = raw_session(h)
    pdus = [mo(sm, dst="8088", src="84911000003", dc=0) for sm in gsm_parts(HAM, ref=9)]
    seqs = {}
    for i in (2, 0, 1):                                # parts 3, 1, 2
        seqs[i] = deliver(h, pdus[i])
    time.sleep(0.1)
    assert h.sim.mo_responses == []                  # parts 3 and 1 waited, unanswered, for part 2
    got = [read_raw(esme) for _ in range(3)]
    assert [g.command_id for g in got] == [C.DELIVER_SM] * 3
    assert "".join(pdu_text(g) for g in got) == "".join(HAM)          # in part order
    # each part forwarded byte for byte (only the sequence number is ours)
    assert [with_sequence(g.raw, 0) for g in got] == [encode(P.replace(p, sequence_number=0)) for p in pdus]
    mine = [0, C.ESME_RX_T_APPN, 0]                  # the ESME takes parts 1 and 3, not 2 (yet)
    for g, st in zip(got, mine):
        esme.sendall(encode(P.DeliverSmResp(sequence_number=g.sequence_number, command_status=st)))
    assert wait(lambda: len(h.sim.mo_responses) == 3)
    assert answers(h) == {seqs[0]: [0], seqs[1]: [C.ESME_RX_T_APPN], seqs[2]: [0]}
    [line] = verdicts(buf, "8088")
    assert line["pdu"] == "DeliverSm MO x3/3" and line["action"] == "allow"


def test_smpplib_receiver_gets_every_part(proxy):
    h, _ = proxy()
    rx = client(h, bind="receiver")
    seqs = [deliver(h, mo(sm, dst="8088", src="84911000004", dc=0)) for sm in gsm_parts(HAM, ref=10)]
    got = [receive(rx) for _ in range(3)]
    assert b"".join(g.short_message[6:] for g in got) == "".join(HAM).encode()
    assert wait(lambda: len(h.sim.mo_responses) == 3)
    assert answers(h) == {s: [0] for s in seqs}
    rx.disconnect()


def test_missing_last_part_judged_at_the_timeout_and_a_late_part_stays_dropped(proxy):
    h, buf = proxy(concat_timeout=1.2)               # (0.6: two parts and 0.3 s on a loaded host came near it)
    parts = gsm_parts(SPLIT_URL, ref=11)
    t0 = time.monotonic()
    seqs = [deliver(h, mo(sm, dst="8088", src="84911000005", dc=0)) for sm in parts[:2]]
    time.sleep(0.3)
    assert h.sim.mo_responses == []                  # not answered before it is judged
    assert wait(lambda: len(h.sim.mo_responses) == 2, 5)
    assert time.monotonic() - t0 >= 1.15
    assert answers(h) == {s: [C.ESME_RSUBMITFAIL] for s in seqs}
    [line] = verdicts(buf, "8088")
    assert line["pdu"] == "DeliverSm MO x2/3" and line["action"] == "drop"
    # the last part, harmless alone, comes late: judged with the text before it, and never let through
    late = deliver(h, mo(parts[2], dst="8088", src="84911000005", dc=0))
    assert wait(lambda: len(h.sim.mo_responses) == 3)
    time.sleep(1.4)                                  # past another timeout: nothing more
    assert answers(h) == {seqs[0]: [C.ESME_RSUBMITFAIL], seqs[1]: [C.ESME_RSUBMITFAIL],
                          late: [C.ESME_RSUBMITFAIL]}
    lines = verdicts(buf, "8088")
    assert [l["pdu"] for l in lines] == ["DeliverSm MO x2/3", "DeliverSm MO part 3/3 late"]
    assert lines[1]["action"] == "drop"
    assert [l.get("late") for l in lines] == [None, True]      # one message: the report counts it once


def test_a_part_long_after_its_mo_was_judged_is_read_with_the_others(proxy):
    """Found by a review: MO for an ESME remembered a judged message for concat_timeout only (the submit path
    concat_memory): part 2 of a split link sent a little later was judged alone and delivered."""
    h, buf = proxy(concat_timeout=0.2)
    rx = client(h, bind="receiver")
    parts = gsm_parts(SPLIT_URL[:2], ref=12)
    first = deliver(h, mo(parts[0], dst="8088", src="84911000006", dc=0))
    assert receive(rx).short_message == parts[0]              # judged alone at the timeout: nothing in it
    assert wait(lambda: len(h.sim.mo_responses) == 1, 3)
    time.sleep(0.6)                                          # > 2 x concat_timeout after it
    late = deliver(h, mo(parts[1], dst="8088", src="84911000006", dc=0))
    assert wait(lambda: len(h.sim.mo_responses) == 2, 3)
    assert answers(h)[first] == [0] and answers(h)[late] == [C.ESME_RSUBMITFAIL]
    assert [l["action"] for l in verdicts(buf, "8088")] == ["allow", "drop"]
    rx.disconnect()


def test_a_late_report_part_is_acknowledged_and_not_counted_twice(proxy, pipe):
    h, buf = proxy(concat_timeout=0.5)
    text = REPORT + " và còn gửi nhiều lần trong ngày"         # 3 parts
    parts = ucs2_parts(text, ref=0x33)
    assert len(parts) == 3
    seqs = [deliver(h, mo(sm)) for sm in parts[:2]]
    assert wait(lambda: len(h.sim.mo_responses) == 2, 3)       # for the short code: answered as they come
    assert wait(lambda: confirmations(h))
    assert reports(pipe)[0]["content"] == text[len("S 0912345678 "):134].rstrip()
    late = deliver(h, mo(parts[2]))
    assert wait(lambda: len(h.sim.mo_responses) == 3)
    time.sleep(0.3)
    assert answers(h) == {seqs[0]: [0], seqs[1]: [0], late: [0]}
    assert len(reports(pipe)) == 1                              # the report is counted once
    assert confirmations(h) == [DEFAULT_REPLIES["SPAM_REPORTED"]]
    assert [l["pdu"] for l in verdicts(buf, "5656")] == ["DeliverSm MO x2/3"]
    assert h.proxy.stats["mo_concat_late_shortcode"] == 1


def test_sar_tlvs(proxy, pipe):
    h, buf = proxy()
    chunks = [REPORT[:67], REPORT[67:]]
    seqs = []
    for i in (1, 0):                                 # part 2 first: read in part order all the same
        tlvs = (Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x01\x02"), Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
                Tlv(C.TAG_SAR_SEGMENT_SEQNUM, bytes([i + 1])))
        seqs.append(deliver(h, mo(chunks[i].encode("utf-16-be"), esm_class=0, tlvs=tlvs)))
    assert wait(lambda: len(h.sim.mo_responses) == 2)
    assert wait(lambda: confirmations(h))
    time.sleep(0.2)
    assert answers(h) == {s: [0] for s in seqs}
    assert [r["content"] for r in reports(pipe)] == [CONTENT]
    assert confirmations(h) == [DEFAULT_REPLIES["SPAM_REPORTED"]]
    [line] = verdicts(buf, "5656")
    assert line["pdu"] == "DeliverSm MO x2/2"


def test_bound_judges_the_oldest_first_with_what_it_has(proxy):
    h, buf = proxy(max_pending_concat=2)
    firsts = {}
    for ref in (1, 2, 3):                            # part 1 of 2 of three messages
        sm = gsm_parts(HAM[:2], ref=ref)[0]
        firsts[ref] = deliver(h, mo(sm, dst="8088", src="84911000006", dc=0))
    # the third pushed the first out: judged alone (no ESME bound: the SMSC is to retry it)
    assert wait(lambda: len(h.sim.mo_responses) == 1)
    time.sleep(0.2)
    assert answers(h) == {firsts[1]: [C.ESME_RX_T_APPN]}
    assert [l["pdu"] for l in verdicts(buf, "8088")] == ["DeliverSm MO x1/2"]
    assert len(h.proxy.mo_concat) == 2
    seconds = {ref: deliver(h, mo(gsm_parts(HAM[:2], ref=ref)[1], dst="8088", src="84911000006", dc=0))
               for ref in (2, 3)}
    assert wait(lambda: len(h.sim.mo_responses) == 5)
    assert answers(h) == {s: [C.ESME_RX_T_APPN] for s in [*firsts.values(), *seconds.values()]}
    assert [l["pdu"] for l in verdicts(buf, "8088")] == ["DeliverSm MO x1/2", "DeliverSm MO x2/2",
                                                         "DeliverSm MO x2/2"]
    assert len(h.proxy.mo_concat) == 0


def test_a_part_sent_again_replaces_the_waiting_copy(proxy, pipe):
    h, buf = proxy()
    p1, p2 = ucs2_parts(REPORT, ref=0x44)
    first = deliver(h, mo(p1))
    assert wait(lambda: answers(h) == {first: [0]})             # for the short code: answered as it comes
    again = deliver(h, mo(p1))                                  # (an SMSC that lost our answer)
    assert wait(lambda: answers(h) == {first: [0], again: [0]})
    last = deliver(h, mo(p2))
    assert wait(lambda: len(h.sim.mo_responses) == 3)
    time.sleep(0.2)
    assert answers(h) == {first: [0], again: [0], last: [0]}
    assert [r["content"] for r in reports(pipe)] == [CONTENT]


def test_parts_to_an_esme_wait_unanswered_until_the_message_is_judged(proxy):
    h, buf = proxy(concat_timeout=30)
    esme, _ = raw_session(h)
    first = deliver(h, mo(gsm_parts(["hello there, ", "see you soon"], ref=0x45)[0], dst="8088", dc=0))
    time.sleep(0.3)
    assert first not in answers(h)                              # nothing acknowledged that could be dropped
    assert len(h.proxy.mo_concat) == 1


def test_drain_judges_waiting_parts(proxy, pipe):
    h, buf = proxy(concat_timeout=30)
    seq = deliver(h, mo(ucs2_parts(REPORT, ref=0x66)[0]))
    assert wait(lambda: answers(h) == {seq: [0]})               # for the short code: answered as it came
    assert len(h.proxy.mo_concat) == 1
    h.call(h.proxy.drain(timeout=1.0, unbind_wait=0.2))
    assert wait(lambda: len(reports(pipe)) == 1)                # judged with what arrived, answered once
    assert answers(h) == {seq: [0]}
    [line] = verdicts(buf, "5656")
    assert line["pdu"] == "DeliverSm MO x1/2"


def test_an_smsc_with_a_window_of_one_sends_the_next_report_part(proxy, pipe):
    """An SMSC that sends the next deliver_sm only once the last is answered: a report in two parts is
    read whole at once, not after concat_timeout in pieces (parts for the short code are answered as they
    come, except the one that completes the message)."""
    h, buf = proxy(concat_timeout=30)
    p1, p2 = ucs2_parts(REPORT, ref=0x67)
    s1 = deliver(h, mo(p1))
    assert wait(lambda: answers(h) == {s1: [0]}, 2)
    s2 = deliver(h, mo(p2))
    assert wait(lambda: answers(h) == {s1: [0], s2: [0]}, 2)
    assert [r["content"] for r in reports(pipe)] == [CONTENT]
    assert [l["pdu"] for l in verdicts(buf, "5656")] == ["DeliverSm MO x2/2"]


def test_single_part_mo_unchanged(proxy):
    h, buf = proxy()
    esme, _ = raw_session(h)
    seq = deliver(h, P.DeliverSm(source_addr="84911000007", destination_addr="8088", short_message=b"hello"))
    got = read_raw(esme)
    assert got.short_message == b"hello"
    esme.sendall(encode(P.DeliverSmResp(sequence_number=got.sequence_number)))
    assert wait(lambda: answers(h) == {seq: [0]})
    assert [l["pdu"] for l in verdicts(buf, "8088")] == ["DeliverSm MO"]
