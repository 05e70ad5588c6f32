"""Number and sender-ID normalisation for the hot path.

Numbers become E.164 digits as an int (84912345678). Vietnam's national forms are
recognised: 0912345678, 84912345678, +84912345678, 912345678, a landline without its trunk 0
(2439998888: ten digits whose first three are a Vietnamese area code), and the service numbers
1800xxxx / 1900xxxxxx (+841800…, +841900…); any +CC… or 00CC…
international number is kept as its digits. Short codes (at most 6 digits, e.g. 5656)
stay as their own digits. Anything with a letter is an alphanumeric sender ID, which is
case-folded and trimmed. No `phonenumbers` call here: it is ~100x slower, and the test
suite property-tests this function against it instead.
"""
from __future__ import annotations

import os

VN_CC = "84"
_STRIP = str.maketrans("", "", " -.()\t/")
SHORTCODE_MAX_DIGITS = 6
# Vietnam's toll-free (1800) and premium-rate (1900) numbers, written without a trunk prefix in 8 or 10
# digits (1900 1234, 1900 123 456): national numbers, +84 1900…, as phonenumbers reads them, not +1 900…
_VN_SERVICE = ("1800", "1900")


# the first three digits of a Vietnamese landline's national significant number (2 + area code, 10 digits: Hanoi
# 24[2-8], Ho Chi Minh City 28[2-9], the provinces' 2xx), as libphonenumber's fixed-line pattern for VN has them
# (tests/test_numbers.py compares). Written without the trunk 0 ("2439998888", a caller ID in national format) it
# is Vietnamese, as phonenumbers reads it -- as the mobile form 912345678 is -- not +243 (DR Congo, where it is no
# valid number). A foreign number of ten digits starting so (+220 Gambia, +238 Cape Verde, …) is written with
# its '+' or 00.
VN_LANDLINE_AREAS = frozenset(
    "203 204 205 206 207 208 209 210 211 212 213 214 215 216 218 219 220 221 222 225 226 227 228 229 232 233 234 "
    "235 236 237 238 239 242 243 244 245 246 247 248 251 252 254 255 256 257 258 259 260 261 262 263 269 270 271 "
    "272 273 274 275 276 277 282 283 284 285 286 287 288 289 290 291 292 293 294 296 297 299".split())


def _intl(d: str) -> int:
    """International digits as an int; Vietnam's written "+84 0912…" (country code *and* trunk 0) is
    +84912…, as phonenumbers reads it: the same subscriber, one key. A Vietnamese service number
    written with a '+' ("+1900123456", as lists exported before they were read as such) is no valid
    +1 number (those have 11 digits): +84 1900…, the same key as its national form."""
    if d.startswith("840") and len(d) in (12, 13):
        d = "84" + d[3:]
    elif len(d) in (8, 10) and d[:4] in _VN_SERVICE:
        d = VN_CC + d
    return int(d)


# ITU-T E.164 country calling codes of a country or territory (not the global services: +800, +870, …), as
# libphonenumber lists them (tests/test_numbers_whole.py compares): a number of another country in a list must
# start with one
COUNTRY_CODES = frozenset((
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57,
    58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211, 212, 213, 216, 218, 220,
    221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241,
    242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255, 256, 257, 258, 260, 261, 262, 263,
    264, 265, 266, 267, 268, 269, 290, 291, 297, 298, 299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359,
    370, 371, 372, 373, 374, 375, 376, 377, 378, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500,
    501, 502, 503, 504, 505, 506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672,
    673, 674, 675, 676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 850, 852,
    853, 855, 856, 880, 886, 960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972, 973, 974, 975, 976,
    977, 992, 993, 994, 995, 996, 998,
))


def vn_whole(n: int) -> bool:
    """A whole Vietnamese subscriber number: a mobile (84 + 9 digits, 3/5/7/8/9…) or a landline (84 + 10 digits,
    2…)."""
    s = str(n)
    return s.startswith(VN_CC) and ((len(s) == 11 and s[2] in "35789") or (len(s) == 12 and s[2] == "2"))


def subscriber_problem(n: int) -> str | None:
    """Why the int normalise_number gave cannot be a subscriber's whole number (a DNC or consent entry), or None:
    a Vietnamese number (84…) is a mobile or a landline of its length (vn_whole; 0912345678 with a digit too many
    is not a subscriber); another starts with an assigned country code and has 7 to 15 digits (E.164: +690 7290,
    Tokelau, has 7)."""
    s = str(n)
    if s.startswith(VN_CC):
        return None if vn_whole(n) else "not a whole Vietnamese subscriber number (a mobile has 10 digits " \
                                        "0xxxxxxxxx, a landline 11: 02xxxxxxxxx)"
    if not 7 <= len(s) <= 15:
        return f"{len(s)} digits: an international number has 7 to 15 (E.164)"
    if not any(int(s[:k]) in COUNTRY_CODES for k in (1, 2, 3)):
        return f"no country has the calling code +{s[:3]}…"
    return None


# the keys 1800/1900 service numbers had before they were read as Vietnamese: (first, last) int ranges
LEGACY_SERVICE_RANGES = ((18000000, 18009999), (19000000, 19009999), (1800000000, 1800999999),
                         (1900000000, 1900999999))


def legacy_service_key(n: int) -> int | None:
    """The key a stored number in LEGACY_SERVICE_RANGES has now (84 prefixed), else None."""
    return int(VN_CC + str(n)) if any(lo <= n <= hi for lo, hi in LEGACY_SERVICE_RANGES) else None


def _bare_digits(raw: str) -> int | None:
    """int(raw) when `raw` is 1 to 18 ASCII digits, else None (engine/_numbers.c's bare_digits, ~1,150
    instructions cheaper a number, is used unless absent or TELFILTER_NUMBERS_PURE=1; a test checks both agree)."""
    return int(raw) if 0 < len(raw) <= 18 and raw.isdigit() and raw.isascii() else None


bare_digits = _bare_digits
if os.environ.get("TELFILTER_NUMBERS_PURE") != "1":
    try:
        from ._numbers import bare_digits          # noqa: F811
    except ImportError:
        pass


# SMPP 3.4 §5.2.5 type of number (source_addr_ton, dest_addr_ton, esme_addr_ton): the two that say how digits
# without a '+' are to be read; 0 (unknown) and the others (network specific, alphanumeric, ...) say nothing
TON_INTERNATIONAL = 1
TON_NATIONAL = 2


_VN_NATIONAL = {n: int(VN_CC) * 10 ** (n - 1) for n in (10, 11)}     # int(VN_CC + s[1:]) - int(s[1:]) by length


def normalise_number(raw: str, ton: int = 0) -> int | None:
    """E.164 digits as an int, or None when `raw` is not a phone number or short code.

    `ton`: the SMPP type of number the address came with (0, unknown, for every other source), read as a
    carrier's SMSC reads it. TON_INTERNATIONAL: 7 to 15 digits not starting with 0 are E.164 as written, as if
    with a '+' (2439998888 is +243, DR Congo, not a Vietnamese landline; a 9-digit number is no Vietnamese
    mobile). TON_NATIONAL: a Vietnamese national number, with or without its trunk 0 (a 10-digit landline
    2xxxxxxxxx whatever its area code). Any other form (an ESME that sends 0912345678 as international, or
    84912345678 as national: common misconfigurations), and every other TON, keep the reading from the digits
    alone."""
    v = bare_digits(raw)
    if v is not None:                            # most addresses: bare digits, nothing to strip
        n = len(raw)
        if n == 11 and raw[0] != "0" or n <= SHORTCODE_MAX_DIGITS:
            return v                             # (what the bare-digit reading below gives these: int(s))
        if raw[0] == "0" and raw[1] != "0":      # Vietnamese national, as below: int(VN_CC + raw[1:]) made as an
            b = _VN_NATIONAL.get(n)              # int (the leading 0 adds nothing to v), no str joined and read
            return b + v if b is not None else None     # (~1,000 instructions a 0912345678)
        s = raw
    elif raw[:1].isalpha():                      # a sender name ("SHOPABC"): the letter stays first
        return None
    elif raw.isdigit() and raw.isascii():        # more than 18 digits
        s = raw
    else:
        # (+ and ASCII digits, E.164 as a SIP P-Asserted-Identity's tel URI writes it: nothing to strip -- the strip
        # and translate cost ~5,800 instructions such a number)
        s = raw if raw[:1] == "+" and raw[1:].isdigit() and raw.isascii() else raw.strip().translate(_STRIP)
        if not s:
            return None
        if s[0] == "+":
            d = s[1:]
            if d.isdigit() and d.isascii() and 7 <= len(d) <= 15 and d[0] != "0":
                return _intl(d)
            return None
        if not (s.isdigit() and s.isascii()):
            return None
    n = len(s)
    if n == 11 and s[0] != "0":                  # the commonest address, 84 + a mobile's 9 digits: E.164 as
        return int(s)                            # written under any TON (what _intl gives 11 digits)
    if n <= SHORTCODE_MAX_DIGITS:
        return int(s)
    if s[0] == "0":
        if s[1] == "0":                          # international call prefix
            d = s[2:]
            return _intl(d) if 7 <= len(d) <= 15 and d[0] != "0" else None
        return int(VN_CC + s[1:]) if n in (10, 11) else None      # Vietnamese national (trunk prefix 0)
    if ton == TON_INTERNATIONAL and n <= 15:     # E.164 as written: no national guessing
        return _intl(s)
    if n == 9 or n == 10 and (s[:3] in VN_LANDLINE_AREAS or ton == TON_NATIONAL and s[0] == "2"):
        return int(VN_CC + s)                    # Vietnamese NSN without trunk prefix (a mobile, a landline)
    if n <= 15:                                  # already E.164 without '+' (TON international); 1800/1900
        return _intl(s)                          # xxxx(xx), Vietnam's service numbers, as +84
    return None


def read_by_ton(raw: str, ton: int) -> int | None:
    """The number `raw` names under `ton` when the TON reads it otherwise than its digits alone would (what the
    verdict log shows then), else None. Cheap for the common addresses: another TON, or bare digits of a length
    the TON does not change (84912345678)."""
    if ton != TON_INTERNATIONAL and ton != TON_NATIONAL or raw.isdigit() and len(raw) not in (9, 10):
        return None
    n = normalise_number(raw, ton)
    return n if n != normalise_number(raw) else None


def is_shortcode(n: int) -> bool:
    return n < 10 ** SHORTCODE_MAX_DIGITS


def normalise_sender_id(raw: str) -> str:
    return " ".join(raw.split()).casefold()


def sender_key(raw: str) -> int | str:
    """The registry/blacklist key for an SMS sender or a caller: an int number or a folded name."""
    n = normalise_number(raw)
    return n if n is not None else normalise_sender_id(raw)


def format_number(n: int) -> str:
    """How lists export a number: E.164 with '+' (short codes as bare digits)."""
    return str(n) if is_shortcode(n) else "+" + str(n)
