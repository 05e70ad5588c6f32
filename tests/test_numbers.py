"""The hot-path normaliser against phonenumbers (the reference, never called per message)."""
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.numbers import normalise_number, normalise_sender_id, sender_key

VN_MOBILE_PREFIXES = ["32", "33", "34", "35", "36", "37", "38", "39", "56", "58", "59", "70", "76", "77", "78",
                      "79", "81", "82", "83", "84", "85", "86", "88", "89", "90", "91", "92", "93", "94", "96",
                      "97", "98", "99"]


@given(st.sampled_from(VN_MOBILE_PREFIXES), st.integers(0, 9_999_999))
@settings(max_examples=400)
def test_vietnam_national_forms_agree_with_phonenumbers(prefix, rest):
    nsn = prefix + f"{rest:07d}"
    ref = phonenumbers.format_number(phonenumbers.parse("0" + nsn, "VN"), phonenumbers.PhoneNumberFormat.E164)
    for form in ("0" + nsn, "84" + nsn, "+84" + nsn, nsn, "+84 " + nsn[:2] + " " + nsn[2:5] + " " + nsn[5:],
                 "0" + nsn[:3] + "-" + nsn[3:6] + "-" + nsn[6:]):
        assert normalise_number(form) == int(ref[1:]), form
        pn = phonenumbers.parse(form, "VN")
        assert "+" + str(normalise_number(form)) == phonenumbers.format_number(pn, phonenumbers.PhoneNumberFormat.E164)


REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r))


@given(st.sampled_from(REGIONS), st.sampled_from(["E164", "INTERNATIONAL"]),
       st.sampled_from(["MOBILE", "FIXED_LINE"]))
@settings(max_examples=400)
def test_international_numbers_agree_with_phonenumbers(region, fmt, kind):
    ex = phonenumbers.example_number_for_type(region, getattr(phonenumbers.PhoneNumberType, kind))
    if ex is None:
        return
    s = phonenumbers.format_number(ex, getattr(phonenumbers.PhoneNumberFormat, fmt))
    e164 = phonenumbers.format_number(ex, phonenumbers.PhoneNumberFormat.E164)
    assert normalise_number(s) == int(e164[1:]), s


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
def test_never_raises(s):
    n = normalise_number(s)
    assert n is None or (isinstance(n, int) and n > 0 or n == 0)


@pytest.mark.parametrize("raw,want", [("5656", 5656), ("0912345678", 84912345678), ("0243 999 8888", 842439998888),
                                      ("0012125550100", 12125550100), ("abc", None), ("+0123", None), ("", None)])
def test_examples(raw, want):
    assert normalise_number(raw) == want


@given(st.sampled_from(["1800", "1900"]), st.sampled_from([4, 6]), st.integers(0, 999_999))
@settings(max_examples=200)
def test_vietnam_service_numbers_agree_with_phonenumbers(prefix, width, rest):
    """1800 (free) and 1900 (premium) numbers written as Vietnamese write them: +84 1900…, not +1 900… (a
    blacklisted "1900123456" missed the same caller as +841900123456)."""
    nsn = prefix + f"{rest % 10 ** width:0{width}d}"
    ref = phonenumbers.format_number(phonenumbers.parse(nsn, "VN"), phonenumbers.PhoneNumberFormat.E164)
    for form in (nsn, "84" + nsn, "+84" + nsn, "+84 " + nsn, nsn[:4] + " " + nsn[4:], nsn[:4] + "." + nsn[4:]):
        assert normalise_number(form) == int(ref[1:]), form


def test_sender_ids_casefold_and_trim():
    assert normalise_sender_id("  ShopABC ") == "shopabc"
    assert sender_key(" VNBank") == "vnbank"
    assert sender_key("+84 912 345 678") == 84912345678


def _normalise_reference(raw):
    """normalise_number before its sender-name shortcut (every address through strip/translate)."""
    from engine.numbers import _STRIP, SHORTCODE_MAX_DIGITS, VN_CC
    s = raw if raw.isdigit() and raw.isascii() else raw.strip().translate(_STRIP)
    if not s:
        return None
    if s[0] == "+":
        d = s[1:]
        return int(d) if d.isdigit() and d.isascii() and 7 <= len(d) <= 15 and d[0] != "0" else None
    if not (s.isdigit() and s.isascii()):
        return None
    n = len(s)
    if n <= SHORTCODE_MAX_DIGITS:
        return int(s)
    if s[0] == "0":
        if s[1] == "0":
            d = s[2:]
            return int(d) if 7 <= len(d) <= 15 and d[0] != "0" else None
        return int(VN_CC + s[1:]) if n in (10, 11) else None
    if n == 9:
        return int(VN_CC + s)
    return int(s) if n <= 15 else None


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.text(max_size=20), st.text(alphabet="0123456789+ -.()\tAbĐ٣²/", max_size=18)))
def test_sender_name_shortcut_changes_nothing(raw):
    assert normalise_number(raw) == _normalise_reference(raw)


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789", min_size=11, max_size=11), st.integers(0, 6))
def test_eleven_digit_shortcut_reads_as_the_branches_did(digits, ton):
    """11 bare digits not starting with 0 (84 + a mobile: most addresses) are read at once as int(digits): what
    the TON and length branches gave (_intl, under any TON); with a leading 0 the branches still read them."""
    from engine.numbers import VN_CC, _intl
    want = _intl(digits) if digits[0] != "0" else (int(VN_CC + digits[1:]) if digits[1] != "0" else int(digits[2:])
                                                   if digits[2] != "0" else None)
    assert normalise_number(digits, ton) == want


@pytest.mark.parametrize("raw", ["+84901234567", "+84 901 234 567", "+840901234567", "+8490123", "+849012345678901234",
                                 "+0901234567", "+", "+1900123456", "+12025550123", "+84९०१२३४५६७", "+84-901.234(567)",
                                 "+84901234567 ", "+١٢٣٤٥٦٧٨"])
def test_a_plus_number_reads_as_with_its_separators_stripped(raw):
    # '+' and ASCII digits skip the strip and translate (nothing to strip): read as the stripping path reads it (a
    # leading space sends any of these there)
    assert normalise_number(raw) == normalise_number(" " + raw)


@given(st.text(alphabet="+0123456789 -.", min_size=1, max_size=20).map(lambda t: "+" + t))
@settings(max_examples=300, deadline=None)
def test_any_plus_number_reads_as_the_stripping_path_reads_it(raw):
    assert normalise_number(raw) == normalise_number(" " + raw)


def test_a_plus_number_is_not_stripped(monkeypatch):
    # '+' and ASCII digits are read as they are (the strip and translate, ~5,800 instructions, have nothing to do)
    import engine.numbers as numbers
    monkeypatch.setattr(numbers, "_STRIP", str.maketrans("", "", "4"))     # a strip that would show
    assert normalise_number("+84901234567") == 84901234567


# addresses as ESMEs and SIP peers write them: digits of any length (leading zeros, 18/19 digits, the bound of the
# compiled read), '+', spacing, letters, non-ASCII digits (Arabic-Indic, full-width)
_ADDRESS = st.text(st.sampled_from("0123456789+ -()SHOPé٣５"), max_size=21) | \
    st.text(st.sampled_from("0123456789"), min_size=1, max_size=21)


@given(_ADDRESS, st.sampled_from([0, 1, 2, 5]))
@settings(max_examples=3000)
def test_compiled_bare_digit_read_agrees_with_python(raw, ton):
    import engine.numbers as N
    assert N.bare_digits(raw) == N._bare_digits(raw), raw
    compiled = normalise_number(raw, ton)
    saved, N.bare_digits = N.bare_digits, N._bare_digits
    try:
        assert compiled == normalise_number(raw, ton), (raw, ton)
    finally:
        N.bare_digits = saved


@pytest.mark.parametrize("form", ["compiled", "python"])
def test_bare_digits_bounds(form):
    import engine.numbers as N
    f = pytest.importorskip("engine._numbers").bare_digits if form == "compiled" else N._bare_digits
    assert [f(s) for s in ("", "0", "007", "9" * 18, "9" * 19, "١٢", "12a", "+12")] == \
        [None, 0, 7, 10 ** 18 - 1, None, None, None, None]
    with pytest.raises(TypeError):
        f(None)


def test_national_numbers_read_as_84_whatever_the_ton():
    """A bare national number (a trunk 0, then not 0) is 84 and the digits after the 0 when it has 10 or 11 digits,
    else no number, under every TON: the int made from the digits read once (numbers._VN_NATIONAL) is the one the
    text "84" + digits gives; seeded random digits of every length a bare-digit read takes (7 to 18)."""
    import random
    from engine.numbers import TON_INTERNATIONAL, TON_NATIONAL, normalise_number
    rnd = random.Random(84)
    for _ in range(3000):
        n = rnd.randrange(7, 19)
        s = "0" + str(rnd.randrange(1, 10)) + "".join(rnd.choice("0123456789") for _ in range(n - 2))
        want = int("84" + s[1:]) if n in (10, 11) else None
        for ton in (0, TON_INTERNATIONAL, TON_NATIONAL, 5):
            assert normalise_number(s, ton) == want, (s, ton)
