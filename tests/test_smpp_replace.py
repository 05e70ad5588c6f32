"""replace_sm is judged as the message it turns the stored one into: to the recipient, from the source, in the
data_coding and at the delivery time of the submit we forwarded under that message_id (kept in msgids.py with
the id's account, bounded and saved across a clean stop). What cannot be judged so is refused, never relayed
blind: ESME_RREPLACEFAIL (an id we did not forward or forgot, a submit_multi's, a part's, another source)."""
import io
import json
from datetime import datetime

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.smpp_proxy.msgids import MULTI, PART, SINGLE, MessageIds, Sent, source_fp
from engine.verdictlog import VerdictLog
from tests.test_smpp_proxy import raw_session, read_raw

SENDERS = (b"sender,owner,category,valid_from,valid_to,accounts\n"
           b"BANKZ,Bank Z,CSKH,,,\nBANKZ,Bank Z,QC,2020-01-01,2099-12-31,\n")
DNC = b"number,channel\n0912000001,S\n"
NOON = datetime.fromisoformat("2026-03-02T10:00:00+07:00")
LATE = datetime.fromisoformat("2026-03-02T21:00:00+07:00")
CARE = b"So du tai khoan cua quy khach thay doi"
AD = b"[QC] Mo the tin dung. TC gui 5656"


@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    st = ListStore(d)
    st.import_csv("senders", SENDERS, "s.csv")
    st.import_csv("dnc", DNC, "dnc.csv")
    return build(data_dir=d, with_model=False)


def _submit(seq, dst, text=CARE, dc=1, sched="", src="BANKZ"):
    return encode(P.SubmitSm(sequence_number=seq, source_addr_ton=5, source_addr=src, dest_addr_ton=1,
                             destination_addr=dst, data_coding=dc, schedule_delivery_time=sched, short_message=text))


def _replace(seq, mid, text=AD, sched="", src="BANKZ"):
    return encode(P.ReplaceSm(sequence_number=seq, message_id=mid, source_addr_ton=5, source_addr=src,
                              schedule_delivery_time=sched, short_message=text))


class _Session:
    def __init__(self, pipe, now):
        self.out = io.StringIO()
        self.h = ProxyHarness(pipe, clock=lambda: now, verdict_log=VerdictLog(self.out))

    def __enter__(self):
        self.h.__enter__()
        self.s, _ = raw_session(self.h)
        return self

    def __exit__(self, *a):
        self.h.__exit__(*a)

    def send(self, raw):
        self.s.sendall(raw)
        return read_raw(self.s)

    def replaces(self):
        return [p for _, p in self.h.sim.received if p.command_id == C.REPLACE_SM]

    def log(self):
        return [json.loads(x) for x in self.out.getvalue().splitlines()]


def test_an_id_we_did_not_forward_is_refused_replacefail_not_relayed(pipe):
    with _Session(pipe, NOON) as t:
        r = t.send(_replace(5, "DEADBEEF", CARE))
        assert r.command_status == C.ESME_RREPLACEFAIL and not t.replaces()
        line = t.log()[-1]
        assert line["action"] == "refuse" and line["pdu"] == "ReplaceSm" and "recipient is unknown" in line["reason"]
        assert t.h.proxy.stats["replace_refused"] == 1


def test_a_replacement_is_judged_to_the_stored_recipient_and_relayed_when_allowed(pipe):
    with _Session(pipe, NOON) as t:
        mid = t.send(_submit(5, "84912777010")).message_id        # not DNC: the ad replacing it is allowed
        assert t.send(_replace(6, mid)).command_status == 0
        assert [p.message_id for p in t.replaces()] == [mid]
        line = t.log()[-1]
        assert line["pdu"] == "ReplaceSm" and line["recipient"] == "+84912777010" and line["action"] == "allow"


def test_a_replacement_is_read_in_the_stored_messages_data_coding(pipe):
    with _Session(pipe, NOON) as t:
        mid = t.send(_submit(5, "0912000001", "So du thay đổi".encode("utf-16-be"), dc=8)).message_id
        assert mid
        # UCS-2 bytes of an ad to a DNC number: read as the handset will show them (dc 8), dropped
        assert t.send(_replace(6, mid, "[QC] Mở thẻ. TC gui 5656".encode("utf-16-be"))).command_status != 0
        assert not t.replaces()
        assert "AD_TO_DNC" in [h["symbol"] for h in t.log()[-1]["hits"]]


def test_a_replacement_keeps_the_stored_schedule_or_takes_its_own(pipe):
    with _Session(pipe, LATE) as t:
        # customer care at 21:00 for 23:30: allowed (not advertising)
        mid = t.send(_submit(5, "84912777011", sched="260302233000028+")).message_id
        assert mid
        # an ad in its place with no schedule of its own goes out at 23:30: outside 07:00-22:00
        assert t.send(_replace(6, mid)).command_status != 0
        assert t.log()[-1]["delivery"] == "2026-03-02T23:30:00+07:00"
        # with a schedule of its own (21:30) it is judged then: allowed, and that schedule is kept
        assert t.send(_replace(7, mid, sched="260302213000028+")).command_status == 0
        # a later replacement without one is judged at 21:30 too
        assert t.send(_replace(8, mid, AD + b" 2")).command_status == 0
        assert t.log()[-1]["delivery"] == "2026-03-02T21:30:00+07:00"
        assert len(t.replaces()) == 2


def test_a_replacement_scheduled_into_the_night_is_dropped(pipe):
    with _Session(pipe, NOON) as t:
        mid = t.send(_submit(5, "84912777012")).message_id
        assert t.send(_replace(6, mid, sched="260302230000028+")).command_status != 0
        assert t.send(_replace(7, mid, sched="261302230000028+")).command_status == C.ESME_RINVSCHED
        assert not t.replaces()


def test_another_source_a_multi_or_another_accounts_id_is_refused(pipe):
    with _Session(pipe, NOON) as t:
        mid = t.send(_submit(5, "84912777013")).message_id
        r = t.send(_replace(6, mid, CARE, src="OTHER"))
        assert r.command_status == C.ESME_RREPLACEFAIL and "not the one" in t.log()[-1]["reason"]
        multi = t.send(encode(P.SubmitMulti(sequence_number=7, source_addr_ton=5, source_addr="BANKZ",
                                            dest_addresses=((1, 1, 1, "84912777014"), (1, 1, 1, "84912777015")),
                                            data_coding=1, short_message=CARE))).message_id
        assert multi
        assert t.send(_replace(8, multi, CARE)).command_status == C.ESME_RREPLACEFAIL
        assert "submit_multi" in t.log()[-1]["reason"]
        assert not t.replaces()


# ---------------------------------------------------------------- the map
def test_the_map_keeps_a_note_per_id_and_forgets_it_with_the_id():
    ids = MessageIds(bound=2)
    ids.add("a", "esme1")
    ids.note("a", SINGLE, 8, "BANKZ", 1_772_470_200, 84912000001)
    ids.add("b", "esme1")
    ids.note("b", MULTI, 0, "SHOP", 0, None)
    assert ids.sent("a") == Sent(SINGLE, 8, source_fp("BANKZ"), 1_772_470_200, 84912000001)
    assert ids.sent("b") == Sent(MULTI, 0, source_fp("SHOP"), 0, 0)
    ids.add("c", "esme2")                          # the bound: "a" goes, and its note with it
    assert ids.get("a") is None and ids.sent("a") is None and ids.sent("c") is None
    ids.note("zz", SINGLE, 0, "X", 0, 1)           # not in the map: nothing kept
    assert ids.sent("zz") is None and len(ids._sent) == 1
    ids.add("b", "esme2")                          # an id the SMSC hands out again: another message
    assert ids.sent("b") is None


def test_notes_survive_a_dump_and_a_map_without_notes_still_loads():
    ids = MessageIds()
    for i in range(5):
        ids.add(f"m{i}", f"esme{i % 2}")
        if i != 3:
            ids.note(f"m{i}", PART if i == 4 else SINGLE, i, f"S{i}", 1000 * i, 84912000000 + i)
    back = MessageIds()
    assert back.load(ids.dump()) == 5
    assert [back.get(f"m{i}") for i in range(5)] == [f"esme{i % 2}" for i in range(5)]
    assert [back.sent(f"m{i}") for i in range(5)] == [ids.sent(f"m{i}") for i in range(5)]
    assert back.sent("m3") is None and back.sent("m4").kind == PART
    # the file format is the same version, the notes an extra column older readers skip
    import msgpack
    d = msgpack.unpackb(ids.dump())
    assert d["version"] == 1 and len(d["sent"]) == 16 * 5
    del d["sent"]
    old = MessageIds()
    assert old.load(msgpack.packb(d, use_bin_type=True)) == 5 and old.get("m0") == "esme0" and old.sent("m0") is None
    d["sent"] = b"\x00" * 7
    with pytest.raises(ValueError, match="sent column"):
        MessageIds().load(msgpack.packb(d, use_bin_type=True))


def test_a_care_message_replaced_by_an_ad_counts_as_an_ad(pipe):
    """A replacement is judged and counted as the message it becomes: a care message (not counted toward the
    advertising cap) replaced by an ad counts as one (judged uncounted, replacements would pass every cap)."""
    with _Session(pipe, NOON) as t:
        st = []
        for i in range(3):
            mid = t.send(_submit(5 + i, "84912777021", CARE + b" %d" % i)).message_id
            st.append(t.send(_replace(10 + i, mid, AD + b" v%d" % i)).command_status)
        st.append(t.send(_submit(20, "84912777021", AD + b" other")).command_status)
    assert st[:3] == [0, 0, 0] and st[3] != 0, st


def test_a_charged_note_keeps_its_second_and_flag_through_a_dump():
    """A message counted toward an advertiser's cap at delivery is noted so (relay.py gives that count back when
    the SMSC replaces or cancels it); the flag is a bit of the same 16 bytes."""
    ids = MessageIds()
    ids.add("a", "esme1")
    ids.note("a", SINGLE, 0, "SHOP", 1_772_470_200, 84912000001, True)
    ids.add("b", "esme1")
    ids.note("b", SINGLE, 0, "SHOP", 0, 84912000002, True)        # no second: cannot be given back
    assert ids.sent("a") == Sent(SINGLE, 0, source_fp("SHOP"), 1_772_470_200, 84912000001, True)
    assert ids.sent("b").charged is False
    back = MessageIds()
    back.load(ids.dump())
    assert back.sent("a") == ids.sent("a") and back.sent("a").destination == 84912000001


def test_a_replace_sm_goes_up_without_the_esmes_verdict_tlv_and_with_ours_when_tagged(pipe):
    """Found by a review: a replace_sm's own 0x1400 TLV ("0;") reached the SMSC, and a replacement the rules tag
    went up without ours."""
    from engine.smpp_proxy.codec import Tlv
    forged = Tlv(0x1400, b"0;")
    with _Session(pipe, NOON) as t:
        mid = t.send(_submit(5, "84912000002")).message_id
        care = encode(P.ReplaceSm(sequence_number=6, message_id=mid, source_addr_ton=5, source_addr="BANKZ",
                                  short_message=b"So du tai khoan cua quy khach: 1.000.000d", tlvs=(forged,)))
        assert t.send(care).command_status == 0
        mid2 = t.send(_submit(7, "84912000003")).message_id
        no_optout = encode(P.ReplaceSm(sequence_number=8, message_id=mid2, source_addr_ton=5, source_addr="BANKZ",
                                       short_message=b"[QC] Mo the tin dung ngay hom nay", tlvs=(forged,)))
        assert t.send(no_optout).command_status == 0
        first, second = t.replaces()
        assert [x.value for x in first.tlvs if x.tag == 0x1400] == []
        tags = [x.value for x in second.tlvs if x.tag == 0x1400]
        assert len(tags) == 1 and b"AD_NO_OPTOUT" in tags[0], tags


def test_a_replacement_with_sar_tlvs_is_refused_not_relayed(pipe):
    """SMPP 3.4 gives replace_sm no TLVs; one carrying sar_msg_ref_num/total/seqnum was relayed with them (found by
    a conformance probe): an SMSC that honoured them would make the replacement, judged alone, a part of another
    message (a link split across it and that message's parts)."""
    with _Session(pipe, NOON) as t:
        mid = t.send(_submit(5, "84912777010")).message_id
        rep = P.ReplaceSm(sequence_number=6, message_id=mid, source_addr_ton=5, source_addr="BANKZ",
                          short_message=b"example/verify now",
                          tlvs=[P.Tlv(C.TAG_SAR_MSG_REF_NUM, b"\x00\x09"), P.Tlv(C.TAG_SAR_TOTAL_SEGMENTS, b"\x02"),
                                P.Tlv(C.TAG_SAR_SEGMENT_SEQNUM, b"\x02")])
        assert t.send(encode(rep)).command_status == C.ESME_ROPTPARNOTALLWD and not t.replaces()
        assert t.send(_replace(7, mid)).command_status == 0 and len(t.replaces()) == 1     # without them: relayed
