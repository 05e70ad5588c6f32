"""A Vietnamese landline written without its trunk prefix (national significant number, 10 digits 2xxxxxxxxx:
"2439998888" for 024 3999 8888) is read as a foreign number (+243… , DR Congo, not a valid number there), while
the mobile form without the trunk prefix ("912345678") is read as Vietnamese and phonenumbers, the reference,
reads both as +84. A QC landline presented that way escapes the call rules, and a DNC row written that way is
imported silently under a foreign key. Found by the Decree 91 compliance probe. Ten digits whose first three are a
Vietnamese area code are read as a landline now (numbers.VN_LANDLINE_AREAS); entries an earlier version stored
under the foreign key are not moved (one may be the foreign number it says) but a warning counts them."""
import json

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st
from engine.numbers import normalise_number
from tests.conftest import jsonl, run_cli


def test_a_landline_without_trunk_prefix_is_vietnamese_as_phonenumbers_reads_it():
    ref = phonenumbers.format_number(phonenumbers.parse("2439998888", "VN"), phonenumbers.PhoneNumberFormat.E164)
    assert ref == "+842439998888"
    assert normalise_number("2439998888") == 842439998888


def test_an_advertisers_landline_without_trunk_prefix_is_held_to_the_call_hours(data_dir):
    run_cli("lists", "import", "senders", "-", "--data-dir", data_dir, check=True,
            input="sender,owner,category,valid_from,valid_to,accounts\n02439998888,Shop ABC,QC,,,\n")
    calls = [{"id": form, "kind": "call", "caller": form, "callee": "0912999999", "time": "2026-03-02T23:00:00+07:00"}
             for form in ("02439998888", "2439998888")]
    out = run_cli("check", "--jsonl", "-", "--data-dir", data_dir, input=jsonl(calls), check=True).stdout
    actions = {d["id"]: d["action"] for d in map(json.loads, out.splitlines())}
    assert actions == {"02439998888": "drop", "2439998888": "drop"}


def test_the_area_codes_are_libphonenumbers_vietnamese_fixed_line_prefixes():
    import re
    from engine.numbers import VN_LANDLINE_AREAS
    meta = phonenumbers.PhoneMetadata.metadata_for_region("VN").fixed_line
    pat = re.compile(meta.national_number_pattern)
    assert meta.possible_length == (10,)
    assert VN_LANDLINE_AREAS == {str(a) for a in range(200, 300) if pat.fullmatch(f"{a}1234567")}


@given(st.sampled_from(sorted(__import__("engine.numbers", fromlist=["x"]).VN_LANDLINE_AREAS)),
       st.integers(0, 9_999_999))
@settings(max_examples=300)
def test_landlines_in_every_national_form_agree_with_phonenumbers(area, rest):
    nsn = f"{area}{rest:07d}"
    ref = phonenumbers.format_number(phonenumbers.parse(nsn, "VN"), phonenumbers.PhoneNumberFormat.E164)
    assert ref == "+84" + nsn
    for form in (nsn, "0" + nsn, "84" + nsn, "+84" + nsn, "+84 0" + nsn):
        assert normalise_number(form) == int(ref[1:]), form


def test_a_foreign_ten_digit_number_is_kept_with_its_plus_or_00():
    assert normalise_number("+2302123456") == 2302123456            # Mauritius (230 is no Vietnamese area code)
    assert normalise_number("2302123456") == 2302123456
    assert normalise_number("+2207123456") == normalise_number("002207123456") == 2207123456     # Gambia
    assert normalise_number("2207123456") == 842207123456            # (bare: Hai Duong's landline)


def test_entries_stored_under_the_old_reading_are_counted_in_a_warning(tmp_path):
    from engine.lists import ListStore
    store = ListStore(tmp_path / "d")
    store.import_csv("dnc", b"number,channel\n+2439990001,V\n+2302123456,S\n0912345678,S\n", "dnc.csv")
    store = ListStore(tmp_path / "d")
    store.load()
    assert any("1 list entries are foreign numbers of ten digits" in w for w in store.warnings), store.warnings
