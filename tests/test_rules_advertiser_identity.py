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


BOTH = ("sender,owner,category,valid_from,valid_to,accounts\n"
        "BANKZ,Bank Z,CSKH,2024-01-01,,\n"
        "BANKZ,Bank Z,QC,2024-01-01,,\n")       # both granted the same day: one row each, the same dates


def test_a_brand_holding_qc_and_cskh_for_the_same_dates_keeps_both(tmp_path):
    """README: "a brand may hold QC and CSKH both". Both registrations granted on the same day (the same
    dates) were one too many: the import refused the second row and `lists add` replaced the first, so the
    brand was CSKH only (its labelled ads dropped AD_SENDER_NOT_QC, its unlabelled ads let through as
    customer care) or QC only (its customer care dropped AD_LABEL_MISSING). Found by the Decree 91 probe."""
    from engine.lists.csvio import read_csv
    recs, errs = read_csv("senders", BOTH.encode(), "senders.csv")
    assert [r.category for r in recs] == ["CSKH", "QC"] and not errs
    st = ListStore(tmp_path)
    st.import_csv("senders", BOTH.encode(), "senders.csv")
    pipe = build(data_dir=tmp_path, with_model=False, persist=False)
    care = pipe.judge(Message("BANKZ", "0912777200", "So du tai khoan thay doi", T, "", "mt"))
    ad = pipe.judge(Message("BANKZ", "0912777201", AD, T, "", "mt"))
    assert care.action.name == "ALLOW" and ad.action.name == "ALLOW", (care, ad)
    assert sorted(e.category for e in ListStore(tmp_path).load().sender_entries("bankz")) == ["CSKH", "QC"]


def test_lists_add_of_the_other_category_for_the_same_dates_keeps_the_first(tmp_path):
    from .conftest import run_cli
    for cat in ("CSKH", "QC"):
        run_cli("lists", "add", "senders", "BOTH", "--owner", "Both Co", "--category", cat, "--data-dir", tmp_path,
                check=True)
    out = run_cli("lists", "export", "senders", "--data-dir", tmp_path, check=True).stdout.splitlines()
    assert sorted(out[1:]) == ["BOTH,Both Co,CSKH,,,", "BOTH,Both Co,QC,,,"]
    # the same category again edits that entry (here its accounts); another owner for those dates is an edit of
    # the brand's registration for them: it replaces both (one brandname, one owner at a time)
    run_cli("lists", "add", "senders", "BOTH", "--owner", "Both Co", "--category", "QC", "--accounts", "esme-a",
            "--data-dir", tmp_path, check=True)
    out = run_cli("lists", "export", "senders", "--data-dir", tmp_path, check=True).stdout.splitlines()
    assert sorted(out[1:]) == ["BOTH,Both Co,CSKH,,,", "BOTH,Both Co,QC,,,esme-a"]
    run_cli("lists", "add", "senders", "BOTH", "--owner", "New Co", "--category", "QC", "--data-dir", tmp_path,
            check=True)
    out = run_cli("lists", "export", "senders", "--data-dir", tmp_path, check=True).stdout.splitlines()
    assert out[1:] == ["BOTH,New Co,QC,,,"]


def test_the_same_dates_with_another_owner_or_the_same_category_twice_stay_errors():
    from engine.lists.csvio import read_csv
    data = (BOTH + "bankz,BANK  z,QC,2024-01-01,,\n"     # the same registration, owner written otherwise: nothing new
            "BANKZ,Other Co,QC,2024-01-01,,\n"            # another owner for those dates
            "BANKZ,Bank Z,QC,2024-01-01,,esme-a\n")       # the QC one again with other accounts
    recs, errs = read_csv("senders", data.encode(), "senders.csv")
    assert [r.category for r in recs] == ["CSKH", "QC"]
    assert [e.line for e in errs] == [5, 6], errs
