"""Issue 12 (SMPP): nothing bypasses the verdict. Attacker ESMEs on raw sockets: a binary submit, a WAP
push, a submit_multi to a distribution list, an ambiguous text and concatenated parts (a SAR reference given
twice, a resent part, a part after the reassembly timeout or long after its message, one subscriber spelled two
ways) are judged or refused, never forwarded unjudged; and the verdict log never decides (a failing log does not
stop messages, undecodable bytes are escaped, its line builder matches json.dumps). The shared fixtures and
helpers of the test_smpp_inline_safety_* files are here; binds (no sender stalls or breaks the proxy) are in
test_smpp_inline_safety_binds.py, the SMSC side in test_smpp_smsc_faults.py."""
import io
import json
import time

import pytest

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import Tlv, encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog, _num
from tests.test_smpp_proxy import pipe, raw_session, raw_submit, read_raw  # noqa: F401,F811  (pipe: fixture)


BAD = "84987000666"           # blacklisted in the `pipe` fixture


GOOD = "84901234567"


def lines(buf):
    return [json.loads(l) for l in buf.getvalue().splitlines()]


@pytest.fixture
def logged(pipe):
    buf = io.StringIO()
    h = ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(concat_timeout=0.5),
                     verdict_log=VerdictLog(buf)).start()
    yield h, buf
    h.stop()


def answer(sock):
    """The next PDU that is not the proxy's enquire_link (answered here, as an ESME would)."""
    while True:
        r = read_raw(sock)
        if r.command_id != C.ENQUIRE_LINK:
            return r
        sock.sendall(encode(P.EnquireLinkResp(sequence_number=r.sequence_number)))


def send_submit(sock, seq, **kw):
    f = dict(source_addr=GOOD, destination_addr=f"8491234567{seq % 10}", short_message=b"see you at %d" % seq)
    sock.sendall(encode(P.SubmitSm(sequence_number=seq, **dict(f, **kw))))
    return answer(sock)


def submit(sock, seq, **kw):
    f = dict(source_addr=GOOD, destination_addr="84912345678", short_message=b"hello")
    f.update(kw)
    sock.sendall(encode(P.SubmitSm(sequence_number=seq, **f)))
    return read_raw(sock)


# ---------------------------------------------------------------- bypass

@pytest.mark.parametrize("dc", [0x02, 0x04, 0xF4])
def test_binary_submit_from_blacklisted_number_judged_logged_not_forwarded(logged, dc):
    h, buf = logged
    s, _ = raw_session(h)
    r = submit(s, 5, source_addr=BAD, data_coding=dc, short_message=bytes(range(0, 140)))
    assert r.command_status != 0
    assert h.sim.submits() == []
    rec = [l for l in lines(buf) if l["sender"] == BAD]
    assert len(rec) == 1 and rec[0]["action"] == "drop" and rec[0]["binary"] is True


def test_binary_wap_push_url_is_read(logged):
    h, buf = logged
    s, _ = raw_session(h)
    # WBXML SI: href token 0x0C (http://) + inline string, as a WAP push carries it
    si = bytes.fromhex("0605040b8423f0") + b"\x02\x05\x6a\x00\x45\xc6\x0c\x03phish.example/login\x00\x01\x01"
    r = submit(s, 6, esm_class=0x40, data_coding=0x04, short_message=si)
    assert r.command_status != 0 and h.sim.submits() == []
    r = submit(s, 7, data_coding=0x04, short_message=b"\x00\x01\x02ringtone\xff\xfe")
    assert r.command_status == 0 and len(h.sim.submits()) == 1          # binary ham still flows
    assert [l["action"] for l in lines(buf)] == ["drop", "allow"]


def _multi(seq, dests, src=GOOD):
    return P.SubmitMulti(sequence_number=seq, source_addr=src, dest_addresses=dests, short_message=b"hello all")


def test_submit_multi_to_distribution_list_refused_by_default(logged):
    h, buf = logged
    s, _ = raw_session(h)
    s.sendall(encode(_multi(8, ((2, "customers"),))))
    r = read_raw(s)
    assert r.command_id == C.SUBMIT_MULTI_RESP and r.command_status == C.ESME_RCNTSUBDL
    s.sendall(encode(_multi(9, ((1, 1, 1, "84912345678"), (2, "customers")))))
    assert read_raw(s).command_status == C.ESME_RCNTSUBDL
    assert h.sim.submits() == []
    assert [l["action"] for l in lines(buf)] == ["refuse", "refuse"]


def test_submit_multi_to_distribution_list_judged_when_configured(pipe):
    buf = io.StringIO()
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=SmppSettings(distribution_lists="judge"),
                      verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        s.sendall(encode(_multi(8, ((2, "customers"),), src=BAD)))
        assert read_raw(s).command_status != 0
        s.sendall(encode(_multi(9, ((2, "customers"),))))
        assert read_raw(s).command_status == 0
        assert len(h.sim.submits()) == 1
        assert [(l["sender"], l["recipient"], l["action"]) for l in lines(buf)] == [(BAD, "", "drop"), (GOOD, "", "allow")]


def test_ambiguous_text_refused(logged):
    h, buf = logged
    s, _ = raw_session(h)
    payload = Tlv(C.TAG_MESSAGE_PAYLOAD, b"win a prize at phish.example")
    r = submit(s, 10, short_message=b"hello", tlvs=(payload,))
    assert r.command_status == C.ESME_RINVMSGLEN
    r = submit(s, 11, short_message=b"", tlvs=(Tlv(C.TAG_MESSAGE_PAYLOAD, b"hello"), payload))
    assert r.command_status == C.ESME_ROPTPARNOTALLWD
    assert h.sim.submits() == []
    assert [l["action"] for l in lines(buf)] == ["refuse", "refuse"]


def test_parts_with_a_sar_reference_given_twice_are_refused_not_judged_apart(logged):
    # found by the SMPP conformance probe: the last sar_msg_ref_num was read, so parts whose first one
    # names one message (9) and whose last ones differ (100, 200) were judged as two one-part messages,
    # each half of a blacklisted link passing; an SMSC reading the first joins them on the handset
    h, buf = logged
    s, _ = raw_session(h)
    halves = (b"hi Lan, the photos from saturday are up at http://phish.", b"example/album see you tomorrow")
    for seq, (last_ref, part, body) in enumerate(((100, 1, halves[0]), (200, 2, halves[1])), 20):
        sar = (Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x09"), Tlv(C.TAG_SAR_MSG_REF_NUM, last_ref.to_bytes(2, "big")),
               Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"), Tlv(C.TAG_SAR_SEGMENT_SEQNUM, bytes((part,))))
        s.sendall(encode(P.SubmitSm(sequence_number=seq, source_addr=GOOD, destination_addr="84912345678",
                                    short_message=body, tlvs=sar)))
    assert _answers(s, 2) == {20: C.ESME_ROPTPARNOTALLWD, 21: C.ESME_ROPTPARNOTALLWD}
    time.sleep(0.8)                         # past concat_timeout: nothing waits to go out later
    assert h.sim.submits() == []
    assert [l["action"] for l in lines(buf)] == ["refuse", "refuse"]


def _part(seq, n, total, body, src=GOOD, ref=0x42, dst="84912345678"):
    return encode(P.SubmitSm(sequence_number=seq, source_addr=src, destination_addr=dst, esm_class=0x40,
                             short_message=bytes((5, 0, 3, ref, total, n)) + body))


def _answers(sock, n):
    return {r.sequence_number: r.command_status for r in (read_raw(sock) for _ in range(n))}


def test_resent_part_answers_the_first_copy(logged):
    h, buf = logged
    s, _ = raw_session(h)
    s.sendall(_part(20, 1, 2, b"see you ") + _part(21, 1, 2, b"see you "))
    assert read_raw(s).sequence_number == 20            # the superseded copy is answered at once
    s.sendall(_part(22, 2, 2, b"at 3pm"))
    assert _answers(s, 2) == {21: 0, 22: 0}
    assert len(h.sim.submits()) == 2 and len(lines(buf)) == 1


def test_part_after_reassembly_timeout_is_judged(logged):
    h, buf = logged
    s, _ = raw_session(h)
    s.sendall(_part(30, 1, 2, b"hello ", src=BAD))
    assert read_raw(s).command_status != 0               # judged alone after the 0.5 s timeout
    s.sendall(_part(31, 2, 2, b"there", src=BAD))
    r = read_raw(s)
    assert r.sequence_number == 31 and r.command_status != 0
    s.sendall(_part(32, 1, 2, b"hello ", ref=7))
    assert read_raw(s).command_status == 0
    s.sendall(_part(33, 2, 2, b"there", ref=7))
    assert read_raw(s).command_status == 0
    assert len(h.sim.submits()) == 2
    recs = lines(buf)
    assert len(recs) == 4 and [r["pdu"].endswith("late") for r in recs] == [False, True, False, True]


def test_parts_to_one_subscriber_spelled_two_ways_are_one_message(logged):
    """Found by a probe: parts were grouped by the address as spelled, so part 1 to 0912345678 and part 2 to
    84912345678 (one handset, which puts them together by originator and reference) were judged each on its
    fragment, and a blacklisted link split across them went out."""
    h, buf = logged
    s, _ = raw_session(h)
    s.sendall(_part(40, 1, 2, b"Tai khoan bi khoa, xac minh tai http://phish.", dst="0912345678", src="0901234567"))
    s.sendall(_part(41, 2, 2, b"example/login hom nay", dst="+84912345678", src="84901234567"))
    assert _answers(s, 2) == {40: 0x45, 41: 0x45}
    assert h.sim.submits() == []
    assert [r["action"] for r in lines(buf)] == ["drop"] and "URL_BLACKLISTED" in json.dumps(lines(buf)[0])


# ---------------------------------------------------------------- the verdict log never decides

class _BrokenFile:
    def write(self, s):
        raise OSError(28, "No space left on device")

    def flush(self):
        raise OSError(28, "No space left on device")


def test_verdict_log_failure_does_not_stop_messages(pipe):
    vlog = VerdictLog(_BrokenFile())
    with ProxyHarness(pipe, accounts=("esme1:secret",), verdict_log=vlog) as h:
        s, _ = raw_session(h)
        assert raw_submit(s, 1).command_status == 0
        assert submit(s, 2, source_addr=BAD).command_status != 0
        assert vlog.errors >= 2


def test_verdict_log_escapes_undecodable_bytes(tmp_path):
    from datetime import datetime, timezone
    from engine.verdict import Action, Hit, Message, Verdict
    p = tmp_path / "v.log"
    vlog = VerdictLog(str(p))
    bad = b"caller-\xff\xfe".decode("utf-8", "surrogateescape")
    vlog.write({"kind": "call", "call_id": bad})
    msg = Message(sender=bad, recipient="8491", text="x", time=datetime(2026, 3, 2, tzinfo=timezone.utc), account="a")
    v = Verdict(Action.TAG, 3.25, (Hit("X_Y", 3.25, "d\"é", "src:1"),))
    vlog.write_sms(msg, "SubmitSm", v, 12.345)
    vlog.close()
    recs = [json.loads(l) for l in p.read_text(encoding="utf-8").splitlines()]
    assert recs[0]["call_id"] == bad and recs[1]["sender"] == bad and vlog.errors == 0


@pytest.mark.parametrize("account", ["esme1", 'es"më\\1'])
def test_sms_line_builder_matches_json_dumps(account):
    """The line against json.dumps, the first time a PDU and account name are seen and again (their JSON kept)."""
    from datetime import datetime, timezone
    from engine.verdict import Action, Hit, Message, Verdict
    buf = io.StringIO()
    msg = Message(sender="SHOP\"ABC", recipient="84912", text="x", time=datetime(2026, 3, 2, tzinfo=timezone.utc),
                  account=account)
    v = Verdict(Action.DROP, 7.123456789, (Hit("A", 3, "tiếng Việt \\ \n", "f.toml:3"), Hit("B", 4.123456789)))
    VerdictLog(buf).write_sms(msg, "SubmitSm", v, 42.26)
    VerdictLog(buf).write_sms(msg, "SubmitSm", v, 42.26)
    old = {"ts": msg.time.isoformat(), "kind": "sms", "pdu": "SubmitSm", "account": account, "sender": msg.sender,
           "recipient": "84912", "action": "drop", "score": round(v.score, 4), "hits": [h.to_json() for h in v.hits],
           "judge_us": round(42.26, 1)}
    assert buf.getvalue() == 2 * (json.dumps(old, ensure_ascii=False) + "\n")


# ties at the 4th place, signed zero, values that round to a whole number or to 0.0001, the edges of the
# "%.4f" form's range (1e11), past it, ints, nan
@pytest.mark.parametrize("score", [0.0, -0.0, 0.00005, -0.00005, 0.00015, 1.23445, 2.5, 7.123456789, 12.99999,
                                   -3.00004, 99999999999.99995, 1e11, -1e11, 1e16, 1e-300, 5e-5, float("nan"),
                                   float("inf"), 7, 0, -4])
def test_sms_line_score_as_round_and_repr_write_it(score):
    """score is written as float.__repr__(round(score, 4)) (json.dumps's float form): the line builder's
    "%.4f" without trailing zeros gives exactly that in its range and leaves the rest to it."""
    from datetime import datetime, timezone
    from engine.verdict import Action, Message, Verdict
    buf = io.StringIO()
    msg = Message(sender="84911", recipient="84912", text="x", time=datetime(2026, 3, 2, tzinfo=timezone.utc),
                  account="esme1")
    VerdictLog(buf).write_sms(msg, "SubmitSm", Verdict(Action.ALLOW, score), 1.0)
    line = buf.getvalue()
    assert line[line.index('"score": ') + 9:line.index(', "hits"')] == _num(round(score, 4))


def test_sms_line_score_form_matches_round_and_repr_on_random_floats():
    """The "%.4f" form against float.__repr__(round(x, 4)) on 200k seeded floats of the range, uniform and near
    4th-place ties."""
    import random
    from engine.verdictlog import _score_json
    r = random.Random(7)
    for _ in range(100_000):
        for x in (r.uniform(-1e11, 1e11) * r.random() ** 8, r.randint(-10 ** 7, 10 ** 7) / 20000 + r.choice(
                (0.0, 1e-12, -1e-12))):
            assert _score_json(x) == float.__repr__(round(x, 4)), x


# ties (half to even on the exact binary value), signed zero, the edges of "%.1f"'s range, ints, nan
@pytest.mark.parametrize("us", [0.0, -0.0, 0.05, 0.25, 1.25, 2.35, 12.345, 99999.95, 1e15 - 0.5, 1e15, 1e16, 3.5e17,
                                -4.25, float("nan"), float("inf"), 7, 0])
def test_sms_line_judge_us_as_round_and_repr_write_it(us):
    """judge_us is written as float.__repr__(round(us, 1)) (json.dumps's float form, 'nan' kept as it was):
    the line builder's cheaper "%.1f" gives exactly that in its range and leaves the rest to it."""
    from datetime import datetime, timezone
    from engine.verdict import Action, Message, Verdict
    buf = io.StringIO()
    msg = Message(sender="84911", recipient="84912", text="x", time=datetime(2026, 3, 2, tzinfo=timezone.utc),
                  account="esme1")
    VerdictLog(buf).write_sms(msg, "SubmitSm", Verdict(Action.ALLOW, 0.0), us)
    line = buf.getvalue()
    assert line[line.index('"judge_us": ') + 12:-2] == _num(round(us, 1))


def test_a_part_long_after_its_message_is_still_judged_on_the_whole_text(pipe):
    """Found by a probe: a judged message's parts were forgotten concat_timeout after its verdict, so part 2 of
    a link split across two parts, sent a minute later, was judged alone and forwarded (handsets keep a partial
    message for far longer). Remembered concat_memory (a day) now; a part number it had, with another text, is a
    new message reusing the reference number (judged on its own)."""
    from engine.smpp_proxy.concat import Reassembly
    buf = io.StringIO()
    st = SmppSettings(concat_timeout=0.2)
    with ProxyHarness(pipe, accounts=("esme1:secret",), settings=st, verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        s.sendall(_part(50, 1, 2, b"Tai khoan bi khoa, xac minh tai http://phish.", ref=9))
        assert read_raw(s).command_status == 0                # judged alone at the timeout: nothing in it
        time.sleep(0.5)                                        # > 2 x concat_timeout after it
        s.sendall(_part(51, 2, 2, b"example/login hom nay", ref=9))
        assert read_raw(s).command_status == 0x45             # judged on the whole text: the link
    r = Reassembly(due=lambda key: None)
    r.judged["k"] = ("allow", 100.0, {1: "see you at"}, {1: 10})
    assert r.late("k", 2, " 3pm", False, 50.0)[1] == "see you at 3pm"       # its late part: the whole text
    r.judged["k"] = ("drop", 100.0, {1: "old message"}, {1: 11})
    assert r.late("k", 1, "a new one", False, 50.0) is None and "k" not in r.judged      # ref reused
    r.judged["k"] = ("drop", 100.0, {1: "old message"}, {1: 11})
    assert r.late("k", 1, "old message", False, 50.0)[0] == "drop"                      # the same part again
