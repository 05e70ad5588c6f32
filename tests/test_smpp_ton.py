"""SMPP's type of number (SMPP 3.4 §5.2.5, source_addr_ton / dest_addr_ton) decides how an address without a '+'
is read, as a carrier's SMSC reads it (engine/numbers.normalise_number): TON 1 (international) is E.164 as written,
TON 2 (national) is Vietnamese; TON 0 and the others, and a TON 1 address in national form (0912…, a misconfigured
ESME), keep the reading from the digits alone. Before, the TON was not read: "2439998888" sent as international
(+243, DR Congo) was judged as the Vietnamese landline +84 243 999 8888 -- on its DNC registration, its consent,
its caps -- and a foreign subscriber's 5656 registration was recorded against that landline."""
import io
import json
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.app import build
from engine.lists import ListStore
from engine.numbers import normalise_number, read_by_ton
from engine.records import RecordError, parse_record
from engine.smpp_proxy.codec import encode
from engine.smpp_proxy.codec import constants as C
from engine.smpp_proxy.codec import pdu as P
from engine.smpp_proxy.harness import ProxyHarness
from engine.verdictlog import VerdictLog
from tests.test_smpp_mo_concat import answers, deliver, mo, proxy  # noqa: F401 (proxy: fixture)
from tests.test_smpp_proxy import raw_session, read_raw, wait

LANDLINE = "2439998888"          # ten digits whose first three are a Vietnamese area code (Hanoi 243) ...
VN_LANDLINE = 842439998888       # ... the landline 024 3999 8888 without its trunk 0
DRC = 2439998888                 # ... or +243 999 8888 (DR Congo) as SMPP writes it with TON international
SENDERS = b"sender,owner,category,valid_from,valid_to,accounts\nSHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
DNC = b"number,channel\n02439998888,S\n"
NOON = datetime.fromisoformat("2026-03-02T10:00:00+07:00")
AD = b"[QC] Uu dai. TC gui 5656"


# ------------------------------------------------------------ the reading rules
@pytest.mark.parametrize("raw,ton,expected", [
    (LANDLINE, 0, VN_LANDLINE),             # unknown: today's guess from the digits
    (LANDLINE, 1, DRC),                     # international: E.164 as written
    (LANDLINE, 2, VN_LANDLINE),             # national
    ("912345678", 0, 84912345678),
    ("912345678", 1, 912345678),            # a 9-digit international number is no Vietnamese mobile NSN
    ("912345678", 2, 84912345678),
    ("84912345678", 1, 84912345678),        # the common case: unchanged
    ("84912345678", 2, 84912345678),        # an international form sent as national (misconfigured): as today
    ("0912345678", 1, 84912345678),         # a national form sent as international (misconfigured): as today
    ("02439998888", 1, VN_LANDLINE),
    ("0084912345678", 1, 84912345678),
    ("+2439998888", 2, DRC),                # a '+' says it all, whatever the TON
    ("243 999 8888", 1, DRC),
    ("5656", 1, 5656),                      # short codes stay short codes
    ("1900123456", 1, 841900123456),        # as "+1900123456" reads (no +1 number has 10 digits)
    ("2019998888", 0, 2019998888),          # no Vietnamese area code: international today ...
    ("2019998888", 2, 842019998888),        # ... a landline NSN when said to be national
    ("2439998888", 5, VN_LANDLINE),         # alphanumeric, network specific, …: as unknown
    ("2439998888", 3, VN_LANDLINE),
    ("1234567890123456", 1, None),
    ("SHOPABC", 1, None),
])
def test_reading_by_type_of_number(raw, ton, expected):
    assert normalise_number(raw, ton) == expected


@given(st.integers(10 ** 6, 10 ** 15 - 1))
@settings(max_examples=300)
def test_ton_international_reads_digits_as_with_a_plus_and_unknown_as_before(n):
    d = str(n)
    assert normalise_number(d, 1) == normalise_number("+" + d)
    assert normalise_number(d, 0) == normalise_number(d)
    assert normalise_number("0" + d, 1) == normalise_number("0" + d)        # national form: never misread
    # read_by_ton names exactly the addresses the TON reads otherwise (the verdict log's "…_read")
    for ton in (0, 1, 2, 5):
        r = read_by_ton(d, ton)
        assert r == (normalise_number(d, ton) if normalise_number(d, ton) != normalise_number(d) else None)


def test_a_check_record_may_give_the_type_of_number():
    base = {"kind": "sms", "sender": "SHOPABC", "recipient": LANDLINE, "text": "x", "time": "2026-03-02T10:00:00Z"}
    assert parse_record(base).recipient_ton == 0
    assert parse_record(dict(base, recipient_ton=1)).recipient_ton == 1
    for bad in (True, "1", 256, -1, 1.0):
        with pytest.raises(RecordError):
            parse_record(dict(base, recipient_ton=bad))


def test_check_jsonl_judges_and_names_the_number_as_read(tmp_path):
    import subprocess
    import sys
    d = tmp_path / "data"
    st = ListStore(d)
    st.import_csv("senders", SENDERS, "s.csv")
    st.import_csv("dnc", DNC, "dnc.csv")
    base = {"kind": "sms", "sender": "SHOPABC", "recipient": LANDLINE, "text": AD.decode(),
            "time": "2026-03-02T10:00:00+07:00"}
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(json.dumps(dict(base, id=i, recipient_ton=t)) for i, t in enumerate((0, 1, 2))) + "\n")
    out = subprocess.run([sys.executable, "-m", "engine.cli", "check", "--data-dir", str(d), "--jsonl", str(f)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    unknown, intl, national = [json.loads(x) for x in out.stdout.splitlines()]
    assert unknown["action"] == "drop" and "recipient_read" not in unknown      # the landline, on DNC
    assert intl["action"] != "drop" and intl["recipient_read"] == "+2439998888"
    assert national["action"] == "drop" and "recipient_read" not in national


# ------------------------------------------------------------ through the proxy
@pytest.fixture
def pipe(tmp_path):
    d = tmp_path / "data"
    st = ListStore(d)
    st.import_csv("senders", SENDERS, "senders.csv")
    st.import_csv("dnc", DNC, "dnc.csv")
    return build(data_dir=d, with_model=False)


def _ad(seq, dst, ton, cid=P.SubmitSm):
    return encode(cid(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=ton,
                      destination_addr=dst, data_coding=1, short_message=AD) if cid is P.SubmitSm else
                  cid(sequence_number=seq, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=ton,
                      destination_addr=dst, data_coding=1,
                      tlvs=(P.Tlv(C.TAG_MESSAGE_PAYLOAD, AD),)))


def test_a_dnc_landline_and_a_foreign_number_with_the_same_digits_are_judged_apart(pipe):
    out = io.StringIO()
    with ProxyHarness(pipe, clock=lambda: NOON, verdict_log=VerdictLog(out)) as h:
        s, _ = raw_session(h)
        s.sendall(_ad(10, LANDLINE, 0))              # TON unknown: the Vietnamese landline, DNC-listed
        assert read_raw(s).command_status != 0
        s.sendall(_ad(11, LANDLINE, 2))              # national: the same landline
        assert read_raw(s).command_status != 0
        s.sendall(_ad(12, LANDLINE, 1))              # international: +243 999 8888, on no list
        assert read_raw(s).command_status == 0
        s.sendall(_ad(13, LANDLINE, 1, P.DataSm))    # data_sm reads its TON too
        assert read_raw(s).command_status == 0
        s.sendall(_ad(14, "0" + LANDLINE, 1))        # a national form sent as international: still the landline
        assert read_raw(s).command_status != 0
        # a submit_multi reads each destination's own TON: the foreign one alone goes through, with the
        # landline (TON 0) the PDU is dropped whole
        s.sendall(encode(P.SubmitMulti(sequence_number=15, source_addr_ton=5, source_addr="SHOPABC",
                                       dest_addresses=((1, 1, 1, LANDLINE),), data_coding=1, short_message=AD)))
        assert read_raw(s).command_status == 0
        s.sendall(encode(P.SubmitMulti(sequence_number=16, source_addr_ton=5, source_addr="SHOPABC",
                                       dest_addresses=((1, 1, 1, LANDLINE), (1, 0, 1, LANDLINE)), data_coding=1,
                                       short_message=AD)))
        assert read_raw(s).command_status != 0
        assert len(h.sim.submits()) == 3
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    dnc = [x for x in lines if any(hit["symbol"] == "AD_TO_DNC" for hit in x["hits"])]
    assert all(x["recipient"] in (LANDLINE, "0" + LANDLINE) and "recipient_read" not in x for x in dnc)
    assert len(dnc) == 4
    allowed = [x for x in lines if x["action"] != "drop"]
    assert len(allowed) == 3
    # the verdict line says how the address was read when its TON decided it (and replays so in check)
    assert all(x["recipient_read"] == "+2439998888" and x["recipient_ton"] == 1 for x in allowed)


def test_a_replace_sm_is_judged_to_the_foreign_number_its_message_went_to(pipe):
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        s.sendall(encode(P.SubmitSm(sequence_number=10, source_addr_ton=5, source_addr="SHOPABC", dest_addr_ton=1,
                                    destination_addr=LANDLINE, data_coding=1, short_message=AD)))
        r = read_raw(s)
        assert r.command_status == 0
        # the stored recipient is +243…: the ad it becomes is not to the DNC landline
        s.sendall(encode(P.ReplaceSm(sequence_number=11, message_id=r.message_id, source_addr_ton=5,
                                     source_addr="SHOPABC", short_message=AD + b" 2")))
        assert read_raw(s).command_status == 0


def test_a_5656_registration_from_a_foreign_subscriber_is_recorded_against_their_number(proxy, pipe):
    h, _ = proxy()
    src = "2439997777"                  # TON 1 (mo() sends international): +243 999 7777, not 024 3999 7777
    seq = deliver(h, mo(b"DK DNC", src=src, dc=0, esm_class=0))
    assert wait(lambda: answers(h).get(seq) == [0])
    assert wait(lambda: ListStore(pipe.store.dir).load().in_dnc(2439997777, "S"))     # (on disk: not a fixed sleep)
    assert not ListStore(pipe.store.dir).load().in_dnc(842439997777, "S")


def test_a_concatenated_message_is_judged_to_the_number_its_parts_name_by_their_ton(pipe):
    def parts(ref, ton, seq):
        chunks = [b"[QC] Uu dai lon nhat nam, ", b"TC gui 5656"]
        return [encode(P.SubmitSm(sequence_number=seq + i, source_addr_ton=5, source_addr="SHOPABC",
                                  dest_addr_ton=ton, destination_addr=LANDLINE, esm_class=C.ESM_UDHI, data_coding=1,
                                  short_message=bytes([5, 0, 3, ref, 2, i + 1]) + c)) for i, c in enumerate(chunks)]
    with ProxyHarness(pipe, clock=lambda: NOON) as h:
        s, _ = raw_session(h)
        for ton, ref, seq, ok in ((1, 7, 10, True), (0, 8, 20, False)):
            for p in parts(ref, ton, seq):
                s.sendall(p)
            assert [read_raw(s).command_status == 0 for _ in range(2)] == [ok, ok]
        assert len(h.sim.submits()) == 2
