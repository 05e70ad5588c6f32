"""DNC and consent entries are whole subscriber numbers (found by a first trial: 09123456789, a digit too many, was
stored as +849123456789 and +999123456789 was taken; a subscriber with the typo is not protected and nobody is
told). Checked against phonenumbers, the independent peer."""
import phonenumbers
import pytest
from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE

from engine.lists.csvio import read_csv
from engine.numbers import COUNTRY_CODES, normalise_number, subscriber_problem, vn_whole


def test_the_country_codes_are_libphonenumbers_countries_and_territories():
    assert COUNTRY_CODES == {cc for cc, regions in _COUNTRY_CODE_TO_REGION_CODE.items()
                             if regions and regions != ("001",)}


@pytest.mark.parametrize("written", ["0912345678", "0352345678", "0702345678", "0812345678", "0592345678",
                                     "02439998888", "02363888999", "+84912345678", "84912345678"])
def test_vietnamese_mobiles_and_landlines_are_whole(written):
    n = normalise_number(written)
    assert vn_whole(n) and subscriber_problem(n) is None
    assert phonenumbers.is_valid_number(phonenumbers.parse(written, "VN"))


@pytest.mark.parametrize("written", ["09123456789", "091234567", "+849123456789", "0112345678", "021234567"])
def test_vietnamese_numbers_of_the_wrong_length_or_range_are_not(written):
    n = normalise_number(written)
    assert subscriber_problem(n) is not None
    assert not phonenumbers.is_valid_number(phonenumbers.parse(written, "VN"))


@pytest.mark.parametrize("written, ok", [("+14155550123", True), ("+447911123456", True), ("+8613812345678", True),
                                         ("+6907290", True), ("+6837012", True),      # Tokelau, Niue: 7 digits
                                         ("+999123456789", False), ("+1415555012345678", False), ("+8001234", False)])
def test_other_countries_need_a_country_code_and_an_e164_length(written, ok):
    assert (subscriber_problem(normalise_number(written)) is None) is ok
    try:
        possible = phonenumbers.is_possible_number(phonenumbers.parse(written))
    except phonenumbers.NumberParseException:          # (+999…: no such country code)
        possible = False
    assert possible is ok


def test_a_dnc_file_reports_them_with_their_lines():
    recs, errs = read_csv("dnc", b"number,channel\n0912345678,S\n09123456789,S\n+999123456789,V\n+14155550123,V\n",
                          "dnc.csv")
    assert [r[0] for r in recs] == [84912345678, 14155550123]
    assert [(e.line, "not a subscriber number" in e.message) for e in errs] == [(3, True), (4, True)]
