"""engine/_textnorm.c's template_mask gives textnorm's Python masking on every text: the
traffic mix, edge cases of Unicode case and digits, and random strings."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import textnorm as T

pytestmark = pytest.mark.skipif(T._C is None, reason="engine._textnorm not built")

EDGE = [
    "", " ", "a", "Chao anh Minh, hen gap lai luc 5h chieu nay nhe", "KHUYEN MAI lon nhat nam tai cua hang",
    "ǅemal ǆ Ǆ title-case digraphs in a sentence here", "Ⅳ ² ٣ ¼ numerals that are not digits at all",
    "İstanbul ß ﬁnance Straße words with odd case maps", "Đà Nẵng Đ đ ĐỒNG Vietnamese capitals and more",
    "link bit.ly/x then a@b.vn and 10:15 and 5.000.000 vnd for the words",
    "..a.b.. .x .:: @@ a:b: :a x/ /y ok ok ok ok ok", "tab\tnew\nline\r\x1c\x1d\x85\u2028 sep words here too",
    "x" * 3000, "a " * 1500, "Ab " * 800, "e\u0301 combining u\u031b\u0300 marks in the middle of words",
    "한국어 텍스트 가 각 四 五 六 七 scripts without case", "😀 emoji 🎉 prize 𝐀𝐁𝐂 math bold Capital",
]


def _both(text):
    return T._C.template_mask(text, T.TEMPLATE_MIN_WORDS), T._template_words(text)


@pytest.mark.parametrize("text", EDGE)
def test_edge_cases(text):
    c, py = _both(text)
    assert c == py


def test_traffic_mix():
    from benchmarks.traffic import records
    texts = [r["text"] for r in records(5000, seed=9)]
    assert sum(T._template_words(t) is not None for t in texts) > 1000      # the test has teeth
    for t in texts:
        assert _both(t)[0] == _both(t)[1], t


_ALPHABET = list("aAzZ09 ._:/@-!?\t\nQqĐđéÉǅǆⅣ²٣\u0301\u200b\u3000ᾈ\x1c\x85ßİﬁ𝐀😀")


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=40).map("".join))
def test_random_strings_from_tricky_alphabet(text):
    c, py = _both(text)
    assert c == py


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=60))
def test_random_unicode(text):
    c, py = _both(text)
    assert c == py


def test_template_key_same_with_either_path(monkeypatch):
    texts = ["Chúc mừng Minh! Bạn đã trúng thưởng 700 triệu, liên hệ 0912000111 tại qr.vn/xk2 để nhận giải",
             "Chuc mung Lan! Ban da trung thuong 50 trieu, lien he 0999111222 tai bit.ly/abc de nhan giai"]
    rnd = random.Random(4)
    texts += ["".join(rnd.choice(_ALPHABET) for _ in range(30)) for _ in range(300)]
    fast = [T.template_key(t) for t in texts]
    monkeypatch.setattr(T, "_C", None)
    assert [T.template_key(t) for t in texts] == fast
    assert fast[0] == fast[1] and fast[0] is not None


_HOSTY = list("aZ9.:/ İıſKxé\u212a-_ẞ")


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_HOSTY), max_size=12).map("".join))
def test_maybe_host_never_misses_what_the_regex_finds(text):
    if T._MAYBE_HOST.search(text) is not None:
        assert T._C.maybe_host(text)


def test_find_hosts_same_with_either_prefilter(monkeypatch):
    from benchmarks.traffic import records
    texts = [r["text"] for r in records(3000, seed=2)] + ["xem https://www.phish.example/login", "a.b.vn ok", "K.K"]
    fast = [T.find_hosts(t) for t in texts]
    assert sum(bool(h) for h in fast) > 50
    monkeypatch.setattr(T, "_C", None)
    assert [T.find_hosts(t) for t in texts] == fast


def _hosts_whole_text(text):
    """find_hosts as it was: the pattern over the whole text (the reference for the run-by-run scan), after the
    same mapping of compatibility forms (NFKC, ideographic dots) a browser makes."""
    import unicodedata
    if not text.isascii() and (T._WIDE.search(text) or not unicodedata.is_normalized("NFKC", text)):
        text = unicodedata.normalize("NFKC", text).translate(T._DOTS)
    out = []
    for m in T._URL_RE.finditer(text):
        h = (m.group("h1") or m.group("h2")).lower().rstrip(".")
        if h and h not in out:
            out.append(h)
    return out


_HOSTY_TEXT = _HOSTY + list("@?#[]\t\n\x1c\x85\u2028\u3000\xa0@w") + ["http://", "https://", "ftp://", "xn--", ".vn", "www."]


@settings(max_examples=4000, deadline=None)
@given(st.lists(st.sampled_from(_HOSTY_TEXT), max_size=16).map("".join))
def test_find_hosts_run_by_run_is_the_whole_text_scan(text):
    want = _hosts_whole_text(text)
    assert T.find_hosts(text) == want
    assert [w for w in text.split() if T._MAYBE_HOST.search(w)] == \
        [w for w in T._C.host_tokens(text) if T._MAYBE_HOST.search(w)]


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=60))
def test_find_hosts_random_unicode(text):
    assert T.find_hosts(text) == _hosts_whole_text(text)


def test_find_hosts_mix_either_path_is_the_whole_text_scan(monkeypatch):
    from benchmarks.traffic import records
    texts = [r["text"] for r in records(6000, seed=12)]
    texts += ["xem https://www.phish.example/login ngay", "a.b.vn ok", "K.K", "x https://u:p@h.example:80/a b.c",
              "vao phish.example/login. de nhan", "(www.a.vn) [b.c] <c.d.vn>", "ok.\u00a0Then a.vn\u2028b.vn\x1cc.vn"]
    want = [_hosts_whole_text(t) for t in texts]
    assert sum(bool(h) for h in want) > 100                 # the test has teeth
    assert [T.find_hosts(t) for t in texts] == want
    monkeypatch.setattr(T, "_C", None)
    assert [T.find_hosts(t) for t in texts] == want


# fold of non-ASCII text code point by code point (each one's fold cached) is the whole text's fold
_FOLDY = [chr(c) for c in (*range(0x20, 0x80, 7), *range(0xc0, 0x250, 3), *range(0x300, 0x370, 5),
                           *range(0x1ea0, 0x1f00, 3), 0x110, 0x111, 0xf0, 0x200b, 0x200d, 0x2060, 0xfeff, 0xad, 0x130,
                           0x1c4, 0x1c5, 0x1c6, 0xfb01, 0xdf, 0x2126, 0x212a, 0x3000, 0xff21, 0xac00, 0x1100, 0x1161,
                           0x1d400, 0x1f600, 0x10400, 0x1d165, 0xd800, 0xdfff)]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_FOLDY), min_size=1, max_size=30).map("".join))
def test_fold_code_point_by_code_point(text):
    assert T._C.fold(text, T._fold_text) == T._fold_text(text)


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=60))
def test_fold_random_unicode(text):
    assert T._C.fold(text, T._fold_text) == T._fold_text(text)


def test_fold_same_with_either_path(monkeypatch):
    from benchmarks.traffic import records
    texts = [r["text"] for r in records(4000, seed=6)] + EDGE
    assert sum(not t.isascii() for t in texts) > 200
    fast = [T.fold(t) for t in texts]
    monkeypatch.setattr(T, "_C", None)
    assert [T.fold(t) for t in texts] == fast


def test_fold_errors_from_the_per_code_point_function_propagate():
    def boom(ch):
        raise ValueError("boom")
    with pytest.raises(ValueError):
        T._C.fold("\U00020000 x", boom)          # beyond planes 0 and 1: never cached, always asked
    with pytest.raises(TypeError):
        T._C.fold("\U00020001", lambda ch: 1)


def test_an_emoji_is_folded_once_however_often_it_comes():
    # plane 1 (emoji, mathematical letters) was asked at every occurrence: a Python call each, ~0.8 us an emoji at
    # every fold, 24 ms for a message_payload of 30,000 emoji (found by a probe of odd encodings)
    asked = []

    def fold_one(ch):
        asked.append(ch)
        return T._fold_text(ch)
    text = "\U0001f9ff\U0001d7ff x " * 500
    assert T._C.fold(text, fold_one) == T._fold_text(text)
    assert len(asked) == len(set(asked)) <= len(set(text)), asked     # at most once each (none if seen before)


_SPACEY = list("ab \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u205f\u3000\u200bé😀")


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_SPACEY), max_size=16).map("".join))
def test_collapse_spaces_is_split_and_join(text):
    assert T._C.collapse_spaces(text) == " ".join(text.split())


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=40))
def test_collapse_spaces_random_unicode(text):
    assert T._C.collapse_spaces(text) == " ".join(text.split())


# the digests computed while scanning (BLAKE2b in engine/_textnorm.c) are hashlib's
def _py_content_digest(text):
    return T._digest(" ".join(T._fold_text(text).split()))


def _py_template_key(text):
    s = T._template_words(text)
    return None if s is None else T._digest(s.lower() if s.isascii() else T._fold_text(s))


def test_digests_on_the_mix_and_edges():
    from benchmarks.traffic import records
    texts = [r["text"] for r in records(5000, seed=14)] + EDGE + ["x" * n for n in (127, 128, 129, 255, 256, 257)]
    texts += ["é" * n for n in (63, 64, 65, 128)] + ["\ud800 lone \udfff surrogates " * 9, "😀" * 40 + " a b c d e f"]
    keys = [T.template_key(t) for t in texts]
    assert sum(k is not None for k in keys) > 1000
    assert keys == [_py_template_key(t) for t in texts]
    assert [T.content_digest(t) for t in texts] == [_py_content_digest(t) for t in texts]
    assert len({T.content_digest(t) for t in texts}) > 4000


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=300))
def test_digests_random_unicode(text):
    assert T.content_digest(text) == _py_content_digest(text)
    assert T.template_key(text) == _py_template_key(text)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET + ["word", "Name", "12", "bit.ly/x"]), max_size=80).map("".join))
def test_digests_tricky_alphabet(text):
    assert T.content_digest(text) == _py_content_digest(text)
    assert T.template_key(text) == _py_template_key(text)
