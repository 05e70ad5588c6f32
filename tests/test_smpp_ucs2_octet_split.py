"""A concatenated message whose UCS-2 is split inside a character -- at an odd octet, or a surrogate pair between
two parts (no conforming encoder does: 3GPP TS 23.040 segments at characters) -- is judged on both readings: each
part decoded alone, as a handset shows it, and the parts' octets joined before decoding, as an SMSC or handset
that joins them shows it. Before, only the first was read: the link split so read as noise around the split
(U+FFFD, CJK) and went out, and a 5656 'DK DNC' split so was a syntax error (codec.text.Ucs2Octets,
concat.joined)."""
import io
import json
import time

import pytest

from engine.smpp_proxy.accounts import SmppSettings
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.codec.text import TwoReadings, read_text
from engine.smpp_proxy.concat import joined
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_smpp_mo_concat import answers, deliver, mo, proxy, verdicts  # noqa: F401  (proxy: fixture)
from tests.test_smpp_proxy import pipe, raw_session, wait  # noqa: F401  (pipe: fixture)
from tests.test_smpp_text_evasion import _statuses
from tests.redis_helpers import redis_server  # noqa: F401  (fixture)

SPAM = "Hi Lan, the photos from our trip to Da Lat are up at http://phish.example/dalat, tell me which you like"
VI = ("Khuyến mãi lớn tháng này cho khách hàng thân thiết: giảm giá mười phần trăm cho mọi đơn hàng "
      "tại cửa hàng chúng tôi từ thứ hai đến chủ nhật")


def _odd_split(text):
    """Two UCS-2 payloads of `text`, cut at an odd octet inside 'phish.example'."""
    b = text.encode("utf-16-be", "surrogatepass")
    at = 2 * text.index("phish.example") + 5
    return [b[:at], b[at:]]


def _surrogate_split(text):
    """Two UCS-2 payloads of `text`, cut between the halves of the surrogate pair of its third astral character."""
    b = text.encode("utf-16-be", "surrogatepass")
    units = [b[i:i + 2] for i in range(0, len(b), 2)]
    at = 2 * [i for i, u in enumerate(units) if 0xD8 <= u[0] <= 0xDB][2] + 2
    return [b[:at], b[at:]]


OCTETS_JOINED = "ucs2-octets-joined"           # the verdict line's reading (concat.OCTETS_JOINED)
# the host in mathematical bold letters (each a surrogate pair; the judge folds them to 'phish'), split inside the 'i'
MATH_SPAM = SPAM.replace("phish", "".join(chr(0x1D41A + ord(c) - 97) for c in "phish"))


def _parts(payloads, ref):
    return [bytes([5, 0, 3, ref, len(payloads), i]) + p for i, p in enumerate(payloads, 1)]


def test_each_part_alone_reads_noise_and_joined_by_octets_reads_the_link():
    from engine.smpp_proxy.codec.text import Ucs2Octets
    a, b = (read_text(0x08, p)[0] for p in _odd_split(SPAM))
    assert type(a) is Ucs2Octets and type(b) is Ucs2Octets
    assert "phish.example" not in a + b                             # (what the judge read before)
    text = joined([a, b], False)
    assert text.shown == a + b and text.meant == SPAM and "phish.example" in text


def test_a_surrogate_pair_split_between_parts_is_read_whole_too():
    a, b = (read_text(0x08, p)[0] for p in _surrogate_split(MATH_SPAM))
    assert a.endswith("\ufffd") and b.startswith("\ufffd")
    assert joined([a, b], False).meant == MATH_SPAM


def test_an_ordinary_ucs2_message_costs_nothing_more():
    b = VI.encode("utf-16-be")
    a, c = read_text(0x08, b[:134])[0], read_text(0x08, b[134:])[0]
    assert type(a) is str and type(c) is str
    assert type(joined([a, c], False)) is str and joined([a, c], False) == VI


def test_the_octet_join_stops_at_a_missing_part_and_at_a_part_that_is_not_ucs2():
    class Pdu:
        def __init__(self, dc):
            self.data_coding = dc
    a, b = (read_text(0x08, p)[0] for p in _odd_split(SPAM))
    # parts 1 and 3: part 2 is missing between them, nothing is joined across it
    assert joined([a, b], False, {1: (None, Pdu(8)), 3: (None, Pdu(8))}) == a + b
    # a GSM part in between: its own text there, the runs either side of it decoded apart
    assert joined([a, "x", b], False, {1: (None, Pdu(8)), 2: (None, Pdu(0)), 3: (None, Pdu(8))}) == a + "x" + b


def test_a_middle_part_shifted_by_an_octet_is_joined_by_its_pdu_s_coding():
    class Pdu:
        data_coding = 8
    b = SPAM.encode("utf-16-be")
    at = 2 * SPAM.index("phish.example") - 3
    payloads = [b[:at], b[at:at + 20], b[at + 20:]]               # odd, even (every unit shifted: CJK), odd
    a, m, c = (read_text(0x08, p)[0] for p in payloads)
    assert type(m) is str and "phish" not in a + m + c
    assert joined([a, m, c], False, {i: (None, Pdu()) for i in (1, 2, 3)}).meant == SPAM
    # a stored text whose coding is not known (no PDU) is not joined: its own reading there
    assert "phish.example" not in joined([a, m, c], False, {1: a, 2: m, 3: c})


def test_a_mislabelled_latin1_part_keeps_both_readings_and_its_octets():
    text, reading = read_text(0x08, b"DK DN")           # odd, no NUL: Latin-1 mislabelled, and broken UCS-2
    assert reading == "latin1-in-ucs2" and type(text) is TwoReadings and text.octets == b"DK DN"
    whole = joined([text, read_text(0x08, b"C")[0]], False)
    assert whole.meant == "DK DNC"                      # the Latin-1 reading, a 5656 command, parsed still


@pytest.mark.parametrize("split", [_odd_split, _surrogate_split], ids=["odd-octet", "surrogate-pair"])
def test_a_link_split_inside_a_character_is_dropped(pipe, split):
    buf = io.StringIO()
    text = SPAM if split is _odd_split else MATH_SPAM
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0), verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        for i, body in enumerate(_parts(split(text), 0x41), 1):
            s.sendall(encode(P.SubmitSm(sequence_number=i, source_addr="84901234567", destination_addr="84912345678",
                                        data_coding=8, esm_class=0x40, short_message=body)))
        assert all(st != 0 for st in _statuses(s, [1, 2]))
        time.sleep(0.1)
        assert h.sim.submits() == []
    [line] = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert line["action"] == "drop" and "URL_BLACKLISTED" in [x["symbol"] for x in line["hits"]]
    assert line["reading"] == OCTETS_JOINED


def test_an_ordinary_vietnamese_two_part_message_is_unchanged(pipe):
    buf = io.StringIO()
    b = VI.encode("utf-16-be")
    bodies = _parts([b[:134], b[134:]], 0x42)
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0), verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        for i, body in enumerate(bodies, 1):
            s.sendall(encode(P.SubmitSm(sequence_number=i, source_addr="84901234567", destination_addr="84912345678",
                                        data_coding=8, esm_class=0x40, short_message=body)))
        assert _statuses(s, [1, 2]) == [0, 0]
        assert wait(lambda: len(h.sim.submits()) == 2)
        assert [p.short_message for p in h.sim.submits()] == bodies
    [line] = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert line["action"] == "allow" and "reading" not in line


def test_a_late_part_is_read_joined_by_octets_with_the_remembered_one(pipe):
    buf = io.StringIO()
    bodies = _parts(_odd_split(SPAM), 0x43)
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.3), verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=1, source_addr="84901234567", destination_addr="84912345678",
                                    data_coding=8, esm_class=0x40, short_message=bodies[0])))
        _statuses(s, [1])                               # judged alone at the timeout (noise): either way
        s.sendall(encode(P.SubmitSm(sequence_number=2, source_addr="84901234567", destination_addr="84912345678",
                                    data_coding=8, esm_class=0x40, short_message=bodies[1])))
        assert _statuses(s, [2]) != [0]
    late = [json.loads(x) for x in buf.getvalue().splitlines()][-1]
    assert late.get("late") and late["action"] == "drop" and late["reading"] == OCTETS_JOINED


def test_a_dnc_registration_split_at_an_odd_octet_is_recorded(proxy, pipe):
    h, buf = proxy()
    b = "DK DNC".encode("utf-16-be")
    seqs = [deliver(h, mo(sm, src="84911000071")) for sm in _parts([b[:5], b[5:]], 0x44)]
    assert wait(lambda: len(h.sim.mo_responses) == 2)
    assert answers(h) == {s: [0] for s in seqs}
    [line] = verdicts(buf, "5656")
    assert [x["symbol"] for x in line["hits"]] == ["DNC_REGISTERED"] and line["reading"] == OCTETS_JOINED
    assert pipe.lists.in_dnc(84911000071, "S") and pipe.lists.in_dnc(84911000071, "V")


def test_a_part_with_its_octets_round_trips_through_the_redis_hash():
    from engine.smpp_proxy.codec.text import Ucs2Octets
    from engine.state.mo_parts_scripts import stored_text as _enc, text_of as _dec
    for t in (Ucs2Octets("DK D\ufffd", b"\x00D\x00K\x00 \x00D\x00"), Ucs2Octets("", b"\x02"),
              Ucs2Octets("\x02x", b"\x00\x02\x00x\x00")):
        back = _dec(_enc(t))
        assert type(back) is Ucs2Octets and back == t and back.octets == t.octets
    t = read_text(0x08, b"DK DN")[0]
    back = _dec(_enc(t))
    assert type(back) is TwoReadings and (back.shown, back.meant, back.octets) == (t.shown, t.meant, b"DK DN")
    assert _dec(_enc("\x02plain")) == "\x02plain" and type(_dec(_enc("\x02plain"))) is str
    # a plain text starting with STX as a process before this format stored it (unescaped; a rolling upgrade
    # sharing Redis): read as written, where it raised ValueError
    for old in ("\x02plain", "\x02", "\x0212", "\x029:ab"):
        assert _dec(old.encode()) == old


def test_a_dnc_registration_split_at_an_odd_octet_across_two_processes_is_recorded(tmp_path, redis_server):  # noqa: F811
    from tests.test_redis_mo_concat import Pair
    redis_server.flush()
    b = "DK DNC".encode("utf-16-be")
    with Pair(tmp_path, redis_server.url) as pair:
        pair.send_parts([(0, 1, 2, b[:5]), (1, 2, 2, b[5:])], ref=0x45, src="84912000779")
        assert wait(lambda: len(pair.sim.mo_responses) == 2, 5)
        assert [r.command_status for r in pair.sim.mo_responses] == [0, 0]
        assert wait(lambda: len(pair.verdicts()) == 1, 5)
        [v] = pair.verdicts()
        assert [h["symbol"] for h in v["hits"]] == ["DNC_REGISTERED"] and v["reading"] == OCTETS_JOINED, v
        assert any(p.lists.in_dnc(84912000779, "S") for p in pair.pipes)


def test_submit_multi_parts_and_sar_data_sm_split_at_an_odd_octet_are_dropped(pipe):
    from engine.smpp_proxy.codec import Tlv
    from engine.smpp_proxy.codec import constants as C
    from tests.test_smpp_multi_concat import TWO
    a, b = _odd_split(SPAM)
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=2.0)) as h:
        s, _ = raw_session(h)
        for i, body in enumerate(_parts([a, b], 0x46), 1):
            s.sendall(encode(P.SubmitMulti(sequence_number=i, source_addr="84901234567", dest_addresses=TWO,
                                           esm_class=0x40, data_coding=8, short_message=body)))
        for i, body in enumerate((a, b), 1):
            sar = [Tlv(C.TAG_MESSAGE_PAYLOAD, body), Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x47"),
                   Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"), Tlv(C.TAG_SAR_SEGMENT_SEQNUM, bytes([i]))]
            s.sendall(encode(P.DataSm(sequence_number=10 + i, source_addr="84901234567",
                                      destination_addr="84912345678", data_coding=8, tlvs=tuple(sar))))
        assert all(st != 0 for st in _statuses(s, [1, 2, 11, 12]))
        time.sleep(0.1)
        assert h.sim.submits() == []


def test_a_dnc_registration_split_at_an_odd_octet_survives_a_stop_between_its_parts(tmp_path):
    """Part 1 waits in the 5656 parts journal across the stop; the restart reads its text from its PDU again, with
    its octets (mo_restore.py), so part 2 completes 'DK DNC', not a syntax error."""
    import signal

    from tests.test_smpp_receipts import ServeBeside
    run = ServeBeside(tmp_path)
    b = "DK DNC".encode("utf-16-be")
    p1, p2 = _parts([b[:5], b[5:]], 0x48)
    try:
        proc, _ = run.start(1)
        s1 = deliver(run.sim, mo(p1, src="84911000072"))
        assert wait(lambda: answers(run.sim) == {s1: [0]}, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc, _ = run.start(2)
        deliver(run.sim, mo(p2, src="84911000072"))
        assert wait(lambda: sorted(r.command_status for r in list(run.sim.sim.mo_responses)) == [0, 0], 10)
        log = tmp_path / "v.log"
        assert wait(lambda: log.exists() and "DNC_REGISTERED" in log.read_text(), 10)
        [line] = [json.loads(x) for x in log.read_text().splitlines() if '"5656"' in x]
        assert [x["symbol"] for x in line["hits"]] == ["DNC_REGISTERED"] and line["reading"] == OCTETS_JOINED
    finally:
        run.close()


def _three_shifted(text, where):
    """Three UCS-2 payloads of `text`: odd, even (its every unit shifted by one octet: intact CJK to a reader of it
    alone), odd; the cut `where` ('12': between parts 1 and 2, '23': between 2 and 3) falls inside 'phish'."""
    b = text.encode("utf-16-be")
    at = 2 * text.index("phish") + 3
    cuts = (at, at + 40) if where == "12" else (at - 40, at)
    return [b[:cuts[0]], b[cuts[0]:cuts[1]], b[cuts[1]:]]


@pytest.mark.parametrize("where, order", [("12", (2, 1, 3)), ("23", (2, 3, 1)), ("23", (1, 2, 3))],
                         ids=["middle-first", "middle-first-then-3", "first-alone-then-late-2-and-3"])
def test_late_parts_are_read_joined_by_octets_with_a_remembered_shifted_middle_part(pipe, where, order):
    """A middle part shifted by one octet reads as intact UCS-2 (CJK, no U+FFFD): sent first and judged alone at the
    timeout it was remembered as a plain text (its octets dropped: no part of it was broken), and a late part that
    came after it as a plain text too; the late parts either side were then never read joined by octets with it,
    and all three went out, the link never read (found by review50)."""
    buf = io.StringIO()
    payloads = _three_shifted(SPAM, where)
    assert type(read_text(0x08, payloads[1])[0]) is str             # (the middle part alone: intact)
    bodies = _parts(payloads, 0x49)
    with ProxyHarness(pipe, settings=SmppSettings(concat_timeout=0.3), verdict_log=VerdictLog(buf)) as h:
        s, _ = raw_session(h)
        statuses = []
        for k, i in enumerate(order):
            s.sendall(encode(P.SubmitSm(sequence_number=i, source_addr="84901234567", destination_addr="84912345678",
                                        data_coding=8, esm_class=0x40, short_message=bodies[i - 1])))
            statuses += _statuses(s, [i])
            if k == 0:
                time.sleep(0.5)                         # the first part sent judged alone at the timeout
        assert statuses[0] == 0 and any(st != 0 for st in statuses[1:])
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert any(x["action"] == "drop" and x.get("late") and x["reading"] == OCTETS_JOINED for x in lines), lines


def test_a_client_padding_each_odd_part_with_a_nul_gets_no_second_shifted_reading():
    """A client that ends each UCS-2 part with a NUL octet (a C string's end: read_text reads it as padding) got a
    second reading of its whole message, every part after the first shifted by an octet (CJK noise): twice the text
    judged (a long submit_multi refused at max_message_chars). The NUL is padding unless the next part looks shifted;
    a link split after the NUL of one of its ASCII characters (the next part shifted) is still read whole."""
    b = VI.encode("utf-16-be")
    a, c = (read_text(0x08, p + b"\x00")[0] for p in (b[:134], b[134:]))
    assert a + c == VI                                              # each part alone: the padding read as nothing
    assert type(joined([a, c], False)) is str and joined([a, c], False) == VI
    s = SPAM.encode("utf-16-be")
    at = 2 * SPAM.index("phish.example") + 3                         # after the NUL of 'h': the next part shifted
    a, c = (read_text(0x08, p)[0] for p in (s[:at], s[at:]))
    assert s[at - 1] == 0 and "phish.example" not in a + c
    assert joined([a, c], False).meant == SPAM
