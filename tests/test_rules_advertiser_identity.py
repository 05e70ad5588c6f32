"""Who an advertiser is: one advertiser however its name is written (caps and consent), and advertising SMS only from a brandname."""
import unicodedata
from datetime import datetime, timedelta, timezone

import pytest

from engine.app import build
from engine.lists import ListStore
from engine.verdict import Message

VN = timezone(timedelta(hours=7))
T = datetime(2026, 3, 2, 10, 0, tzinfo=VN)
AD = "[QC] Uu dai cuoi tuan. TC gui 5656"
OWNER = "Công ty Đông Á"


@pytest.fixture
def pipe(tmp_path):
    nfc, nfd = unicodedata.normalize("NFC", OWNER), unicodedata.normalize("NFD", OWNER)
    rows = ("sender,owner,category,valid_from,valid_to,accounts\n"
            f"DONGA,{nfc},QC,,,\n"              # the registry as one export writes it
            f"DONGA2,{nfd},QC,,,\n"             # the same advertiser, decomposed (another export)
            "DONGA3,Công  ty   Đông Á,QC,,,\n"  # ... and with doubled spaces
            f"DONGA4,{nfc.upper()},QC,,,\n")
    ListStore(tmp_path).import_csv("senders", rows.encode(), "senders.csv")
    return build(data_dir=tmp_path, with_model=False, persist=False)


def _ad(pipe, sender, hours, recipient="0912777100"):
    return pipe.judge(Message(sender, recipient, AD, T + timedelta(hours=hours), "", "mt"))


def test_one_advertiser_written_in_nfc_nfd_or_with_doubled_spaces_has_one_cap(pipe):
    """Decree 91: at most 3 ads per advertiser per recipient per 24 h, whatever brandname (registry row)
    carries them; an owner's name in NFD or with doubled spaces is the same advertiser."""
    assert [_ad(pipe, s, h).action.name for h, s in enumerate(["DONGA", "DONGA2", "DONGA3"])] == ["ALLOW"] * 3
    v = _ad(pipe, "DONGA4", 3)
    assert v.action.name == "DROP" and list(v.symbols) == ["AD_FREQUENCY_CAP"], v
    for s in ("DONGA", "DONGA2", "DONGA3"):
        assert "AD_FREQUENCY_CAP" in _ad(pipe, s, 4).symbols
    assert _ad(pipe, "DONGA2", 4, recipient="0912777101").action.name == "ALLOW"     # another recipient


def test_owner_key_is_unchanged_for_names_already_in_normal_form():
    from engine.lists.sets import owner_fold
    # journalled (embedded) and shared (Redis) counters and saved consent keep their keys across the upgrade
    for o in ("Shop ABC", "Bank Z", unicodedata.normalize("NFC", OWNER), "Ngân hàng TMCP Á Châu"):
        assert owner_fold(o) == o.casefold()
    assert owner_fold(unicodedata.normalize("NFD", OWNER)) == owner_fold(OWNER) == owner_fold(" CÔNG TY  ĐÔNG Á ")


def test_consent_written_with_another_spelling_of_the_owner_is_found(tmp_path):
    """Consent imported with the owner decomposed (NFD) and a doubled space still lets that owner's
    ad reach a DNC number it registered under the composed name; it survives a reload, and
    removing it with a third spelling removes it."""
    from engine.lists.edits import remove
    nfd = unicodedata.normalize("NFD", OWNER).replace(" ", "  ", 1)
    st = ListStore(tmp_path)
    st.import_csv("senders", ("sender,owner,category,valid_from,valid_to,accounts\n"
                              f"DONGA,{OWNER},QC,2020-01-01,,\n").encode(), "senders.csv")
    st.import_csv("dnc", b"number,channel\n0912000001,S\n", "dnc.csv")
    st.import_csv("consent", f"owner,number\n{nfd},0912000001\n".encode(), "consent.csv")
    pipe = build(data_dir=tmp_path, with_model=False)
    t = datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=7)))
    v = pipe.judge(Message("DONGA", "0912000001", "[QC] Uu dai. Tu choi: TC gui 5656", t, "", "mt"))
    assert v.action.name.lower() == "allow", v
    L = ListStore(tmp_path).load()
    assert L.has_consent(OWNER, 84912000001) and L.has_consent(nfd, 84912000001)
    assert remove(L, "consent", "0912000001", None, [" " + OWNER.upper()]) and not L.has_consent(OWNER, 84912000001)


@pytest.fixture
def qc_number(tmp_path):
    ListStore(tmp_path).import_csv("senders", b"sender,owner,category,valid_from,valid_to,accounts\n"
                                              b"SHOPABC,Shop ABC,QC,2020-01-01,2099-12-31,\n"
                                              b"02439998888,Shop ABC,QC,,,\n0901111222,Shop ABC,QC,,,\n", "s.csv")
    return build(data_dir=tmp_path, with_model=False, persist=False)


@pytest.mark.parametrize("sender", ["02439998888", "+842439998888", "0901111222"])
@pytest.mark.parametrize("text", [AD, "DKQC Shop ABC xin phep gui quang cao"])
def test_advertising_sms_never_comes_from_a_phone_number_even_a_registered_one(qc_number, sender, text):
    """Decree 91 Art. 13: advertising SMS only once a brandname is granted, never from a phone number
    (an advertiser's number registered QC is for its advertising calls)."""
    v = qc_number.judge(Message(sender, "0912777200", text, T, "", "mt"))
    assert v.action.name == "DROP" and "AD_SENDER_NOT_QC" in v.symbols, v
    h = next(h for h in v.hits if h.symbol == "AD_SENDER_NOT_QC")
    assert "sender is a number" in h.detail and h.source.endswith(".toml:" + h.source.rsplit(":", 1)[1])


def test_the_brandname_of_the_same_advertiser_still_advertises_and_registers(qc_number):
    for text in (AD, "DKQC Shop ABC xin phep gui quang cao"):
        assert qc_number.judge(Message("SHOPABC", "0912777201", text, T, "", "mt")).action.name == "ALLOW"
